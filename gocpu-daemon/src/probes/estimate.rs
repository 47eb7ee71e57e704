//! Rates of a governed hook, estimated from its attached periods.
//!
//! While a hook is duty-cycled, its calls are seen only in short attached periods. What is
//! estimated is the calls of the time it was detached, by a model fitted to the periods: calls
//! = `a` × wall seconds + `b` × the process's CPU seconds. A Go program makes two kinds of
//! runtime calls: those that come with work (a goroutine switch per channel hand-off, a futex
//! wake per parked M woken: per CPU second), and those that come with time (sysmon's usleep,
//! timers, idle Ms parking and waking: per wall second). A program busy in bursts makes the
//! first kind only while busy, so calls per wall second swing between zero and the storm's
//! rate from one 10 ms period to the next, while per CPU second they do not; a program quiet
//! between phases makes the second kind with almost no CPU, and calls per CPU second alone
//! would charge them to the storm's CPU time (one run of the phase-changing workload read x4 to
//! x7 so; with both terms some runs still read x3 to x5, cause not found: ARCHITECTURE.md,
//! "Estimates and their error model"). The process's CPU
//! time is known exactly over every window (context switches are always traced), so the calls
//! the periods did not see are `a` × the time not watched plus `b` × the CPU time then.
//!
//! The fit (least squares weighted by 1 / period length, the variance of a count growing with
//! its length; `a` and `b` kept non-negative) pools every period that ended in the window, and
//! at least the newest [`MIN_SAMPLES`] and [`MIN_POOL_CPU`] (older ones, up to [`MAX_AGE`]) when
//! the window holds fewer. The periods' start times must not depend on the program (the
//! governor jitters them, see `budget.rs`), nor their lengths on what they see (fixed when
//! attached): otherwise the pool over-represents one phase of the program. The interval is two
//! standard errors of the predicted calls either side, the coefficients' covariance taken from
//! each period's own residual ([`robust_cov`]); there is none while one period alone carries
//! a term of the model.
use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::probes::budget::Period;

/// Fewest periods a model pools, reaching back before the window when it holds fewer.
pub const MIN_SAMPLES: usize = 8;
/// Least CPU time a model pools, seconds, reaching back further when the newest periods saw
/// less: periods in a program's quiet see almost no CPU, and calls per CPU second need the busy
/// time.
pub const MIN_POOL_CPU: f64 = 0.02;
/// Oldest period a model may pool, seconds.
pub const MAX_AGE: f64 = 600.0;
/// Periods kept per process and hook.
const KEPT: usize = 64;

/// One finished attached period, seen from one process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// When the period ended.
    pub ended: Instant,
    /// How long the hook was attached, seconds.
    pub seconds: f64,
    /// Calls the process made in it.
    pub calls: u64,
    /// The process's on-CPU time in it, nanoseconds, the hook's own hits included.
    pub cpu_ns: u64,
    /// What the hook's hits added to `cpu_ns`: calls × the calibrated cost of one hit.
    pub probe_ns: u64,
    /// It began at a random time after a detached one ([`Period::after_off`]).
    pub after_off: bool,
    /// Goroutine switches the runtime counted in it (`runtime/sched.rs`), where read.
    pub switches: Option<u64>,
}

impl Sample {
    /// What a process did in the finished `period`: `calls` made and `cpu_ns` of CPU time, of
    /// which the hook's hits took `probe_ns` ([`hits_cost`]).
    pub fn of(period: &Period, calls: u64, cpu_ns: u64, probe_ns: u64) -> Sample {
        Sample {
            ended: period.ended,
            seconds: period.attached.as_secs_f64(),
            calls,
            cpu_ns,
            probe_ns,
            after_off: period.after_off,
            switches: None,
        }
    }

    /// The same period with the runtime's count of goroutine switches in it.
    pub fn with_switches(self, switches: Option<u64>) -> Sample {
        Sample { switches, ..self }
    }

    /// The period's length less the part of it the hook's hits took from the program (in the
    /// proportion they took of its CPU time): a program slowed by the traps makes fewer calls
    /// per wall second too.
    fn own_seconds(&self) -> f64 {
        if self.cpu_ns == 0 {
            return self.seconds;
        }
        self.seconds * self.own_cpu_seconds() * 1e9 / self.cpu_ns as f64
    }

    /// The CPU seconds the program itself used in the period: its CPU time less what the
    /// hook's hits cost, but never less than [`MIN_OWN_CPU`] of it (a calibrated cost above the
    /// real one would otherwise leave nothing, and calls per CPU second without bound).
    fn own_cpu_seconds(&self) -> f64 {
        let cpu = self.cpu_ns as f64;
        (cpu - self.probe_ns as f64).max(MIN_OWN_CPU * cpu) / 1e9
    }
}

/// The CPU time, nanoseconds, that `hits` hits of `cost` each took from the program.
pub fn hits_cost(hits: u64, cost: Duration) -> u64 {
    hits.saturating_mul(u64::try_from(cost.as_nanos()).unwrap_or(u64::MAX))
}

/// Least part of a period's CPU time taken as the program's own, however many hits it held.
const MIN_OWN_CPU: f64 = 0.05;

