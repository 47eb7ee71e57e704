//! The uprobe overhead budget: a per-hook, per-binary duty-cycle governor.
//!
//! A uprobe hit costs the target a trap (about 1 µs emulated, 5 µs single-stepped on the VMs
//! measured in docs/measurements.md) and runtime.mcall can fire 500k times a second, so always-on
//! uprobes could cost more than a core. The governor attaches a hook for a short sample
//! period, measures its hit rate, and from the measured cost per hit computes what the hook
//! costs the binary's processes as a fraction of their own CPU time. Within budget it stays
//! attached; over budget it detaches for as long as keeps the average cost within budget
//! (duty cycle = budget / cost while attached), capped so rates are refreshed at least every
//! `max_period`. Pure: fed times and counters, returns actions.
//!
//! The periods are samples of the program, and their rates are extrapolated to the time
//! between them (`estimate.rs`), so neither their start nor their length may depend on the
//! program: a detached time of a fixed 2 s put every period at the same phase of a program
//! busy every 250 ms (the estimate read x0.7 to x12 of the truth), and a period cut short
//! because it began in a burst made bursts its only samples. The detached time is drawn
//! between half and one and a half times what the duty cycle asks (the mean keeps the budget),
//! and a period's length is fixed when it starts, from the previous period: short after one
//! over budget, the full `sample_ms` after one within. Only a hook's first period, with
//! nothing known, is cut short when it turns out far over budget.
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Budget settings (`probes.budget` in the config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Govern uprobes (false: attach them for good and only measure — for benchmarks).
    pub governed: bool,
    /// Average fraction of the target processes' CPU time the hooks of one binary may cost,
    /// all together (see [`BudgetConfig::per_hook`]).
    pub max_overhead: f64,
    /// Length of one attached measurement period, milliseconds.
    pub sample_ms: u64,
    /// Longest time a hook stays detached, seconds (rates are refreshed at least this often).
    pub max_period_seconds: u64,
    /// Measure the cost of a uprobe hit on this machine at start-up.
    pub calibrate: bool,
    /// Cost of a hit at an emulated instruction until calibrated, nanoseconds.
    pub emulated_hit_ns: u64,
    /// Cost of a hit at a single-stepped instruction until calibrated, nanoseconds.
    pub single_stepped_hit_ns: u64,
    /// Cost to the target of one call through a governed syscall tracepoint, nanoseconds.
    pub syscall_hit_ns: u64,
}

impl BudgetConfig {
    /// The budget of one of `hooks` governed hooks: an even share of `max_overhead`, so that
    /// the hooks together stay within it (each governor keeps its own hook's average).
    pub fn per_hook(&self, hooks: usize) -> BudgetConfig {
        BudgetConfig {
            max_overhead: self.max_overhead / hooks.max(1) as f64,
            ..self.clone()
        }
    }
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            governed: true,
            max_overhead: 0.001,
            sample_ms: 100,
            max_period_seconds: 60,
            calibrate: true,
            emulated_hit_ns: 1_500,
            single_stepped_hit_ns: 5_000,
            syscall_hit_ns: 400,
        }
    }
}

/// What the governor wants done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    Keep,
    /// Attach the hook now.
    Attach,
    /// Detach the hook now.
    Detach,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Detached {
        until: Instant,
    },
    Attached {
        since: Instant,
        base_hits: u64,
        /// The period's length, fixed when it started.
        length: Duration,
        /// Whether it began after a detached time of the duty cycle (see [`Period::after_off`]).
        after_off: bool,
    },
}

