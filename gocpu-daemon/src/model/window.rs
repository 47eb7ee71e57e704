//! A sliding window over cumulative counters: samples in, deltas over the last N seconds out.
use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use gocpu_common::ProcStats;

/// Cumulative samples covering at least the window length.
#[derive(Clone, Debug)]
pub struct Window {
    length: Duration,
    samples: VecDeque<(Instant, ProcStats)>,
}

/// Counter deltas over an interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Delta {
    /// Interval length in seconds (0 before the second sample).
    pub seconds: f64,
    /// Counter increments over the interval.
    pub stats: ProcStats,
}

impl Window {
    /// An empty window of `length`.
    pub fn new(length: Duration) -> Self {
        Self {
            length,
            samples: VecDeque::new(),
        }
    }

    /// The window length.
    pub fn length(&self) -> Duration {
        self.length
    }

    /// Adds a sample taken at `at`; drops samples no longer needed to cover the window.
    pub fn push(&mut self, at: Instant, stats: ProcStats) {
        self.samples.push_back((at, stats));
        // Keep the newest sample at or before `at - length` as the window's base.
        while self.samples.len() > 2 {
            let second = self.samples.get(1).map(|(t, _)| *t);
            match second {
                Some(t) if at.duration_since(t) >= self.length => {
                    self.samples.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Deltas from the window's base sample to `now_stats` taken at `now`.
    pub fn delta(&self, now: Instant, now_stats: &ProcStats) -> Delta {
        match self.samples.front() {
            Some((t, base)) if now > *t => Delta {
                seconds: now.duration_since(*t).as_secs_f64(),
                stats: now_stats.since(base),
            },
            _ => Delta {
                seconds: 0.0,
                stats: ProcStats::default(),
            },
        }
    }

    /// The latest sample.
    pub fn latest(&self) -> Option<&(Instant, ProcStats)> {
        self.samples.back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(n: u64) -> ProcStats {
        ProcStats {
            futex_calls: n,
            oncpu_ns: n * 1000,
            ..Default::default()
        }
    }

    #[test]
    fn delta_spans_about_the_window() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(10));
        for i in 0..=30u64 {
            w.push(t0 + Duration::from_secs(i), stats(i * 5));
        }
        let now = t0 + Duration::from_secs(30);
        let d = w.delta(now, &stats(150));
        assert!((d.seconds - 10.0).abs() < 1e-9, "{}", d.seconds);
        assert_eq!(d.stats.futex_calls, 50);
        assert_eq!(d.stats.oncpu_ns, 50_000);
    }

    #[test]
    fn short_history_uses_what_there_is() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(10));
        assert_eq!(w.delta(t0, &stats(3)).seconds, 0.0);
        w.push(t0, stats(0));
        let d = w.delta(t0 + Duration::from_secs(2), &stats(4));
        assert!((d.seconds - 2.0).abs() < 1e-9);
        assert_eq!(d.stats.futex_calls, 4);
    }
}