/// The most a hit may cost a watched program, as a multiple of the calibrated cost. Calibration
/// times a hit on a tiny function of the daemon in a tight loop, the least a hit costs; in a
/// goroutine storm, runtime.mcall's hits took the program 1.6 to 2.2 times that (its own time
/// per call known from its round-trip count: the trap's cold caches, and the scheduler parking
/// threads it would have kept spinning, since each switch is slower).
const HIT_COST_MAX: f64 = 2.5;

/// A process's recent periods of one hook, newest last.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SampleLog {
    samples: VecDeque<Sample>,
}

/// Periods pooled into one fitted model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pool {
    /// Calls per wall second (`a`).
    pub per_second: f64,
    /// Calls per CPU second (`b`).
    pub per_cpu_second: f64,
    /// Covariance of (`a`, `b`) (`None` with no degree of freedom left).
    pub cov: Option<[[f64; 2]; 2]>,
    /// Calls seen.
    pub calls: f64,
    /// The process's CPU seconds while attached.
    pub cpu_seconds: f64,
    /// Attached seconds.
    pub seconds: f64,
    /// Periods pooled.
    pub samples: usize,
    /// The part of the pooled periods' CPU time their hook's hits took (calibrated cost).
    pub probe_share: f64,
    /// The most CPU time per second any pooled period saw, cores.
    pub busiest: f64,
}

impl Pool {
    /// How far the model's calls may be off because the hook's cost in the program is known
    /// only to lie between the calibrated one and [`HIT_COST_MAX`] times it: factors (low,
    /// high) on them.
    pub fn cost_factors(&self) -> (f64, f64) {
        let own = |k: f64| (1.0 - k * self.probe_share).max(MIN_OWN_CPU);
        (1.0, own(1.0) / own(HIT_COST_MAX))
    }

    /// The calls predicted for `seconds` of wall time holding `cpu_seconds`, and their standard
    /// error when known.
    pub fn predict(&self, seconds: f64, cpu_seconds: f64) -> (f64, Option<f64>) {
        let mean = self.per_second * seconds + self.per_cpu_second * cpu_seconds;
        let se = self.cov.map(|c| {
            let x = [seconds, cpu_seconds];
            let v =
                x[0] * (c[0][0] * x[0] + c[0][1] * x[1]) + x[1] * (c[1][0] * x[0] + c[1][1] * x[1]);
            v.max(0.0).sqrt()
        });
        (mean, se)
    }
}

/// What a period's CPU time may be off by. Its readings include the slices running at that
/// instant (`cpu_now.rs`), so little: a slice the clock charges between the two reads of one
/// reading (microseconds apart) is missed by that reading.
const CPU_CHARGE_ERROR: f64 = 0.001;

/// The models a pool may be fitted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Model {
    /// Calls per wall second only.
    Wall,
    /// Calls per CPU second only.
    Cpu,
    /// Both.
    Both,
}

/// How a pool's model is chosen among those that fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    /// Two terms when they fit, else the single term that fits better (estimates used without
    /// their interval: the syscall counters).
    PointEstimate,
    /// The first of those with an interval.
    Bounded,
}

/// One period as a regression row: (seconds, cpu seconds, calls).
type Row = (f64, f64, f64);

/// A fitted model: (a, b, inverse of the weighted normal matrix, parameters, which model).
type Fitted = (f64, f64, [[f64; 2]; 2], usize, Model);