/// A finished measurement period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Period {
    /// When it ended.
    pub ended: Instant,
    /// How long the hook was attached.
    pub attached: Duration,
    /// Hits over the binary's processes per second while attached.
    pub hits_per_second: f64,
    /// Cost while attached as a fraction of the processes' CPU time.
    pub overhead_attached: f64,
    /// Fraction of time the hook will be attached from now on (1 = continuously).
    pub duty: f64,
    /// Cut short far over budget (a first period only): its rate is a biased sample.
    pub cut_short: bool,
    /// It began after a detached time of the duty cycle, at a time drawn at random: a sample
    /// of the time the hook is detached. A period continuing a cheap one is not (the hook is
    /// detached only once a period finds it expensive, so the periods that end a cheap run
    /// all hold the onset of a storm, never its middle).
    pub after_off: bool,
}

/// The governor of one hook in one binary.
#[derive(Clone, Debug)]
pub struct Governor {
    state: State,
    last: Option<Period>,
    attached_total: Duration,
    /// xorshift state for the detached times' jitter.
    jitter: u64,
}

/// Shortest mean detached time (drawn between half and one and a half of it): every attach and
/// detach patches kernel text and, for a syscall tracepoint, flags every thread of the system,
/// which the per-hit cost does not cover. A hook cut after 10 ms would otherwise cycle several
/// times a second (the bench measured it).
const MIN_OFF: Duration = Duration::from_secs(2);

/// Hits a period over budget aims to see.
const TARGET_HITS: f64 = 200.0;

/// Longest period over budget, in samples (`sample_ms`): how long a rate that has jumped since
/// the period before can cost more than planned.
const LONGEST_PERIODS: u32 = 10;

/// Shortest period: registering a uprobe takes tens of microseconds, during which hits count
/// but the period's clock has not started.
const MIN_PERIOD: Duration = Duration::from_millis(2);

/// How far into a hook's first period it is cut short when far over budget: a tenth of the
/// period, but no more than [`MIN_PERIOD`]. The time it ran is paid back detached at the duty
/// cycle it found, so a first period cut at 10 ms left runtime.mcall in a storm (33% overhead
/// while attached, duty 0.0006) detached for 19 s before its second period, and its rate
/// resting on one period for half a minute.
fn runaway_check(length: Duration) -> Duration {
    (length / 10).min(MIN_PERIOD)
}

/// Floor for the processes' CPU use in the overhead fraction, so that an almost idle process
/// hit at a high rate (a sleeping program's timers) is not judged free.
const MIN_TARGET_CORES: f64 = 0.05;

