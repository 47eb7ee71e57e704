//! Rates of a governed hook, estimated from its attached periods.
//!
//! While a hook is duty-cycled, its calls are seen only in short attached periods. What is
//! estimated is the calls of the time it was detached, from the calls each period saw per
//! second of the process's CPU time in it (a ratio estimator): a Go program's runtime calls come
//! with its CPU use, so a process busy in bursts makes few calls while quiet and many while
//! busy, and the ratio stays put where the calls per wall-clock second swing by multiples. The
//! process's CPU time is known exactly over every window (context switches are always traced),
//! so the calls the periods did not see are the ratio times the CPU time they did not cover.
//!
//! The ratio pools every period that ended in the window, and at least the newest
//! [`MIN_SAMPLES`] (older ones, up to [`MAX_AGE`]) when the window holds fewer: one 10 ms period
//! says little about a program that is busy a quarter of the time. The periods' start times must
//! not depend on the program (the governor jitters them, see `budget.rs`), nor their lengths on
//! what they see (fixed when attached): otherwise the pool over-represents one phase of the
//! program. The interval is the pooled ratio's standard error (the usual ratio-estimator
//! variance over the periods), two either side, applied to the CPU time not watched.
use std::{collections::VecDeque, time::Instant};

use serde::Serialize;

/// Fewest periods a ratio pools, reaching back before the window when it holds fewer.
pub const MIN_SAMPLES: usize = 8;
/// Least CPU time a ratio pools, seconds, reaching back further when the newest periods saw
/// less: periods in a program's quiet see neither calls nor CPU, and a ratio needs the busy
/// time, where the calls are.
pub const MIN_POOL_CPU: f64 = 0.02;
/// Oldest period a ratio may pool, seconds.
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
    /// The process's on-CPU time in it, nanoseconds.
    pub cpu_ns: u64,
}

/// A process's recent periods of one hook, newest last.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SampleLog {
    samples: VecDeque<Sample>,
}

/// Periods pooled into one ratio.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pool {
    /// Calls seen.
    pub calls: f64,
    /// The process's CPU seconds while attached.
    pub cpu_seconds: f64,
    /// Attached seconds.
    pub seconds: f64,
    /// Periods pooled.
    pub samples: usize,
    /// Standard error of calls per CPU second (`None` below two periods).
    pub ratio_se: Option<f64>,
}

impl Pool {
    /// Calls per CPU second; per attached second when the periods saw no CPU time charged
    /// (slices are charged when they end, so a short period can miss a slice that ran in it).
    pub fn ratio(&self) -> Option<f64> {
        if self.cpu_seconds > 0.0 {
            Some(self.calls / self.cpu_seconds)
        } else {
            (self.calls == 0.0).then_some(0.0)
        }
    }
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

    /// Attached seconds within `[since, now]` of the finished periods.
    pub fn watched(&self, since: Instant) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.ended > since)
            .map(|s| s.seconds.min(s.ended.duration_since(since).as_secs_f64()))
            .sum()
    }

    /// The periods that ended after `since`, extended to the newest [`MIN_SAMPLES`] and
    /// [`MIN_POOL_CPU`] of CPU time if they hold less (none older than [`MAX_AGE`] before
    /// `now`).
    pub fn pool(&self, since: Instant, now: Instant) -> Option<Pool> {
        let mut picked: Vec<&Sample> = Vec::new();
        let mut cpu = 0.0;
        for s in self.samples.iter().rev() {
            let enough = picked.len() >= MIN_SAMPLES && cpu >= MIN_POOL_CPU;
            if (s.ended <= since && enough)
                || now.saturating_duration_since(s.ended).as_secs_f64() > MAX_AGE
            {
                break;
            }
            cpu += s.cpu_ns as f64 / 1e9;
            picked.push(s);
        }
        if picked.is_empty() {
            return None;
        }
        let calls: f64 = picked.iter().map(|s| s.calls as f64).sum();
        let cpu: f64 = picked.iter().map(|s| s.cpu_ns as f64 / 1e9).sum();
        let seconds: f64 = picked.iter().map(|s| s.seconds).sum();
        let n = picked.len();
        let ratio_se = (n >= 2 && cpu > 0.0).then(|| {
            let r = calls / cpu;
            let mean_cpu = cpu / n as f64;
            let ss: f64 = picked
                .iter()
                .map(|s| (s.calls as f64 - r * s.cpu_ns as f64 / 1e9).powi(2))
                .sum();
            (ss / (n * (n - 1)) as f64).sqrt() / mean_cpu
        });
        Some(Pool {
            calls,
            cpu_seconds: cpu,
            seconds,
            samples: n,
            ratio_se,
        })
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
    /// Attached seconds the ratio pooled.
    pub sample_seconds: f64,
    /// Periods it pooled.
    pub samples: usize,
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
}