/// Weighted least squares of `rows` under `model`; `None` when it cannot be fitted or a
/// coefficient comes out negative. The weights are 1 / seconds (a count's variance grows with its
/// length), or, for calls per CPU second alone, 1 / CPU seconds.
///
/// Either way the fit reproduces the periods' total calls (the residuals sum to zero), so that
/// its prediction for the time not watched is the periods' calls scaled up, corrected by how
/// far that time's CPU differs from theirs: true of any program when the periods are drawn at
/// random, whether its calls follow CPU time or not. Calls per CPU second weighted by 1 /
/// seconds instead (the slope of calls over CPU time, not their ratio) weighted the periods by
/// how busy they were: in a program busy in bursts, whose futex calls come at the bursts' edges
/// (Ms parking and waking) more than in their busiest middle, that read futex(2) at x0.3.
fn fit_model(rows: &[Row], model: Model) -> Option<Fitted> {
    let (mut stt, mut stc, mut scc, mut sty, mut scy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (t, c, y) in rows {
        stt += t;
        stc += c;
        scc += c * c / t;
        sty += y;
        scy += c * y / t;
    }
    match model {
        Model::Wall => {
            (stt > 0.0).then(|| (sty / stt, 0.0, [[1.0 / stt, 0.0], [0.0, 0.0]], 1, model))
        }
        Model::Cpu => {
            // Weights 1 / c: the ratio of the sums.
            let (sc, sy): (f64, f64) = rows
                .iter()
                .fold((0.0, 0.0), |(sc, sy), (_, c, y)| (sc + c, sy + y));
            (scc > 0.0 && sc > 0.0).then(|| (0.0, sy / sc, [[0.0, 0.0], [0.0, 1.0 / sc]], 1, model))
        }
        Model::Both => {
            let det = stt * scc - stc * stc;
            if det <= 1e-9 * stt * scc || scc <= 0.0 {
                return None;
            }
            let a = (scc * sty - stc * scy) / det;
            let b = (stt * scy - stc * sty) / det;
            (a >= 0.0 && b >= 0.0).then(|| {
                (
                    a,
                    b,
                    [[scc / det, -stc / det], [-stc / det, stt / det]],
                    2,
                    model,
                )
            })
        }
    }
}

/// The pool's model: calls per wall second and per CPU second (the one of them that fits the
/// periods better when they cannot tell the two apart, or one comes out negative; with one
/// period, equally good, per CPU second). CPU time enters only when the
/// periods' total is large against what its reading may miss ([`CPU_CHARGE_ERROR`] each,
/// adding up as noise). When CPU time was read as charged (slices charged when they end, at a
/// switch or the 99 Hz clock), a 2 ms period of a storm got 0 or 10 ms and calls per CPU second
/// from a few of them were off by multiples.
fn fit(samples: &[&Sample], choice: Choice) -> Option<Pool> {
    let used: Vec<&Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.seconds > 0.0)
        .collect();
    // The program's own time in each period: the model is of the program unwatched.
    let rows: Vec<Row> = used
        .iter()
        .map(|s| (s.own_seconds(), s.own_cpu_seconds(), s.calls as f64))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let n = rows.len();
    let cpu: f64 = rows.iter().map(|r| r.1).sum();
    let cpu_reliable = cpu >= 5.0 * CPU_CHARGE_ERROR * (n as f64).sqrt();
    let rss = |(a, b, ..): &Fitted| -> f64 {
        rows.iter()
            .map(|(t, c, y)| (y - a * t - b * c).powi(2) / t)
            .sum()
    };
    // One term when the two cannot both be fitted: the one that fits better first. Calls that
    // come with time (sysmon's naps) charged to CPU would follow a storm's CPU up to x9; calls
    // that come with work charged to time would follow the clock.
    let (wall, cpu_only) = (
        fit_model(&rows, Model::Wall),
        fit_model(&rows, Model::Cpu).filter(|_| cpu_reliable),
    );
    let singles = match (cpu_only, wall) {
        // Per CPU second unless per wall second is better by more than rounding.
        (Some(c), Some(w)) => {
            let scale: f64 = rows.iter().map(|(t, _, y)| y * y / t).sum();
            if rss(&w) + 1e-9 * scale < rss(&c) {
                [Some(w), Some(c)]
            } else {
                [Some(c), Some(w)]
            }
        }
        (c, w) => [c.or(w), None],
    };
    let both = fit_model(&rows, Model::Both).filter(|_| cpu_reliable);
    let candidates: Vec<Fitted> = std::iter::once(both).chain(singles).flatten().collect();
    // A bounded pool takes the first model that can say how sure it is: a term resting on one
    // period (sysmon's naps fitted beside a storm's one busy period) cannot, while the simpler
    // model's residuals show what it leaves out. A point estimate keeps the first: the one busy
    // period is the only word on the storm, and calls per wall second from the quiet ones read
    // the phase-changing workload's syscalls at x0.2.
    let first = candidates.first().map(|f| (*f, robust_cov(&rows, *f)));
    let (fitted, cov) = match choice {
        Choice::Bounded => candidates
            .iter()
            .find_map(|f| Some((*f, Some(robust_cov(&rows, *f)?))))
            .or(first),
        Choice::PointEstimate => first,
    }?;
    let (a, b, ..) = fitted;
    // What the periods were, hits included: `cpu` above is the program's own part of it.
    let raw_cpu: f64 = used.iter().map(|s| s.cpu_ns as f64 / 1e9).sum();
    Some(Pool {
        per_second: a,
        per_cpu_second: b,
        cov,
        calls: rows.iter().map(|r| r.2).sum(),
        cpu_seconds: raw_cpu,
        seconds: used.iter().map(|s| s.seconds).sum(),
        samples: n,
        busiest: used
            .iter()
            .map(|s| s.cpu_ns as f64 / 1e9 / s.seconds)
            .fold(0.0, f64::max),
        probe_share: if raw_cpu > 0.0 {
            1.0 - cpu / raw_cpu
        } else {
            0.0
        },
    })
}

/// Leverage above which a period is taken to carry a term of the model alone.
const MAX_LEVERAGE: f64 = 0.9;

/// The covariance of (`a`, `b`) from each period's own residual, scaled by 1 / (1 - its
/// leverage) (the jackknife-like HC3 estimator) and never below the count's Poisson variance;
/// `None` when a period carries a term alone or none is left over. One residual variance for
/// all periods let the quiet ones, fitted exactly by zero calls, vouch for the busy one: a
/// two-term fit of one busy period and quiet ones stated an interval of nearly nothing that
/// held the truth in 0 of 7 windows of the phase-changing workload.
fn robust_cov(rows: &[Row], (a, b, inv, params, model): Fitted) -> Option<[[f64; 2]; 2]> {
    if rows.len() <= params {
        return None;
    }
    let mut meat = [[0.0; 2]; 2];
    for &(t, c, y) in rows {
        let x = [t, c];
        // The row's regressors times its weight ([`fit_model`]): with weights 1 / c its CPU
        // time cancels, and a period with none still counts, by its calls.
        let wx = match model {
            Model::Cpu => [0.0, 1.0],
            Model::Wall | Model::Both => [1.0, c / t],
        };
        let ix = mat_vec(inv, x);
        let leverage = wx[0] * ix[0] + wx[1] * ix[1];
        let e2 = hc3_square(y, (a * t + b * c).max(0.0), leverage)?;
        for (i, row) in meat.iter_mut().enumerate() {
            for (j, m) in row.iter_mut().enumerate() {
                *m += e2 * wx[i] * wx[j];
            }
        }
    }
    Some(mat_mul(mat_mul(inv, meat), inv))
}