impl Governor {
    /// A governor that attaches at the first tick.
    pub fn new(now: Instant) -> Self {
        // Governors made in the same instant must not draw the same jitter.
        static SEEDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEEDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self::seeded(now, clock ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A governor whose jitter is drawn from `seed` (tests).
    pub fn seeded(now: Instant, seed: u64) -> Self {
        Self {
            state: State::Detached { until: now },
            last: None,
            attached_total: Duration::ZERO,
            jitter: seed | 1,
        }
    }

    /// A uniform draw in [0.5, 1.5).
    fn draw(&mut self) -> f64 {
        let mut x = self.jitter;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter = x;
        0.5 + (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The length of a period starting now. After a period over budget: what the duty cycle
    /// allows in the shortest detached time (a hook over budget by less than the minimum off
    /// time's worth would otherwise leave budget unused: fewer calls seen, a rougher estimate),
    /// at least about [`TARGET_HITS`] hits' worth, between [`MIN_PERIOD`] and
    /// [`LONGEST_PERIODS`] samples (a hook far over budget is sampled briefly, and the same
    /// budget then buys more, shorter periods; one a little over budget, 50 cgo calls a second
    /// single-stepped, watched 100 ms in 2 s saw five calls a period and its rate stayed
    /// withheld). After a period within budget, the full sample.
    fn planned_length(&self, cfg: &BudgetConfig) -> Duration {
        let sample = Duration::from_millis(cfg.sample_ms.max(1));
        match self.last {
            Some(p) if p.duty < 1.0 => {
                let allowed = MIN_OFF.as_secs_f64() * p.duty / (1.0 - p.duty);
                let hits = TARGET_HITS / p.hits_per_second.max(1.0);
                let want = allowed.max(hits.min((sample / 10).as_secs_f64()));
                let shortest = MIN_PERIOD.as_secs_f64();
                let longest = (sample * LONGEST_PERIODS).as_secs_f64().max(shortest);
                Duration::from_secs_f64(want.clamp(shortest, longest))
            }
            _ => sample,
        }
    }

    /// The last finished measurement.
    pub fn last_period(&self) -> Option<Period> {
        self.last
    }

    /// Whether the governor has the hook attached.
    pub fn attached(&self) -> bool {
        matches!(self.state, State::Attached { .. })
    }

    /// Total time attached so far (finished periods plus the running one).
    pub fn attached_total(&self, now: Instant) -> Duration {
        match self.state {
            State::Attached { since, .. } => {
                self.attached_total + now.saturating_duration_since(since)
            }
            State::Detached { .. } => self.attached_total,
        }
    }

    /// When the next [`Governor::tick`] can change anything: the end of the detached time, or
    /// the runaway check early in a hook's first period, or the period's end.
    pub fn next_check(&self, now: Instant) -> Instant {
        match self.state {
            State::Detached { until } => until,
            State::Attached { since, length, .. } => {
                let early = since + runaway_check(length);
                if now < early && self.last.is_none() {
                    early
                } else {
                    since + length
                }
            }
        }
    }

    /// The attach asked for by the last tick completed at `now`: the measurement period starts
    /// here (registering a uprobe on a busy binary takes milliseconds, not to be counted as
    /// attached time without hits).
    pub fn attached_at(&mut self, now: Instant) {
        if let State::Attached {
            base_hits,
            length,
            after_off,
            ..
        } = self.state
        {
            self.state = State::Attached {
                since: now,
                base_hits,
                length,
                after_off,
            };
        }
    }

    /// The hook was detached from outside the governor (nothing left to measure: a binary's
    /// last process exited, or no process is tracked). Counts the attached time so far and
    /// attaches again at the first tick; a hook detached by its duty cycle keeps its off time.
    pub fn suspend(&mut self, now: Instant) {
        if let State::Attached { since, .. } = self.state {
            self.attached_total += now.saturating_duration_since(since);
            self.state = State::Detached { until: now };
        }
    }

    /// Something new to measure appeared (a process joined the hook's set): a hook detached
    /// by its duty cycle is attached again within [`MIN_OFF`] rather than at the end of an off
    /// time computed without it. New processes can pull a re-measurement at most that often.
    pub fn measure_soon(&mut self, now: Instant) {
        if let State::Detached { until } = self.state {
            self.state = State::Detached {
                until: until.min(now + MIN_OFF),
            };
        }
    }

    /// The attach attempt failed: try again after `retry`.
    pub fn attach_failed(&mut self, now: Instant, retry: Duration) {
        self.state = State::Detached { until: now + retry };
    }

    /// Advances to `now`. `hits` is the cumulative hit count of this hook over the binary's
    /// processes, `target_cores` their CPU use, `hit_cost` the cost of one hit.
    pub fn tick(
        &mut self,
        cfg: &BudgetConfig,
        now: Instant,
        hits: u64,
        target_cores: f64,
        hit_cost: Duration,
    ) -> Action {
        match self.state {
            State::Detached { until } => {
                if now >= until {
                    self.state = State::Attached {
                        since: now,
                        base_hits: hits,
                        length: self.planned_length(cfg),
                        after_off: self.last.is_some_and(|p| p.duty < 1.0),
                    };
                    Action::Attach
                } else {
                    Action::Keep
                }
            }
            State::Attached {
                since,
                base_hits,
                length,
                after_off,
            } => {
                let elapsed = now.saturating_duration_since(since);
                let secs = elapsed.as_secs_f64();
                let rate = if secs > 0.0 {
                    hits.saturating_sub(base_hits) as f64 / secs
                } else {
                    0.0
                };
                let overhead = rate * hit_cost.as_secs_f64() / target_cores.max(MIN_TARGET_CORES);
                // A hook's first period is cut short at the runaway check when far over budget;
                // later ones run their planned length whatever they see.
                let runaway = self.last.is_none()
                    && elapsed >= runaway_check(length)
                    && overhead > 20.0 * cfg.max_overhead.max(1e-6);
                if elapsed < length && !runaway {
                    return Action::Keep;
                }
                self.attached_total += elapsed;
                let duty = if overhead <= cfg.max_overhead || !cfg.governed {
                    1.0
                } else {
                    cfg.max_overhead / overhead
                };
                self.last = Some(Period {
                    ended: now,
                    attached: elapsed,
                    hits_per_second: rate,
                    overhead_attached: overhead,
                    duty,
                    cut_short: elapsed < length,
                    after_off,
                });
                if duty >= 1.0 {
                    // Within budget: keep measuring, period after period.
                    self.state = State::Attached {
                        since: now,
                        base_hits: hits,
                        length: self.planned_length(cfg),
                        after_off: false,
                    };
                    return Action::Keep;
                }
                let off = elapsed.as_secs_f64() * (1.0 / duty - 1.0);
                let off = (off.max(MIN_OFF.as_secs_f64()) * self.draw())
                    .min(cfg.max_period_seconds as f64);
                let off = Duration::from_secs_f64(off);
                self.state = State::Detached { until: now + off };
                Action::Detach
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const EMULATED: Duration = Duration::from_nanos(1500);
    const STEPPED: Duration = Duration::from_micros(5);

    #[test]
    fn hooks_share_the_budget_evenly_and_together_stay_within_it() {
        let cfg = BudgetConfig {
            max_overhead: 0.001,
            ..BudgetConfig::default()
        };
        let each = cfg.per_hook(5);
        assert!((each.max_overhead - 0.0002).abs() < 1e-12);
        assert_eq!(
            BudgetConfig {
                max_overhead: 0.001,
                ..each.clone()
            },
            cfg
        );
        assert_eq!(cfg.per_hook(0), cfg);
        // Five hot hooks, each duty-cycled to its share: their average costs add up to the
        // budget.
        let t0 = Instant::now();
        let total: f64 = (0..5)
            .map(|_| {
                let mut g = Governor::new(t0);
                g.tick(&each, t0, 0, 2.0, STEPPED);
                g.tick(&each, t0 + ms(10), 5_000, 2.0, STEPPED);
                let p = g.last_period().unwrap_or_else(|| panic!("no period"));
                p.overhead_attached * p.duty
            })
            .sum();
        assert!(total <= cfg.max_overhead * 1.0001, "{total}");
    }

    #[test]
    fn cheap_hook_stays_attached() {
        let cfg = BudgetConfig::default();
        let t0 = Instant::now();
        let mut g = Governor::new(t0);
        assert_eq!(g.tick(&cfg, t0, 0, 1.0, EMULATED), Action::Attach);
        // 100 hits/s x 1.5 µs = 0.015% of one core: well within 0.1%.
        assert_eq!(g.tick(&cfg, t0 + ms(100), 10, 1.0, EMULATED), Action::Keep);
        assert!(g.attached());
        let p = g.last_period().unwrap_or_else(|| panic!("no period"));
        assert!((p.hits_per_second - 100.0).abs() < 1e-6);
        assert_eq!(p.duty, 1.0);
    }

    #[test]
    fn hot_hook_is_duty_cycled_to_the_budget() {
        let cfg = BudgetConfig::default();
        let t0 = Instant::now();
        let mut g = Governor::new(t0);
        g.tick(&cfg, t0, 0, 2.0, STEPPED);
        // 500k hits/s x 5 µs = 2.5 cores on a 2-core target: 125% while attached; cut short
        // at the runaway check (the governor's tick came late, at 10 ms).
        assert_eq!(
            g.tick(&cfg, t0 + ms(10), 5_000, 2.0, STEPPED),
            Action::Detach
        );
        let p = g.last_period().unwrap_or_else(|| panic!("no period"));
        assert!((p.overhead_attached - 1.25).abs() < 1e-9);
        assert!((p.duty - cfg.max_overhead / 1.25).abs() < 1e-12);
        // Off for 10 ms x (1/duty - 1) = 12.5 s on average, drawn from 6.25 to 18.75 s.
        let until = g.next_check(t0 + ms(10));
        let off = until - (t0 + ms(10));
        assert!(off >= ms(6240) && off < ms(18760), "{off:?}");
        assert_eq!(
            g.tick(&cfg, until - ms(1), 5_000, 2.0, STEPPED),
            Action::Keep
        );
        assert_eq!(g.tick(&cfg, until, 5_000, 2.0, STEPPED), Action::Attach);
        // The average cost over a cycle is the budget.
        let avg = p.overhead_attached * 0.010 / 12.5;
        assert!(avg <= cfg.max_overhead * 1.01, "{avg}");
    }

    #[test]
    fn next_check_is_the_runaway_check_then_the_period_end_then_the_reattach() {
        let cfg = BudgetConfig::default();
        let t0 = Instant::now();
        let mut g = Governor::new(t0);
        assert_eq!(g.next_check(t0), t0);
        g.tick(&cfg, t0, 0, 2.0, STEPPED);
        assert_eq!(g.next_check(t0), t0 + ms(2));
        assert_eq!(g.next_check(t0 + ms(2)), t0 + ms(100));
        // Far over budget at the runaway check (500k hits/s): detached until the duty cycle
        // allows, 2 ms x (1/duty - 1) = 2.5 s on average.
        assert_eq!(
            g.tick(&cfg, t0 + ms(2), 1_000, 2.0, STEPPED),
            Action::Detach
        );
        let off = g.next_check(t0 + ms(2));
        assert!(
            off > t0 + ms(1240) && off < t0 + Duration::from_secs(4),
            "{off:?}"
        );
        assert_eq!(g.tick(&cfg, off, 5_000, 2.0, STEPPED), Action::Attach);
        // A hook found cheap is next looked at when its period ends.
        let mut cheap = Governor::new(t0);
        cheap.tick(&cfg, t0, 0, 1.0, EMULATED);
        assert_eq!(
            cheap.tick(&cfg, t0 + ms(100), 10, 1.0, EMULATED),
            Action::Keep
        );
        assert_eq!(cheap.next_check(t0 + ms(100)), t0 + ms(200));
    }

    #[test]
    fn a_hook_cut_short_stays_off_at_least_the_minimum() {
        let cfg = BudgetConfig::default();
        let t0 = Instant::now();
        let mut g = Governor::new(t0);
        g.tick(&cfg, t0, 0, 1.0, EMULATED);
        // 30k hits/s x 1.5 µs = 4.5% of one core: cut at 10 ms; the duty cycle alone would
        // bring it back after 0.44 s, the minimum keeps it off 1 to 3 s.
        assert_eq!(
            g.tick(&cfg, t0 + ms(10), 300, 1.0, EMULATED),
            Action::Detach
        );
        assert_eq!(
            g.tick(&cfg, t0 + ms(1000), 300, 1.0, EMULATED),
            Action::Keep
        );
        assert_eq!(
            g.tick(&cfg, t0 + ms(3020), 300, 1.0, EMULATED),
            Action::Attach
        );
    }

    #[test]
    fn a_suspended_hook_is_attached_again_at_the_next_tick() {
        let cfg = BudgetConfig::default();
        let t0 = Instant::now();
        let mut g = Governor::new(t0);
        g.tick(&cfg, t0, 0, 1.0, EMULATED);
        g.suspend(t0 + ms(30));
        assert!(!g.attached());
        assert_eq!(g.attached_total(t0 + ms(500)), ms(30));
        assert_eq!(g.tick(&cfg, t0 + ms(500), 0, 1.0, EMULATED), Action::Attach);
        // Off by its duty cycle: suspending does not shorten the off time.
        let mut hot = Governor::new(t0);
        hot.tick(&cfg, t0, 0, 2.0, STEPPED);
        assert_eq!(
            hot.tick(&cfg, t0 + ms(10), 5_000, 2.0, STEPPED),
            Action::Detach
        );
        hot.suspend(t0 + ms(20));
        assert_eq!(
            hot.tick(&cfg, t0 + ms(3000), 5_000, 2.0, STEPPED),
            Action::Keep
        );
    }

    #[test]
    fn something_new_to_measure_brings_the_next_attach_within_the_minimum_off_time() {
        let cfg = BudgetConfig::default();
        let t0 = Instant::now();
        let mut g = Governor::new(t0);
        g.tick(&cfg, t0, 0, 2.0, STEPPED);
        assert_eq!(
            g.tick(&cfg, t0 + ms(10), 5_000, 2.0, STEPPED),
            Action::Detach
        );
        assert!(g.next_check(t0 + ms(10)) > t0 + Duration::from_secs(6));
        g.measure_soon(t0 + ms(20));
        assert_eq!(g.next_check(t0 + ms(20)), t0 + ms(20) + MIN_OFF);
        // Never later than it already was.
        g.measure_soon(t0 + ms(500));
        assert_eq!(g.next_check(t0 + ms(500)), t0 + ms(20) + MIN_OFF);
    }

    #[test]
    fn ungoverned_hooks_stay_attached_whatever_they_cost() {
        let cfg = BudgetConfig {
            governed: false,
            ..BudgetConfig::default()
        };
        let t0 = Instant::now();
        let mut g = Governor::new(t0);
        g.tick(&cfg, t0, 0, 1.0, STEPPED);
        assert_eq!(
            g.tick(&cfg, t0 + ms(10), 100_000, 1.0, STEPPED),
            Action::Keep
        );
        assert_eq!(
            g.tick(&cfg, t0 + ms(100), 1_000_000, 1.0, STEPPED),
            Action::Keep
        );
        assert!(g.attached());
        let p = g.last_period().unwrap_or_else(|| panic!("no period"));
        assert!(p.overhead_attached > 20.0);
    }

    #[test]
    fn off_time_is_capped_and_attached_time_accumulates() {
        let cfg = BudgetConfig {
            max_period_seconds: 5,
            ..BudgetConfig::default()
        };
        let t0 = Instant::now();
        let mut g = Governor::new(t0);
        g.tick(&cfg, t0, 0, 0.01, STEPPED);
        assert_eq!(
            g.tick(&cfg, t0 + ms(100), 1_000_000, 0.01, STEPPED),
            Action::Detach
        );
        assert_eq!(g.attached_total(t0 + ms(300)), ms(100));
        let back = t0 + ms(100) + Duration::from_secs(5);
        assert_eq!(g.tick(&cfg, back, 1_000_000, 0.01, STEPPED), Action::Attach);
        g.attach_failed(t0 + Duration::from_secs(6), Duration::from_secs(1));
        assert!(!g.attached());
    }

    #[test]
    fn after_a_period_over_budget_the_next_is_short_and_runs_its_length_whatever_it_sees() {
        let cfg = BudgetConfig::default();
        let t0 = Instant::now();
        let mut g = Governor::seeded(t0, 7);
        g.tick(&cfg, t0, 0, 2.0, STEPPED);
        assert_eq!(
            g.tick(&cfg, t0 + ms(10), 5_000, 2.0, STEPPED),
            Action::Detach
        );
        let back = g.next_check(t0 + ms(10));
        assert_eq!(g.tick(&cfg, back, 5_000, 2.0, STEPPED), Action::Attach);
        // 500k hits/s: planned at the 2 ms minimum, not checked before its end, however hot.
        assert_eq!(g.next_check(back), back + ms(2));
        assert_eq!(
            g.tick(&cfg, back + ms(1), 50_000, 2.0, STEPPED),
            Action::Keep
        );
        assert_eq!(
            g.tick(&cfg, back + ms(2), 50_000, 2.0, STEPPED),
            Action::Detach
        );
        let p = g.last_period().unwrap_or_else(|| panic!("no period"));
        assert!(!p.cut_short);
        // Drawn at random after a detached time: a sample of the time the hook is off.
        assert!(p.after_off);
        assert_eq!(p.attached, ms(2));
        // 30k hits/s at 1.5 µs on one core: 4.5%, duty 0.0222; what that allows in the 2 s
        // minimum off time, 45.5 ms, is longer than 200 hits' worth (6.7 ms).
        let mut warm = Governor::seeded(t0, 7);
        warm.tick(&cfg, t0, 0, 1.0, EMULATED);
        warm.tick(&cfg, t0 + ms(10), 300, 1.0, EMULATED);
        let back = warm.next_check(t0 + ms(10));
        warm.tick(&cfg, back, 300, 1.0, EMULATED);
        let len = warm.next_check(back) - back;
        assert!(len > ms(45) && len < ms(46), "{len:?}");
        // 50 hits/s single-stepped on a tenth of a core: 0.25%, duty 0.4; the 2 s off time
        // allows 1.33 s, ten samples' worth at most.
        let mut slow = Governor::seeded(t0, 7);
        slow.tick(&cfg, t0, 0, 0.1, STEPPED);
        slow.tick(&cfg, t0 + ms(100), 5, 0.1, STEPPED);
        let back = slow.next_check(t0 + ms(100));
        slow.tick(&cfg, back, 5, 0.1, STEPPED);
        assert_eq!(slow.next_check(back) - back, ms(1000));
        // A period within budget is followed by a full one, with no early check either.
        let mut cheap = Governor::seeded(t0, 7);
        cheap.tick(&cfg, t0, 0, 1.0, EMULATED);
        cheap.tick(&cfg, t0 + ms(100), 10, 1.0, EMULATED);
        assert_eq!(cheap.next_check(t0 + ms(100)), t0 + ms(200));
        assert_eq!(
            cheap.tick(&cfg, t0 + ms(110), 100_000, 1.0, EMULATED),
            Action::Keep
        );
    }

    #[test]
    fn detached_times_are_spread_around_what_the_duty_cycle_asks() {
        let cfg = BudgetConfig::default();
        let t0 = Instant::now();
        let mut g = Governor::seeded(t0, 12345);
        let (mut t, mut hits) = (t0, 0u64);
        let mut offs = Vec::new();
        g.tick(&cfg, t, hits, 2.0, STEPPED);
        for i in 0..400 {
            // 500k hits/s: duty 0.0008; the first period is cut at 10 ms (12.5 s off on
            // average), the others last 2 ms (2.5 s).
            t += g.next_check(t) - t;
            hits += if i == 0 { 5_000 } else { 1_000 };
            assert_eq!(g.tick(&cfg, t, hits, 2.0, STEPPED), Action::Detach);
            let until = g.next_check(t);
            if i > 0 {
                offs.push((until - t).as_secs_f64());
            }
            t = until;
            assert_eq!(g.tick(&cfg, t, hits, 2.0, STEPPED), Action::Attach);
        }
        let mean = offs.iter().sum::<f64>() / offs.len() as f64;
        let (lo, hi) = offs
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, b), x| (a.min(*x), b.max(*x)));
        assert!((mean - 2.498).abs() < 0.12, "mean {mean}");
        assert!(
            (1.24..1.4).contains(&lo) && hi > 3.6 && hi <= 3.75,
            "{lo} .. {hi}"
        );
        // Two governors made at once draw differently.
        let (mut a, mut b) = (Governor::new(t0), Governor::new(t0));
        assert_ne!(a.draw(), b.draw());
    }
}
