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
//! and a period's length is fixed when it starts, from the costliest period of the last five
//! minutes: short while one was over budget, the full `sample_ms` otherwise. A period begun
//! after a detached time is cut short only when it turns out far costlier than that.
//!
//! A hook is left attached (duty 1) after a period within budget only once it has been
//! measured a few times and no period in memory cost twenty times the budget: a bursty
//! program's quiet would otherwise leave the hook attached until the next storm met it with a
//! full-length period, whose cost was then paid back in one detached minute. A debt larger than one detached time pays (10 s) is spread over the
//! following cycles instead.
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
        /// The detached time was drawn at random by the duty cycle (see [`Period::after_off`]).
        drawn: bool,
    },
    Attached {
        since: Instant,
        base_hits: u64,
        /// The period's length, fixed when it started.
        length: Duration,
        /// Whether it began after a detached time of the duty cycle (see [`Period::after_off`]).
        after_off: bool,
        /// Overhead above which it is cut at the runaway check (`None`: it runs its length).
        runaway_above: Option<f64>,
        /// Time from the attach's start to the period's ([`Governor::attached_at`]): the hook
        /// cost the program then too, uncounted.
        transition: Duration,
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
    /// Cut short at the runaway check, far costlier than expected: its rate is a sample of
    /// the onset of what made it costly.
    pub cut_short: bool,
    /// It began after a detached time of the duty cycle, at a time drawn at random: a sample
    /// of the time the hook is detached. A period continuing a cheap one is not (the hook is
    /// detached only once a period finds it expensive, so the periods that end a cheap run
    /// all hold the onset of a storm, never its middle).
    pub after_off: bool,
}

/// How a measurement period ended (see [`Governor::tick`]).
#[derive(Clone, Copy, Debug)]
struct Ending {
    elapsed: Duration,
    transition: Duration,
    rate: f64,
    overhead: f64,
    cut_short: bool,
    after_off: bool,
}

/// The costliest period of the last [`PEAK_MEMORY`]: what the next period may meet.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Peak {
    at: Instant,
    overhead: f64,
    hits_per_second: f64,
}