/// A period's squared residual as the covariance takes it: at least the count's Poisson
/// variance (`predicted` calls), scaled by 1 / (1 - `leverage`)² (HC3); `None` when the period
/// carries a term alone (leverage above [`MAX_LEVERAGE`]: its own residual says nothing).
pub fn hc3_square(calls: f64, predicted: f64, leverage: f64) -> Option<f64> {
    if leverage > MAX_LEVERAGE {
        return None;
    }
    Some((calls - predicted).powi(2).max(predicted) / (1.0 - leverage).powi(2))
}

fn mat_vec(m: [[f64; 2]; 2], x: [f64; 2]) -> [f64; 2] {
    [
        m[0][0] * x[0] + m[0][1] * x[1],
        m[1][0] * x[0] + m[1][1] * x[1],
    ]
}

fn mat_mul(p: [[f64; 2]; 2], q: [[f64; 2]; 2]) -> [[f64; 2]; 2] {
    let col = |j: usize| mat_vec(p, [q[0][j], q[1][j]]);
    let (c0, c1) = (col(0), col(1));
    [[c0[0], c1[0]], [c0[1], c1[1]]]
}

impl SampleLog {
    /// Adds a finished period.
    pub fn push(&mut self, s: Sample) {
        self.samples.push_back(s);
        while self.samples.len() > KEPT {
            self.samples.pop_front();
        }
    }

    /// The newest period.
    pub fn last(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// Attached seconds within `[since, now]` of the finished periods, and the process's CPU
    /// seconds in them (of a period that began before `since`, its share in time).
    pub fn watched(&self, since: Instant) -> (f64, f64) {
        self.inside(since)
            .map(|(s, share)| (s.seconds * share, s.cpu_ns as f64 / 1e9 * share))
            .fold((0.0, 0.0), |(t, c), (dt, dc)| (t + dt, c + dc))
    }

    /// The finished periods that ended after `since`, each with the part of it after `since`.
    fn inside(&self, since: Instant) -> impl Iterator<Item = (&Sample, f64)> {
        self.samples
            .iter()
            .filter(move |s| s.ended > since && s.seconds > 0.0)
            .map(move |s| {
                let after = s.ended.duration_since(since).as_secs_f64();
                (s, s.seconds.min(after) / s.seconds)
            })
    }

    /// The periods that ended after `since`, extended to the newest [`MIN_SAMPLES`] and
    /// [`MIN_POOL_CPU`] of CPU time if they hold less (none older than [`MAX_AGE`] before
    /// `now`).
    pub fn pool(&self, since: Instant, now: Instant) -> Option<Pool> {
        fit(&self.picked(since, now), Choice::PointEstimate)
    }

    /// As [`SampleLog::pool`], with the model that has an interval where one has (for a rate
    /// that is given only with one).
    pub fn bounded_pool(&self, since: Instant, now: Instant) -> Option<Pool> {
        fit(&self.picked(since, now), Choice::Bounded)
    }

    /// The periods [`SampleLog::pool`] pools, newest first.
    pub fn picked(&self, since: Instant, now: Instant) -> Vec<&Sample> {
        let recent = |s: &&Sample| now.saturating_duration_since(s.ended).as_secs_f64() <= MAX_AGE;
        // What is estimated is the time the hook was detached: the periods drawn at random in
        // it say what it holds, when there are some; the others (a cheap hook measuring on,
        // and the period that found it expensive) are the time it was watched.
        let random = self
            .samples
            .iter()
            .filter(recent)
            .filter(|s| s.after_off)
            .count();
        let only_random = random >= 2;
        let mut picked: Vec<&Sample> = Vec::new();
        let mut cpu = 0.0;
        for s in self.samples.iter().rev() {
            if !recent(&s) {
                break;
            }
            if only_random && !s.after_off {
                continue;
            }
            let enough = picked.len() >= MIN_SAMPLES && cpu >= MIN_POOL_CPU;
            if s.ended <= since && enough {
                break;
            }
            cpu += s.cpu_ns as f64 / 1e9;
            picked.push(s);
        }
        picked
    }

    /// Goroutine switches the runtime counted in the finished periods within `[since, now]`
    /// (of a period that began before `since`, its share in time), and the seconds within it
    /// of the periods that have no count.
    pub fn watched_switches(&self, since: Instant) -> (f64, f64) {
        self.inside(since)
            .map(|(s, share)| match s.switches {
                Some(n) => (n as f64 * share, 0.0),
                None => (0.0, s.seconds * share),
            })
            .fold((0.0, 0.0), |(a, b), (da, db)| (a + da, b + db))
    }
}

/// A rate over a window, with how sure it is.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RateEstimate {
    /// Calls per second.
    pub per_second: f64,
    /// Lower end of the interval (about 95%), calls per second (`None`: too few periods).
    pub low: Option<f64>,
    /// Upper end.
    pub high: Option<f64>,
    /// Attached seconds the model pooled.
    pub sample_seconds: f64,
    /// Periods it pooled.
    pub samples: usize,
    /// The part of the pooled periods' CPU time the hook's own hits took.
    pub probe_share: f64,
    /// The part of the interval that is the hit cost's uncertainty ([`Pool::cost_factors`]).
    pub cost_spread: f64,
}