/// Calls per second over the window: those counted, plus the pooled ratio times the CPU time
/// not watched.
pub fn window_rate(w: WindowFacts, pool: &Pool) -> Option<RateEstimate> {
    if w.seconds <= 0.0 {
        return None;
    }
    let unwatched_share = (1.0 - w.watched / w.seconds).clamp(0.0, 1.0);
    let counted = w.counted as f64 / w.seconds;
    let (extra, spread) = match pool.ratio() {
        Some(r) => {
            let cpu = w.cpu_seconds * unwatched_share / w.seconds;
            (r * cpu, pool.ratio_se.map(|se| 2.0 * se * cpu))
        }
        None => {
            // Calls but no CPU charged in any period: per attached second.
            let r = pool.calls / pool.seconds.max(1e-9);
            (r * unwatched_share, None)
        }
    };
    let per_second = counted + extra;
    Some(RateEstimate {
        per_second,
        low: spread.map(|s| (per_second - s).max(counted)),
        high: spread.map(|s| per_second + s),
        sample_seconds: pool.seconds,
        samples: pool.samples,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    fn sample(t0: Instant, at: f64, calls: u64, cpu_ms: u64) -> Sample {
        Sample {
            ended: t0 + Duration::from_secs_f64(at),
            seconds: 0.01,
            calls,
            cpu_ns: cpu_ms * 1_000_000,
        }
    }

    #[test]
    fn the_ratio_scales_the_cpu_time_not_watched() {
        let t0 = Instant::now();
        let mut log = SampleLog::default();
        // A program busy a quarter of the time: periods in a burst see 10 ms of CPU and 100
        // calls, periods in the quiet see neither. Calls per wall second swing from 0 to
        // 10 000; per CPU second they are 10 000 throughout.
        for i in 0..8 {
            let busy = i % 4 == 0;
            log.push(sample(
                t0,
                (i + 1) as f64,
                if busy { 100 } else { 0 },
                if busy { 10 } else { 0 },
            ));
        }
        let now = t0 + Duration::from_secs(10);
        let pool = log.pool(t0, now).unwrap();
        assert_eq!(pool.samples, 8);
        // 10 s window, 2.5 CPU seconds, 80 ms watched with 200 calls counted.
        let w = WindowFacts {
            seconds: 10.0,
            counted: 200,
            cpu_seconds: 2.5,
            watched: log.watched(t0),
        };
        let r = window_rate(w, &pool).unwrap();
        // 20/s counted + 10 000 × 2.5 × (1 − 0.008) / 10.
        assert!((r.per_second - (20.0 + 2480.0)).abs() < 1e-6, "{r:?}");
        // Calls exactly proportional to CPU: no spread.
        assert_eq!(r.low, Some(r.per_second));
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
        assert!(p.ratio_se.unwrap() > 0.0);
        // Periods that saw almost no CPU: reach back until 20 ms of it are pooled.
        let mut quiet = SampleLog::default();
        for i in 0..20 {
            quiet.push(sample(t0, i as f64, i % 2, (i == 3) as u64 * 30));
        }
        let p = quiet.pool(now - Duration::from_millis(1500), now).unwrap();
        assert_eq!((p.samples, p.cpu_seconds), (17, 0.03));
    }

    #[test]
    fn the_interval_widens_with_disagreeing_periods() {
        let t0 = Instant::now();
        let (mut steady, mut noisy) = (SampleLog::default(), SampleLog::default());
        for i in 0..10 {
            steady.push(sample(t0, (i + 1) as f64, 100, 10));
            noisy.push(sample(
                t0,
                (i + 1) as f64,
                if i % 2 == 0 { 190 } else { 10 },
                10,
            ));
        }
        let now = t0 + Duration::from_secs(10);
        let w = WindowFacts {
            seconds: 10.0,
            counted: 0,
            cpu_seconds: 5.0,
            watched: 0.0,
        };
        let a = window_rate(w, &steady.pool(t0, now).unwrap()).unwrap();
        let b = window_rate(w, &noisy.pool(t0, now).unwrap()).unwrap();
        assert!((a.per_second - b.per_second).abs() < 1e-6);
        assert_eq!(a.high, Some(a.per_second));
        let (lo, hi) = (b.low.unwrap(), b.high.unwrap());
        assert!(lo < b.per_second * 0.8 && hi > b.per_second * 1.2, "{b:?}");
    }
}
