//! A sliding window over cumulative counters: samples in, deltas over the last N seconds out.
use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    time::{Duration, Instant},
};

use gocpu_common::ProcStats;

/// A value made of cumulative counters: the increments since an earlier value are computable.
pub trait Cumulative: Clone + Default {
    /// `self - base`, counter by counter (wrapping).
    fn since(&self, base: &Self) -> Self;
}

impl Cumulative for ProcStats {
    fn since(&self, base: &Self) -> Self {
        ProcStats::since(self, base)
    }
}

impl Cumulative for u64 {
    fn since(&self, base: &Self) -> Self {
        self.wrapping_sub(*base)
    }
}

impl<K: Clone + Eq + Hash> Cumulative for HashMap<K, u64> {
    fn since(&self, base: &Self) -> Self {
        self.iter()
            .map(|(k, v)| (k.clone(), v.wrapping_sub(base.get(k).copied().unwrap_or(0))))
            .filter(|(_, v)| *v != 0)
            .collect()
    }
}

/// Cumulative samples covering at least the window length.
#[derive(Clone, Debug)]
pub struct Window<T = ProcStats> {
    length: Duration,
    samples: VecDeque<(Instant, T)>,
}

/// Counter deltas over an interval.
#[derive(Clone, Debug, PartialEq)]
pub struct Delta<T = ProcStats> {
    /// Interval length in seconds (0 before the second sample).
    pub seconds: f64,
    /// When the interval starts (the window's base sample).
    pub since: Option<Instant>,
    /// Counter increments over the interval.
    pub stats: T,
}

impl<T: Cumulative> Window<T> {
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
    pub fn push(&mut self, at: Instant, stats: T) {
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
    pub fn delta(&self, now: Instant, now_stats: &T) -> Delta<T> {
        match self.samples.front() {
            Some((t, base)) if now > *t => Delta {
                seconds: now.duration_since(*t).as_secs_f64(),
                since: Some(*t),
                stats: now_stats.since(base),
            },
            _ => Delta {
                seconds: 0.0,
                since: None,
                stats: T::default(),
            },
        }
    }

    /// Deltas over the window ending at the latest sample.
    pub fn latest_delta(&self) -> Delta<T> {
        match self.samples.back() {
            Some((t, s)) => self.delta(*t, s),
            None => Delta {
                seconds: 0.0,
                since: None,
                stats: T::default(),
            },
        }
    }

    /// The latest sample.
    pub fn latest(&self) -> Option<&(Instant, T)> {
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
        assert_eq!(d.since, Some(t0 + Duration::from_secs(20)));
        assert_eq!(d.stats.futex_calls, 50);
        assert_eq!(d.stats.oncpu_ns, 50_000);
        assert_eq!(w.latest_delta(), d);
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

    #[test]
    fn maps_are_cumulative() {
        let mut a: HashMap<&str, u64> = HashMap::new();
        a.insert("x", 5);
        let mut b = a.clone();
        b.insert("x", 8);
        b.insert("y", 2);
        let d = b.since(&a);
        assert_eq!(d.get("x"), Some(&3));
        assert_eq!(d.get("y"), Some(&2));
    }
}