/// The governor of one hook in one binary.
#[derive(Clone, Debug)]
pub struct Governor {
    state: State,
    last: Option<Period>,
    attached_total: Duration,
    /// xorshift state for the detached times' jitter.
    jitter: u64,
    peak: Option<Peak>,
    /// Periods measured so far (up to [`WARMUP`]).
    measured: u32,
    /// Detached time the budget still asks for beyond what was scheduled, seconds.
    owed: f64,
    /// Whether the attach's own time is paid back with the period ([`Governor::for_tracepoints`]).
    charge_attach: bool,
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

/// Shortest period. A storm of a million runtime.mcall calls a second, slowed twofold by the
/// traps, owes 10 s detached for each millisecond watched at one hook's share of the default
/// budget: at 2 ms a bursty program's storms were met once in 30 s. A millisecond still sees
/// hundreds of calls (fewer than `TARGET_HITS` it is not shortened to), and the hits during
/// the uprobe's registration are not counted (the period starts when it is registered).
pub const MIN_PERIOD: Duration = Duration::from_millis(1);

/// Latest runaway check (see [`runaway_check`]).
const RUNAWAY_AT: Duration = Duration::from_millis(2);

/// How long a costly period is remembered. A hook left attached while its program is quiet
/// meets the next storm with a period of `sample_ms`, a hundred times the 2 ms the storm's
/// cost allows: runtime.mcall of a program busy 60 ms in 250 ms was then detached for a
/// minute, one informative period a minute. Once a hook has cost [`RUNAWAY_FACTOR`] times its
/// budget it is sampled in short periods at random times until it has been cheaper this long.
const PEAK_MEMORY: Duration = Duration::from_secs(300);

/// Periods a hook is measured in, each begun at a random time, before it is first left
/// attached: a program that starts quiet is looked at a few times before its quiet is taken
/// for its nature.
const WARMUP: u32 = 3;

/// Longest detached time that pays for a single costly period, seconds; beyond it the debt is
/// paid over the next cycles, [`PAYBACK_CYCLES`] at a time, so that one period that met a
/// storm unprepared does not blind the hook for a minute.
const SPREAD: f64 = 10.0;

/// Cycles over which a debt above [`SPREAD`] is paid.
const PAYBACK_CYCLES: f64 = 4.0;

/// Periods no longer than this are not checked early: the check would cost a tick for at most
/// a few milliseconds saved.
const UNCHECKED: Duration = Duration::from_millis(4);

/// How often a period begun after a detached time is checked for being far costlier than
/// expected, and cut short: every tenth of the period, but at least every [`RUNAWAY_AT`]. The
/// time it ran is paid back detached at the duty cycle it found, so a first period cut at
/// 10 ms left runtime.mcall in a storm (33% overhead while attached, duty 0.0006) detached for
/// 19 s before its second period; and a program's first storm often begins tens of
/// milliseconds into the first period, after a check made only once, 2 ms in, had found it
/// quiet (its 100 ms then owed the longest detached time, a minute).
fn runaway_check(length: Duration) -> Duration {
    (length / 10).min(RUNAWAY_AT)
}

/// Runaway checks at the fine step ([`runaway_check`]) at the start of a period: a storm met
/// at once is cut within 2 ms.
const FINE_STEPS: u32 = 5;

/// Step of the runaway checks after the first [`FINE_STEPS`]: a check is a wake-up of the
/// governors' thread, on the observed program's CPUs (every 2 ms through a 100 ms period, a
/// program spinning one thread on a 2-vCPU VM lost its CPU at one read in three).
const LATE_STEP: Duration = Duration::from_millis(10);

/// Mean detached time between the periods of a hook's warm-up while they find it cheap: short,
/// so that a cheap hook counts exactly within a second of tracking (at the minimum off time a
/// 50-calls-a-second runtime.cgocall was still estimated 7 s in).
const WARMUP_OFF: Duration = Duration::from_millis(250);

/// How many times the overhead expected of a period it must cost to be cut at the runaway
/// check.
const RUNAWAY_FACTOR: f64 = 20.0;

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
            charge_attach: false,
            state: State::Detached {
                until: now,
                drawn: false,
            },
            last: None,
            attached_total: Duration::ZERO,
            jitter: seed | 1,
            peak: None,
            measured: 0,
            owed: 0.0,
        }
    }

    /// The same governor for the syscall tracepoint group: the attach's own time (0.6 ms for
    /// the three, the slow path on from the first) is paid back with the period, as the group
    /// cost the node then too. A uprobe's registration is not charged yet, though its
    /// breakpoints take hits before it returns (ARCHITECTURE.md, "Overhead budget").
    pub fn for_tracepoints(self) -> Self {
        Self {
            charge_attach: true,
            ..self
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

    /// The remembered peak, if it cost more than `times` the budget: over it at all (the
    /// periods are sized for it), or [`RUNAWAY_FACTOR`] times over, when a full period at it
    /// would owe more than the shortest detached time and the hook is not left attached (one a
    /// few times over budget, a sleeping program's timers on the idle floor of
    /// `MIN_TARGET_CORES`, is, and costs at most that much when its period finds it so).
    fn peak_over(&self, cfg: &BudgetConfig, times: f64) -> Option<Peak> {
        self.peak.filter(|p| p.overhead > times * cfg.max_overhead)
    }

    /// The remembered peak, if it cost more than the budget.
    fn costly_peak(&self, cfg: &BudgetConfig) -> Option<Peak> {
        self.peak_over(cfg, 1.0)
    }

    /// The length of a period starting after a detached time. With a costly period in memory:
    /// what the duty cycle at that peak allows in the shortest detached time (a hook over
    /// budget by less than the minimum off time's worth would otherwise leave budget unused:
    /// fewer calls seen, a rougher estimate), at least about [`TARGET_HITS`] hits' worth at the
    /// peak's rate, between [`MIN_PERIOD`] and [`LONGEST_PERIODS`] samples (a hook far over
    /// budget is sampled briefly, and the same budget then buys more, shorter periods; one a
    /// little over budget, 50 cgo calls a second single-stepped, watched 100 ms in 2 s saw five
    /// calls a period and its rate stayed withheld). Otherwise the full sample.
    fn planned_length(&self, cfg: &BudgetConfig) -> Duration {
        let sample = Duration::from_millis(cfg.sample_ms.max(1));
        match self.costly_peak(cfg) {
            Some(p) => {
                let duty = cfg.max_overhead / p.overhead;
                let allowed = MIN_OFF.as_secs_f64() * duty / (1.0 - duty);
                let hits = TARGET_HITS / p.hits_per_second.max(1.0);
                let want = allowed.max(hits.min((sample / 10).as_secs_f64()));
                let shortest = MIN_PERIOD.as_secs_f64();
                let longest = (sample * LONGEST_PERIODS).as_secs_f64().max(shortest);
                Duration::from_secs_f64(want.clamp(shortest, longest))
            }
            None => sample,
        }
    }

    /// The last finished measurement.
    pub fn last_period(&self) -> Option<Period> {
        self.last
    }

    /// When the running measurement period began (`None`: detached).
    pub fn period_start(&self) -> Option<Instant> {
        match self.state {
            State::Attached { since, .. } => Some(since),
            State::Detached { .. } => None,
        }
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
    /// the next runaway check of a period begun after one, or the period's end.
    pub fn next_check(&self, now: Instant) -> Instant {
        match self.state {
            State::Detached { until, .. } => until,
            State::Attached {
                since,
                length,
                runaway_above,
                ..
            } => {
                let end = since + length;
                if runaway_above.is_none() {
                    return end;
                }
                // Checked at every step of the first [`FINE_STEPS`], then every [`LATE_STEP`],
                // so that a storm that begins mid-period is met within a step, not at the
                // period's end, without a wake-up every 2 ms for a whole period.
                let step = runaway_check(length).max(Duration::from_micros(100));
                let fine = step * FINE_STEPS;
                let elapsed = now.saturating_duration_since(since);
                let (origin, step) = if elapsed < fine {
                    (since, step)
                } else {
                    (since + fine, LATE_STEP)
                };
                let steps = now.saturating_duration_since(origin).as_nanos() / step.as_nanos();
                let next = u32::try_from(steps + 1).map_or(end, |n| origin + step * n);
                next.min(end)
            }
        }
    }

    /// The attach asked for by the last tick completed at `now`: the measurement period starts
    /// here (registering a uprobe on a busy binary takes milliseconds, not to be counted as
    /// attached time without hits).
    pub fn attached_at(&mut self, now: Instant) {
        if let State::Attached {
            ref mut since,
            ref mut transition,
            ..
        } = self.state
        {
            if self.charge_attach {
                *transition = now.saturating_duration_since(*since);
            }
            *since = now;
        }
    }

    /// The hook was detached from outside the governor (nothing left to measure: a binary's
    /// last process exited, or no process is tracked). Counts the attached time so far and
    /// attaches again at the first tick; a hook detached by its duty cycle keeps its off time.
    pub fn suspend(&mut self, now: Instant) {
        if let State::Attached { since, .. } = self.state {
            self.attached_total += now.saturating_duration_since(since);
            self.state = State::Detached {
                until: now,
                drawn: false,
            };
        }
    }

    /// Something new to measure appeared (a process joined the hook's set): a hook detached
    /// by its duty cycle is attached again within [`MIN_OFF`] rather than at the end of an off
    /// time computed without it. New processes can pull a re-measurement at most that often.
    pub fn measure_soon(&mut self, now: Instant) {
        if let State::Detached { ref mut until, .. } = self.state {
            *until = (*until).min(now + MIN_OFF);
        }
    }

    /// The attach attempt failed: try again after `retry`.
    pub fn attach_failed(&mut self, now: Instant, retry: Duration) {
        self.state = State::Detached {
            until: now + retry,
            drawn: false,
        };
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
            State::Detached { until, drawn } => {
                if now < until {
                    return Action::Keep;
                }
                let length = self.planned_length(cfg);
                // A period begun after a detached time may meet what the last ones did not;
                // one that continues a cheap run is not checked (that would take a tick every
                // few milliseconds for every cheap hook).
                let expected = self.costly_peak(cfg).map_or(0.0, |p| p.overhead);
                self.state = State::Attached {
                    since: now,
                    base_hits: hits,
                    length,
                    after_off: drawn,
                    runaway_above: (length > UNCHECKED)
                        .then(|| RUNAWAY_FACTOR * cfg.max_overhead.max(1e-6).max(expected)),
                    transition: Duration::ZERO,
                };
                Action::Attach
            }
            State::Attached {
                since,
                base_hits,
                length,
                after_off,
                runaway_above,
                transition,
            } => {
                let elapsed = now.saturating_duration_since(since);
                let secs = elapsed.as_secs_f64();
                let rate = if secs > 0.0 {
                    hits.saturating_sub(base_hits) as f64 / secs
                } else {
                    0.0
                };
                let overhead = rate * hit_cost.as_secs_f64() / target_cores.max(MIN_TARGET_CORES);
                let runaway = runaway_above
                    .is_some_and(|above| elapsed >= runaway_check(length) && overhead > above);
                if elapsed < length && !runaway {
                    return Action::Keep;
                }
                self.attached_total += elapsed;
                let cut_short = elapsed < length;
                let ended = Ending {
                    elapsed,
                    transition,
                    rate,
                    overhead,
                    cut_short,
                    after_off,
                };
                match self.finish(cfg, now, ended) {
                    Some(off) => {
                        self.state = State::Detached {
                            until: now + off,
                            drawn: true,
                        };
                        Action::Detach
                    }
                    None => {
                        // Within budget: keep measuring, period after period.
                        self.state = State::Attached {
                            since: now,
                            base_hits: hits,
                            length: Duration::from_millis(cfg.sample_ms.max(1)),
                            after_off: false,
                            runaway_above: None,
                            transition: Duration::ZERO,
                        };
                        Action::Keep
                    }
                }
            }
        }
    }

    /// Records the period that ended at `now` and returns the detached time that follows it:
    /// none (another period at once) while the hook is cheap and nothing costly is remembered,
    /// otherwise one drawn around what pays for the periods' cost.
    fn finish(&mut self, cfg: &BudgetConfig, now: Instant, ended: Ending) -> Option<Duration> {
        let budget = cfg.max_overhead;
        let first = self.last.is_none();
        let keep_peak = self.peak.is_some_and(|p| {
            now.saturating_duration_since(p.at) < PEAK_MEMORY && p.overhead > ended.overhead
        });
        if !keep_peak {
            self.peak = Some(Peak {
                at: now,
                overhead: ended.overhead,
                hits_per_second: ended.rate,
            });
        }
        let within = ended.overhead <= budget || !cfg.governed;
        self.measured = (self.measured + 1).min(WARMUP);
        let calm = !cfg.governed
            || (within && self.measured >= WARMUP && self.peak_over(cfg, RUNAWAY_FACTOR).is_none());
        let secs = ended.elapsed.as_secs_f64();
        let duty = if calm {
            1.0
        } else {
            let costliest = self.costly_peak(cfg).map_or(ended.overhead, |p| p.overhead);
            if costliest > budget {
                budget / costliest
            } else {
                // Warming up: attached for its sample, then off for about the minimum.
                secs / (secs + MIN_OFF.as_secs_f64())
            }
        };
        self.last = Some(Period {
            ended: now,
            attached: ended.elapsed,
            hits_per_second: ended.rate,
            overhead_attached: ended.overhead,
            duty,
            cut_short: ended.cut_short,
            after_off: ended.after_off,
        });
        if calm {
            return None;
        }
        // What keeps the average cost within budget: the period's cost paid back detached,
        // plus what earlier periods still owe.
        let cap = cfg.max_period_seconds as f64;
        // The attach's own time cost the program as much as the period's, and is paid back
        // with it: a syscall tracepoint group takes 0.6 ms to attach, more than half of the
        // shortest period.
        let paid = secs + ended.transition.as_secs_f64();
        let own = if ended.overhead > budget {
            paid * (ended.overhead / budget - 1.0)
        } else {
            0.0
        };
        // A hook's first period ends at the governors' first pass over its binary, which
        // attaches every hook and took 235 ms (debug build) where 2 ms were planned: the
        // storm's runtime.mcall then owed a minute, and its rate waited for it. That one-off
        // cost is not paid back beyond the minimum off time.
        let own = if first {
            own.min(MIN_OFF.as_secs_f64())
        } else {
            own
        };
        let due = (self.owed + own).min(cap);
        let nominal = if due > SPREAD {
            SPREAD.max(due / PAYBACK_CYCLES)
        } else {
            due
        };
        self.owed = due - nominal;
        let warming = self.measured < WARMUP && self.costly_peak(cfg).is_none();
        let floor = if warming { WARMUP_OFF } else { MIN_OFF };
        let off = (nominal.max(floor.as_secs_f64()) * self.draw()).min(cap);
        Some(Duration::from_secs_f64(off))
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

    /// Runs a hook at `per_second` hits through its warm-up: [`WARMUP`] periods within budget,
    /// each but the first begun at a random time. Returns when it was left attached.
    fn warm_up(g: &mut Governor, cfg: &BudgetConfig, t0: Instant, per_second: u64) -> Instant {
        let mut t = t0;
        let mut hits = 0;
        for i in 0..WARMUP {
            assert_eq!(g.tick(cfg, t, hits, 1.0, EMULATED), Action::Attach);
            // A full sample, with a runaway check every 2 ms.
            assert_eq!(g.next_check(t), t + ms(2));
            assert_eq!(g.tick(cfg, t + ms(2), hits, 1.0, EMULATED), Action::Keep);
            assert_eq!(g.next_check(t + ms(2)), t + ms(4));
            assert_eq!(g.next_check(t + ms(99)), t + ms(100));
            t += ms(100);
            hits += per_second / 10;
            let action = g.tick(cfg, t, hits, 1.0, EMULATED);
            let p = g.last_period().unwrap_or_else(|| panic!("no period"));
            assert_eq!(p.after_off, i > 0);
            if i + 1 < WARMUP {
                // Looked at again after about the minimum off time.
                assert_eq!(action, Action::Detach);
                assert!(p.duty < 0.05, "{p:?}");
                let back = g.next_check(t);
                assert!(back >= t + WARMUP_OFF / 2 && back < t + WARMUP_OFF * 3 / 2);
                t = back;
            } else {
                assert_eq!(action, Action::Keep);
            }
        }
        t
    }

    #[test]
    fn cheap_hook_stays_attached_after_its_warm_up() {
        let cfg = BudgetConfig::default();
        let t0 = Instant::now();
        let mut g = Governor::new(t0);
        // 100 hits/s x 1.5 µs = 0.015% of one core: well within 0.1%.
        let t = warm_up(&mut g, &cfg, t0, 100);
        assert!(g.attached());
        let p = g.last_period().unwrap_or_else(|| panic!("no period"));
        assert!((p.hits_per_second - 100.0).abs() < 1e-6);
        assert_eq!(p.duty, 1.0);
        // Period after period, with no early check.
        assert_eq!(g.next_check(t), t + ms(100));
        assert_eq!(g.tick(&cfg, t + ms(100), 40, 1.0, EMULATED), Action::Keep);
        let p = g.last_period().unwrap_or_else(|| panic!("no period"));
        assert!(!p.after_off && p.duty == 1.0);
    }

    #[test]
    fn a_warm_up_period_that_meets_a_storm_is_cut_at_the_next_runaway_check() {
        let cfg = BudgetConfig::default();
        let t0 = Instant::now();
        let mut g = Governor::seeded(t0, 3);
        g.tick(&cfg, t0, 0, 1.0, EMULATED);
        assert_eq!(
            g.tick(&cfg, t0 + ms(100), 10, 1.0, EMULATED),
            Action::Detach
        );
        let back = g.next_check(t0 + ms(100));
        g.tick(&cfg, back, 10, 1.0, EMULATED);
        // 500k hits/s: 75% of the core, far over 20 times the budget.
        assert_eq!(
            g.tick(&cfg, back + ms(2), 1_010, 1.0, EMULATED),
            Action::Detach
        );
        let p = g.last_period().unwrap_or_else(|| panic!("no period"));
        assert!(p.cut_short && p.after_off);
        // One that begins quiet and meets the storm 45 ms in is cut at the next check.
        let mut g = Governor::seeded(t0, 3);
        g.tick(&cfg, t0, 0, 1.0, EMULATED);
        assert_eq!(g.tick(&cfg, t0 + ms(50), 5, 1.0, EMULATED), Action::Keep);
        assert_eq!(g.next_check(t0 + ms(50)), t0 + ms(60));
        assert_eq!(
            g.tick(&cfg, t0 + ms(60), 1_505, 1.0, EMULATED),
            Action::Detach
        );
        let p = g.last_period().unwrap_or_else(|| panic!("no period"));
        assert!(p.cut_short && p.attached == ms(60));
    }

    #[test]
    fn a_costly_period_keeps_the_hook_sampled_in_short_periods_while_remembered() {
        // One hook's share of the default budget.
        let cfg = BudgetConfig {
            max_overhead: 0.0002,
            ..BudgetConfig::default()
        };
        let t0 = Instant::now();
        let mut g = Governor::seeded(t0, 11);
        let mut t = warm_up(&mut g, &cfg, t0, 100);
        // A storm meets the attached hook: its 100 ms period at 33% of the core costs 33 ms,
        // 165 s of detached time at this budget, capped at the 60 s refresh; paid over several
        // cycles rather than in one minute-long gap.
        let hits = 10 + 22_000;
        t += ms(100);
        assert_eq!(g.tick(&cfg, t, hits, 1.0, EMULATED), Action::Detach);
        let mut offs = Vec::new();
        for _ in 0..12 {
            let back = g.next_check(t);
            offs.push((back - t).as_secs_f64());
            t = back;
            assert_eq!(g.tick(&cfg, t, hits, 1.0, EMULATED), Action::Attach);
            // Quiet now, yet the next period is as short as the storm's cost allows (what
            // the duty cycle at 33% allows in 2 s, 1.2 ms; not checked early), and it is
            // followed by a detached time again.
            let end = g.next_check(t);
            assert!(end - t > ms(1) && end - t < ms(2), "{:?}", end - t);
            t = end;
            assert_eq!(g.tick(&cfg, t, hits, 1.0, EMULATED), Action::Detach);
            let p = g.last_period().unwrap_or_else(|| panic!("no period"));
            let duty = cfg.max_overhead / 0.33;
            assert!(p.after_off && (p.duty - duty).abs() < 1e-3 * duty, "{p:?}");
        }
        // No gap longer than one and a half times the 15 s share; together the 60 s owed,
        // each draw between half and one and a half of its share, then the minimum off times.
        assert!(offs.iter().all(|o| *o <= 22.5), "{offs:?}");
        assert!(offs.iter().sum::<f64>() > 30.0 + 4.0, "{offs:?}");
        // Once the storm is out of memory, three cheap periods leave it attached again.
        let later = t0 + PEAK_MEMORY + Duration::from_secs(120);
        loop {
            t = g.next_check(t);
            let action = g.tick(&cfg, t, hits, 1.0, EMULATED);
            let continuous = g.last_period().is_some_and(|p| p.duty == 1.0);
            if action == Action::Keep && continuous {
                break;
            }
            assert!(t < later, "still sampled at {:?}", t - t0);
        }
        assert!(g.attached() && t > t0 + PEAK_MEMORY);
    }

    #[test]
    fn a_hook_a_few_times_over_budget_is_left_attached_after_its_next_cheap_period() {
        let cfg = BudgetConfig::default();
        let t0 = Instant::now();
        let mut g = Governor::seeded(t0, 9);
        let t = warm_up(&mut g, &cfg, t0, 100);
        // 3 000 hits/s x 1.5 µs = 0.45% of the core, 4.5 times the budget: detached, but
        // nothing a full period could meet would owe much.
        let t = t + ms(100);
        assert_eq!(g.tick(&cfg, t, 30 + 300, 1.0, EMULATED), Action::Detach);
        let back = g.next_check(t);
        assert_eq!(g.tick(&cfg, back, 330, 1.0, EMULATED), Action::Attach);
        assert_eq!(
            g.tick(&cfg, back + Duration::from_secs(1), 340, 1.0, EMULATED),
            Action::Keep
        );
        assert_eq!(g.last_period().map(|p| p.duty), Some(1.0));
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
        // It owes 10 ms x (1/duty - 1) = 12.5 s off, but a first period pays no more than the
        // minimum off time: off for 1 to 3 s, nothing owed.
        let until = g.next_check(t0 + ms(10));
        let off = until - (t0 + ms(10));
        assert!(off >= ms(990) && off < ms(3010), "{off:?}");
        assert!(g.owed.abs() < 1e-9, "{}", g.owed);
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
    fn the_attachs_own_time_is_paid_back_with_the_period() {
        let cfg = BudgetConfig::default();
        // Two governors alike but for the second period's attach, which takes 5 ms in one.
        let t0 = Instant::now();
        let offs: Vec<f64> = [Duration::ZERO, ms(5)]
            .into_iter()
            .map(|attach| {
                let mut g = Governor::seeded(t0, 7).for_tracepoints();
                let back = back_after_a_hot_period(&mut g, &cfg, t0);
                let start = back + attach;
                g.attached_at(start);
                // 500k hits a second again, over the planned period.
                let end = g.next_check(start);
                let secs = (end - start).as_secs_f64();
                let hits = 5_000 + (500_000.0 * secs) as u64;
                assert_eq!(g.tick(&cfg, end, hits, 2.0, STEPPED), Action::Detach);
                let off = g.next_check(end) - end;
                // What it owes: its time and the attach's, each at 1249 times the budget.
                let owed = (secs + attach.as_secs_f64()) * (1.25 / cfg.max_overhead - 1.0);
                assert!(owed < SPREAD, "{owed}");
                off.as_secs_f64() / owed.max(MIN_OFF.as_secs_f64())
            })
            .collect();
        // The same draw scales both.
        assert!((offs[0] - offs[1]).abs() < 0.01 * offs[0], "{offs:?}");
    }

    #[test]
    fn next_check_is_the_runaway_check_then_the_period_end_then_the_reattach() {
        let cfg = BudgetConfig::default();
        let t0 = Instant::now();
        let mut g = Governor::new(t0);
        assert_eq!(g.next_check(t0), t0);
        g.tick(&cfg, t0, 0, 2.0, STEPPED);
        assert_eq!(g.next_check(t0), t0 + ms(2));
        assert_eq!(g.next_check(t0 + ms(2)), t0 + ms(4));
        assert_eq!(g.next_check(t0 + ms(8)), t0 + ms(10));
        assert_eq!(g.next_check(t0 + ms(51)), t0 + ms(60));
        assert_eq!(g.next_check(t0 + ms(99)), t0 + ms(100));
        // Far over budget at the runaway check (500k hits/s): it owes 2 ms x (1/duty - 1) =
        // 2.5 s, but a first period pays no more than the minimum off time: off 1 to 3 s.
        assert_eq!(
            g.tick(&cfg, t0 + ms(2), 1_000, 2.0, STEPPED),
            Action::Detach
        );
        let off = g.next_check(t0 + ms(2));
        assert!(off >= t0 + ms(1000) && off < t0 + ms(3010), "{off:?}");
        assert_eq!(g.tick(&cfg, off, 5_000, 2.0, STEPPED), Action::Attach);
        // A hook found cheap, once warmed up, is next looked at when its period ends.
        let mut cheap = Governor::new(t0);
        let t = warm_up(&mut cheap, &cfg, t0, 100);
        assert_eq!(cheap.next_check(t), t + ms(100));
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
        let (mut hot, t) = hot_second_period(&cfg, t0);
        hot.suspend(t + ms(10));
        assert_eq!(
            hot.tick(&cfg, t + ms(3000), 10_000, 2.0, STEPPED),
            Action::Keep
        );
    }

    /// `g`'s first period, at 500k hits a second (cut at 10 ms), and the attach after its
    /// detached time: returns when that second period began.
    fn back_after_a_hot_period(g: &mut Governor, cfg: &BudgetConfig, t0: Instant) -> Instant {
        g.tick(cfg, t0, 0, 2.0, STEPPED);
        assert_eq!(
            g.tick(cfg, t0 + ms(10), 5_000, 2.0, STEPPED),
            Action::Detach
        );
        let back = g.next_check(t0 + ms(10));
        assert_eq!(g.tick(cfg, back, 5_000, 2.0, STEPPED), Action::Attach);
        back
    }

    /// A hook at 500k hits/s single-stepped on two cores (125% overhead) after its second
    /// period, 10 ms long, which owes 12.5 s detached (a first period pays at most the
    /// minimum); returns it and when that period ended.
    fn hot_second_period(cfg: &BudgetConfig, t0: Instant) -> (Governor, Instant) {
        let mut g = Governor::new(t0);
        let back = back_after_a_hot_period(&mut g, cfg, t0);
        let end = back + ms(10);
        assert_eq!(g.tick(cfg, end, 10_000, 2.0, STEPPED), Action::Detach);
        (g, end)
    }

    #[test]
    fn something_new_to_measure_brings_the_next_attach_within_the_minimum_off_time() {
        let cfg = BudgetConfig::default();
        let t0 = Instant::now();
        let (mut g, t) = hot_second_period(&cfg, t0);
        assert!(g.next_check(t) > t + Duration::from_secs(4));
        g.measure_soon(t + ms(20));
        assert_eq!(g.next_check(t + ms(20)), t + ms(20) + MIN_OFF);
        // Never later than it already was.
        g.measure_soon(t + ms(500));
        assert_eq!(g.next_check(t + ms(500)), t + ms(20) + MIN_OFF);
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
        let back = back_after_a_hot_period(&mut g, &cfg, t0);
        // 500k hits/s: planned at what duty 0.0008 allows in 2 s, 1.6 ms, not checked before
        // its end, however hot.
        let end = g.next_check(back);
        assert_eq!(end - back, Duration::from_secs_f64(2.0 * 0.0008 / 0.9992));
        assert_eq!(
            g.tick(&cfg, back + ms(1), 50_000, 2.0, STEPPED),
            Action::Keep
        );
        assert_eq!(g.tick(&cfg, end, 50_000, 2.0, STEPPED), Action::Detach);
        let p = g.last_period().unwrap_or_else(|| panic!("no period"));
        assert!(!p.cut_short);
        // Drawn at random after a detached time: a sample of the time the hook is off.
        assert!(p.after_off);
        assert_eq!(p.attached, end - back);
        // 30k hits/s at 1.5 µs on one core: 4.5%, duty 0.0222; what that allows in the 2 s
        // minimum off time, 45.5 ms, is longer than 200 hits' worth (6.7 ms).
        let mut warm = Governor::seeded(t0, 7);
        warm.tick(&cfg, t0, 0, 1.0, EMULATED);
        warm.tick(&cfg, t0 + ms(10), 300, 1.0, EMULATED);
        let back = warm.next_check(t0 + ms(10));
        warm.tick(&cfg, back, 300, 1.0, EMULATED);
        // Checked 2 ms in, against 20 times the overhead it found before.
        assert_eq!(warm.next_check(back), back + ms(2));
        assert_eq!(
            warm.tick(&cfg, back + ms(2), 360, 1.0, EMULATED),
            Action::Keep
        );
        let len = warm.next_check(back + ms(44)) - back;
        assert!(len > ms(45) && len < ms(46), "{len:?}");
        // 50 hits/s single-stepped on a tenth of a core: 0.25%, duty 0.4; the 2 s off time
        // allows 1.33 s, ten samples' worth at most.
        let mut slow = Governor::seeded(t0, 7);
        slow.tick(&cfg, t0, 0, 0.1, STEPPED);
        slow.tick(&cfg, t0 + ms(100), 5, 0.1, STEPPED);
        let back = slow.next_check(t0 + ms(100));
        slow.tick(&cfg, back, 5, 0.1, STEPPED);
        assert_eq!(slow.next_check(back + ms(999)) - back, ms(1000));
        // A period within budget, once warmed up, is followed by a full one, with no early
        // check either.
        let mut cheap = Governor::seeded(t0, 7);
        let t = warm_up(&mut cheap, &cfg, t0, 100);
        assert_eq!(cheap.next_check(t), t + ms(100));
        assert_eq!(
            cheap.tick(&cfg, t + ms(10), 100_000, 1.0, EMULATED),
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
            // The first period is cut at 10 ms at 500k hits/s (duty 0.0008, 12.5 s owed), the
            // others last 1 ms at a million (2.5 s).
            t += g.next_check(t) - t;
            hits += if i == 0 { 5_000 } else { 1_000 };
            assert_eq!(g.tick(&cfg, t, hits, 2.0, STEPPED), Action::Detach);
            let until = g.next_check(t);
            // The first period's 12.5 s debt is paid over two cycles.
            if i > 1 {
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