/// What is known of one process over one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowFacts {
    /// Window length, seconds.
    pub seconds: f64,
    /// Calls counted in it (while attached: exact).
    pub counted: u64,
    /// The process's CPU seconds in it (exact).
    pub cpu_seconds: f64,
    /// Seconds of it the hook was attached.
    pub watched: f64,
    /// The process's CPU seconds while it was (hits included).
    pub watched_cpu: f64,
}

/// How much busier than its busiest pooled period a program may have been while unwatched
/// for the model to bound its calls then (a period's CPU use is one short sample of the
/// program's, an unwatched time's its mean).
const UNSEEN_BUSY: f64 = 1.5;

/// CPU use below which the unwatched time is not judged against the periods, cores.
const UNSEEN_FLOOR: f64 = 0.05;

/// Calls per second over the window: those counted, plus the model's calls for the time and
/// CPU time not watched; no interval when the program was busier unwatched than any period
/// saw it.
pub fn window_rate(w: WindowFacts, pool: &Pool) -> Option<RateEstimate> {
    if w.seconds <= 0.0 {
        return None;
    }
    let unwatched = (w.seconds - w.watched).clamp(0.0, w.seconds);
    // The CPU time of the time not watched is known: a storm watched little and a quiet watched
    // long must not share their CPU time evenly.
    let cpu = (w.cpu_seconds - w.watched_cpu).clamp(0.0, w.cpu_seconds);
    let (extra, se) = pool.predict(unwatched, cpu);
    let counted = w.counted as f64 / w.seconds;
    let per_second = counted + extra / w.seconds;
    // A program busier while unwatched than in any period is a program the model has not seen:
    // the bursty 200 ms/1 s workload's futex rate, from periods that all fell in its quiet,
    // was given at x0.04 with an interval a few calls wide.
    let unseen = unwatched > 0.0 && cpu / unwatched > UNSEEN_BUSY * pool.busiest + UNSEEN_FLOOR;
    let spread = se.filter(|_| !unseen).map(|se| 2.0 * se / w.seconds);
    // The model rests on the program's own time in the periods, which is their time less the
    // hits' calibrated cost: the interval takes in what a cost up to HIT_COST_MAX times it
    // would give.
    let (lo_f, hi_f) = pool.cost_factors();
    let modelled = extra / w.seconds;
    let (down, up) = (modelled * (1.0 - lo_f), modelled * (hi_f - 1.0));
    Some(RateEstimate {
        per_second,
        low: spread.map(|s| (per_second - s - down).max(counted)),
        high: spread.map(|s| per_second + s + up),
        sample_seconds: pool.seconds,
        samples: pool.samples,
        probe_share: pool.probe_share,
        cost_spread: down + up,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    /// A 10 s window none of which was watched, holding 5 CPU seconds.
    fn unwatched_10s() -> WindowFacts {
        WindowFacts {
            seconds: 10.0,
            counted: 0,
            cpu_seconds: 5.0,
            watched: 0.0,
            watched_cpu: 0.0,
        }
    }

    fn sample(t0: Instant, at: f64, calls: u64, cpu_ms: u64) -> Sample {
        Sample {
            ended: t0 + Duration::from_secs_f64(at),
            seconds: 0.01,
            calls,
            cpu_ns: cpu_ms * 1_000_000,
            probe_ns: 0,
            after_off: true,
            switches: None,
        }
    }

    #[test]
    fn calls_per_cpu_second_carry_a_program_busy_in_bursts() {
        let t0 = Instant::now();
        let mut log = SampleLog::default();
        // A program busy a quarter of the time: 100 ms periods in a burst see 100 ms of CPU
        // and 1000 calls, periods in the quiet see neither. Calls per wall second swing from 0
        // to 10 000; per CPU second they are 10 000 throughout.
        for i in 0..8 {
            let busy = i % 4 == 0;
            log.push(Sample {
                ended: t0 + Duration::from_secs(i + 1),
                seconds: 0.1,
                calls: if busy { 1000 } else { 0 },
                cpu_ns: if busy { 100_000_000 } else { 0 },
                probe_ns: 0,
                after_off: true,
                switches: None,
            });
        }
        let now = t0 + Duration::from_secs(10);
        let pool = log.pool(t0, now).unwrap();
        assert_eq!(pool.samples, 8);
        assert!((pool.per_cpu_second - 10_000.0).abs() < 1e-6, "{pool:?}");
        // 10 s window, 2.5 CPU seconds, 0.8 s watched with 2000 calls and 0.2 CPU seconds.
        let (watched, watched_cpu) = log.watched(t0);
        assert!((watched - 0.8).abs() < 1e-9 && (watched_cpu - 0.2).abs() < 1e-9);
        let w = WindowFacts {
            seconds: 10.0,
            counted: 2000,
            cpu_seconds: 2.5,
            watched,
            watched_cpu,
        };
        let r = window_rate(w, &pool).unwrap();
        // 200/s counted + 10 000 × (2.5 − 0.2) / 10.
        assert!((r.per_second - 2500.0).abs() < 1e-6, "{r:?}");
        // Calls exactly proportional to CPU: only the counts' own (Poisson) noise, each of the
        // two busy periods carrying half the CPU term.
        let (lo, hi) = (r.low.unwrap(), r.high.unwrap());
        assert!(lo < r.per_second && lo > 0.85 * r.per_second, "{r:?}");
        assert!(hi > r.per_second && hi < 1.15 * r.per_second, "{r:?}");
        // Periods of 2 ms holding 2 ms of CPU each are read exactly enough: per CPU second.
        // With 0.2 ms each, what a reading may miss is too large a part: per wall second.
        for (cpu_ns, expect) in [(2_000_000, (0.0, 10_000.0)), (200_000, (10_000.0, 0.0))] {
            let mut short = SampleLog::default();
            for i in 0..8 {
                short.push(Sample {
                    ended: t0 + Duration::from_secs(i + 1),
                    seconds: 0.002,
                    calls: 20,
                    cpu_ns,
                    probe_ns: 0,
                    after_off: true,
                    switches: None,
                });
            }
            let p = short.pool(t0, now).unwrap();
            let got = (p.per_second, p.per_cpu_second);
            assert!(
                (got.0 - expect.0).abs() < 1e-6 && (got.1 - expect.1).abs() < 1e-3,
                "{cpu_ns} ns: {got:?}"
            );
        }
    }

    #[test]
    fn calls_per_cpu_second_alone_is_the_ratio_not_the_slope() {
        // Periods drawn at random in a program busy in bursts whose calls come at the bursts'
        // edges: quiet ones see nothing, ones in a burst's middle 200 ms of CPU and 10 calls,
        // one on an edge 100 ms and 200 calls; 230 calls in 0.7 CPU seconds. The time not
        // watched, drawn from the same program, makes 328.6 per CPU second. The slope of calls
        // over CPU time (weights 1 / seconds) said 200, weighting the busiest periods most.
        let mut rows: Vec<Row> = vec![(0.1, 0.0, 0.0); 4];
        rows.extend([(0.1, 0.2, 10.0); 3]);
        rows.push((0.1, 0.1, 200.0));
        let fitted = fit_model(&rows, Model::Cpu).unwrap();
        assert_eq!(fitted.0, 0.0);
        assert!((fitted.1 - 230.0 / 0.7).abs() < 1e-9, "{fitted:?}");
        // Its fit reproduces the periods' calls, as the others' do.
        for model in [Model::Wall, Model::Both] {
            if let Some((a, b, ..)) = fit_model(&rows, model) {
                assert!((a * 0.8 + b * 0.7 - 230.0).abs() < 1e-6, "{model:?}");
            }
        }
        // Its interval is the ratio's: every period's residual, with CPU or without, and a
        // period with none that made calls makes it wider.
        let var =
            |rows: &[Row]| robust_cov(rows, fit_model(rows, Model::Cpu).unwrap()).unwrap()[1][1];
        let base = var(&rows);
        assert!(base.is_finite() && base > 0.0, "{base}");
        rows[0].2 = 20.0;
        assert!(var(&rows) > base);
    }

    #[test]
    fn a_window_with_few_periods_pools_older_ones_and_never_stale_ones() {
        let t0 = Instant::now();
        let mut log = SampleLog::default();
        for i in 0..20 {
            log.push(sample(t0, i as f64, 10 + i, 5));
        }
        let now = t0 + Duration::from_secs(20);
        // Two periods in the last 1.5 s: the newest eight are pooled.
        let p = log.pool(now - Duration::from_millis(1500), now).unwrap();
        assert_eq!(p.samples, MIN_SAMPLES);
        // Twelve in the window: all twelve.
        assert_eq!(
            log.pool(t0 + Duration::from_secs(7), now).unwrap().samples,
            12
        );
        // Ten minutes later nothing is recent enough.
        assert!(log.pool(now, now + Duration::from_secs(700)).is_none());
        assert!(p.cov.is_some());
        // Periods that saw almost no CPU: reach back until 20 ms of it are pooled.
        let mut quiet = SampleLog::default();
        for i in 0..20 {
            quiet.push(sample(t0, i as f64, i % 2, (i == 3) as u64 * 30));
        }
        let p = quiet.pool(now - Duration::from_millis(1500), now).unwrap();
        assert_eq!((p.samples, p.cpu_seconds), (17, 0.03));
    }

    #[test]
    fn calls_that_come_with_time_stay_with_time_when_the_two_terms_cannot_be_fitted() {
        // sysmon-like naps, ten a period whatever the CPU, a few more in the idle periods:
        // both terms give a negative CPU rate, and per CPU second alone would charge the naps
        // to whatever CPU the window holds.
        let t0 = Instant::now();
        let mut log = SampleLog::default();
        for i in 0..8u64 {
            let busy = i % 2 == 0;
            log.push(Sample {
                ended: t0 + Duration::from_secs(i + 1),
                seconds: 0.1,
                calls: if busy { 9 } else { 11 },
                cpu_ns: if busy { 90_000_000 } else { 1_000_000 },
                probe_ns: 0,
                after_off: true,
                switches: None,
            });
        }
        let pool = log.pool(t0, t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(pool.per_cpu_second, 0.0, "{pool:?}");
        assert!((pool.per_second - 100.0).abs() < 1e-6, "{pool:?}");
    }

    #[test]
    fn calls_made_while_quiet_are_charged_to_time_not_to_the_storm_cpu() {
        let t0 = Instant::now();
        let mut log = SampleLog::default();
        // Quiet: idle Ms parking and waking, 100 calls in 100 ms (1000/s) and no CPU charged;
        // storm: 10 000 per CPU second on top, a core busy.
        for i in 0..10 {
            let storm = i % 2 == 0;
            log.push(Sample {
                ended: t0 + Duration::from_secs(i + 1),
                seconds: 0.1,
                calls: if storm { 1100 } else { 100 },
                cpu_ns: if storm { 100_000_000 } else { 0 },
                probe_ns: 0,
                after_off: true,
                switches: None,
            });
        }
        let now = t0 + Duration::from_secs(11);
        let p = log.pool(t0, now).unwrap();
        assert!((p.per_second - 1000.0).abs() < 1e-6, "{p:?}");
        assert!((p.per_cpu_second - 10_000.0).abs() < 1e-6, "{p:?}");
        let window = |cpu_seconds| WindowFacts {
            seconds: 10.0,
            counted: 0,
            cpu_seconds,
            watched: 0.0,
            watched_cpu: 0.0,
        };
        // A window of quiet: 1000/s, where calls per CPU second alone (6000 calls in 0.5 s of
        // CPU) would say none; a window of storm: 11 000/s, where they would say 12 000.
        let quiet = window_rate(window(0.0), &p).unwrap();
        assert!((quiet.per_second - 1000.0).abs() < 1e-6, "{quiet:?}");
        let storm = window_rate(window(10.0), &p).unwrap();
        assert!((storm.per_second - 11_000.0).abs() < 1e-6, "{storm:?}");
    }

    #[test]
    fn the_hooks_own_cost_is_not_charged_to_the_program() {
        // A storm on one core making a call per 1 µs of its own work; attached, each call also
        // traps for 2 µs, so a 10 ms period holds 3333 calls, not 10 000. Calls per CPU second
        // while attached are a third of those while detached, which is what a detached second
        // of one core holds: 1 000 000, not 333 333.
        let t0 = Instant::now();
        let calls = 10_000_000 / 3_000;
        let probe_ns = hits_cost(calls, Duration::from_nanos(2_000));
        assert_eq!(probe_ns, calls * 2_000);
        let mut log = SampleLog::default();
        for i in 0..8 {
            log.push(Sample {
                ended: t0 + Duration::from_secs(i + 1),
                seconds: 0.01,
                calls,
                cpu_ns: 10_000_000,
                probe_ns,
                after_off: true,
                switches: None,
            });
        }
        let now = t0 + Duration::from_secs(10);
        let p = log.pool(t0, now).unwrap();
        let w = WindowFacts {
            seconds: 1.0,
            counted: 0,
            cpu_seconds: 1.0,
            watched: 0.0,
            watched_cpu: 0.0,
        };
        let r = window_rate(w, &p).unwrap();
        assert!((r.per_second / 1e6 - 1.0).abs() < 0.001, "{r:?}");
        // Two thirds of the CPU time watched were the hook's: a cost half as large again would
        // leave the program nothing, so the hit cost's part of the interval is wider than the
        // rate (what the report withholds), and all above it: the calibrated cost is the least.
        assert!((r.probe_share - 2.0 / 3.0).abs() < 1e-3, "{r:?}");
        assert!(r.cost_spread > r.per_second, "{r:?}");
        // A tenth of it: a cost 2.5 times the calibrated one would leave the program 75% of
        // the CPU time, not 90%: the rate up to a fifth higher.
        let mut light = SampleLog::default();
        for i in 0..8 {
            light.push(Sample {
                ended: t0 + Duration::from_secs(i + 1),
                seconds: 0.01,
                calls: 1000,
                cpu_ns: 10_000_000,
                probe_ns: 1_000_000,
                after_off: true,
                switches: None,
            });
        }
        let r = window_rate(w, &light.pool(t0, now).unwrap()).unwrap();
        assert!(
            (r.per_second / (1000.0 / 0.009) - 1.0).abs() < 1e-3,
            "{r:?}"
        );
        let up = r.cost_spread / r.per_second;
        assert!((up - 0.2).abs() < 1e-3, "{r:?}");
        assert!(r.low.unwrap() <= r.per_second, "{r:?}");
        // A cost calibrated above the real one leaves the program a twentieth of the period's
        // CPU time, not none.
        let mut over = SampleLog::default();
        for i in 0..8 {
            over.push(Sample {
                ended: t0 + Duration::from_secs(i + 1),
                seconds: 0.1,
                calls: 10 * calls,
                cpu_ns: 100_000_000,
                probe_ns: 200_000_000,
                after_off: true,
                switches: None,
            });
        }
        let p = over.pool(t0, now).unwrap();
        let expect = 10.0 * calls as f64 / (MIN_OWN_CPU * 0.1);
        assert!((p.per_cpu_second / expect - 1.0).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn the_time_not_watched_is_estimated_from_the_periods_drawn_at_random_in_it() {
        let t0 = Instant::now();
        let mut log = SampleLog::default();
        let sample = |at: u64, calls, after_off| Sample {
            ended: t0 + Duration::from_secs(at),
            seconds: 0.1,
            calls,
            cpu_ns: 200_000_000,
            probe_ns: 0,
            after_off,
            switches: None,
        };
        // Each storm's onset (a wake-up burst: 5000 calls in 100 ms) ends a cheap run of
        // periods; its middle, sampled at random after detached times, makes 1000.
        for i in 0..6 {
            log.push(sample(4 * i + 1, 5000, false));
            log.push(sample(4 * i + 3, 1000, true));
        }
        let now = t0 + Duration::from_secs(30);
        let p = log.pool(t0, now).unwrap();
        assert_eq!(p.samples, 6);
        assert!((p.per_cpu_second - 5000.0).abs() < 1e-6, "{p:?}");
        // Until there are two such periods, all of them.
        let mut young = SampleLog::default();
        young.push(sample(1, 5000, false));
        young.push(sample(3, 1000, true));
        assert_eq!(young.pool(t0, now).unwrap().samples, 2);
    }

    #[test]
    fn a_term_resting_on_one_period_gives_no_narrow_interval() {
        let t0 = Instant::now();
        let at = |i: u64, calls, cpu_ms: u64| Sample {
            ended: t0 + Duration::from_secs(i + 1),
            seconds: 0.1,
            calls,
            cpu_ns: cpu_ms * 1_000_000,
            probe_ns: 0,
            after_off: true,
            switches: None,
        };
        let w = unwatched_10s();
        // Seven quiet periods (sysmon's naps: 5 calls, no CPU) and one in a storm: the storm's
        // calls per CPU second rest on that one period, whose residual is zero whatever the
        // next storm does (one residual variance for all eight said so to within ±0%). The
        // model falls back to calls per wall second, whose residual in the storm says it
        // cannot tell: an interval wider than the rate.
        let mut one = SampleLog::default();
        for i in 0..7 {
            one.push(at(i, 5, 0));
        }
        one.push(at(7, 5005, 100));
        let now = t0 + Duration::from_secs(10);
        // A point estimate keeps the storm's calls per CPU second, without an interval.
        let point = one.pool(t0, now).unwrap();
        assert!(
            point.per_cpu_second > 0.0 && point.cov.is_none(),
            "{point:?}"
        );
        let pool = one.bounded_pool(t0, now).unwrap();
        assert_eq!(pool.per_cpu_second, 0.0, "{pool:?}");
        let r = window_rate(w, &pool).unwrap();
        assert!(r.high.unwrap() - r.low.unwrap() > r.per_second, "{r:?}");
        // Three storms that disagree: an interval, as wide as they are apart.
        let mut three = SampleLog::default();
        for i in 0..5 {
            three.push(at(i, 5, 0));
        }
        for (i, calls) in [(5, 2005), (6, 5005), (7, 8005)] {
            three.push(at(i, calls, 100));
        }
        let r = window_rate(w, &three.pool(t0, now).unwrap()).unwrap();
        let (lo, hi) = (r.low.unwrap(), r.high.unwrap());
        // 50 000 calls per CPU second, storms 30 000 apart: ±60% or more.
        assert!(lo < 0.4 * r.per_second && hi > 1.6 * r.per_second, "{r:?}");
    }

    #[test]
    fn a_program_busier_unwatched_than_any_period_saw_has_no_interval() {
        let t0 = Instant::now();
        let mut quiet = SampleLog::default();
        // Eight 10 ms periods in the quiet of a bursty program: sysmon's naps, 1 ms of CPU
        // each (0.1 cores).
        for i in 0..8 {
            quiet.push(sample(t0, i as f64 + 1.0, 3, 1));
        }
        let now = t0 + Duration::from_secs(10);
        let pool = quiet.pool(t0, now).unwrap();
        let facts = |cpu_seconds| WindowFacts {
            seconds: 10.0,
            counted: 24,
            cpu_seconds,
            watched: 0.08,
            watched_cpu: 0.008,
        };
        // As quiet unwatched as watched: bounded.
        let r = window_rate(facts(0.1), &pool).unwrap();
        assert!(r.low.is_some() && r.high.is_some(), "{r:?}");
        // Five CPU seconds unwatched, half a core (storms no period fell in): no interval.
        let r = window_rate(facts(5.0), &pool).unwrap();
        assert_eq!((r.low, r.high), (None, None), "{r:?}");
    }

    #[test]
    fn the_interval_widens_with_disagreeing_periods() {
        let t0 = Instant::now();
        let (mut steady, mut noisy) = (SampleLog::default(), SampleLog::default());
        let at = |i: u64, calls| Sample {
            ended: t0 + Duration::from_secs(i + 1),
            seconds: 0.1,
            calls,
            cpu_ns: 100_000_000,
            probe_ns: 0,
            after_off: true,
            switches: None,
        };
        for i in 0..10 {
            steady.push(at(i, 1000));
            noisy.push(at(i, if i % 2 == 0 { 1900 } else { 100 }));
        }
        let now = t0 + Duration::from_secs(10);
        let w = unwatched_10s();
        let a = window_rate(w, &steady.pool(t0, now).unwrap()).unwrap();
        let b = window_rate(w, &noisy.pool(t0, now).unwrap()).unwrap();
        assert!((a.per_second - b.per_second).abs() < 1e-6);
        assert!(a.high.unwrap() < a.per_second * 1.05, "{a:?}");
        let (lo, hi) = (b.low.unwrap(), b.high.unwrap());
        assert!(lo < b.per_second * 0.8 && hi > b.per_second * 1.2, "{b:?}");
    }
}
