//! Goroutine growth over a sliding window: the leak signal.
//!
//! A leak shows as a count that keeps rising; a burst that drains does not. The window keeps
//! `(seconds, live goroutines)` samples for a fixed span and reports the least-squares slope and
//! how much of the window the count was rising.
use std::collections::VecDeque;

/// Most samples kept (bounds memory whatever the polling rate).
const MAX_SAMPLES: usize = 4096;

/// A sliding window of goroutine counts.
#[derive(Clone, Debug)]
pub struct GrowthWindow {
    span: f64,
    samples: VecDeque<(f64, u64)>,
}

/// What the window says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Growth {
    /// Seconds between the first and last sample.
    pub seconds: f64,
    /// Last count minus first count.
    pub delta: i64,
    /// Least-squares slope, goroutines per second.
    pub per_second: f64,
    /// Fraction of consecutive sample pairs in which the count rose (0 to 1).
    pub rising_fraction: f64,
}

impl GrowthWindow {
    /// A window keeping `span_seconds` of samples.
    pub fn new(span_seconds: f64) -> GrowthWindow {
        GrowthWindow {
            span: span_seconds.max(0.0),
            samples: VecDeque::new(),
        }
    }

    /// Adds a sample at monotonic time `t` (seconds); samples going back in time are ignored.
    pub fn push(&mut self, t: f64, goroutines: u64) {
        if !t.is_finite() || self.samples.back().is_some_and(|&(last, _)| t < last) {
            return;
        }
        self.samples.push_back((t, goroutines));
        while self.samples.len() > MAX_SAMPLES
            || self
                .samples
                .front()
                .is_some_and(|&(first, _)| t - first > self.span)
        {
            self.samples.pop_front();
        }
    }

    /// The growth over the window, once it holds two samples at different times.
    pub fn growth(&self) -> Option<Growth> {
        let (&(t0, c0), &(t1, c1)) = (self.samples.front()?, self.samples.back()?);
        if t1 <= t0 {
            return None;
        }
        let n = self.samples.len() as f64;
        let mean_t = self.samples.iter().map(|s| s.0).sum::<f64>() / n;
        let mean_c = self.samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
        let (mut num, mut den) = (0.0, 0.0);
        for &(t, c) in &self.samples {
            num += (t - mean_t) * (c as f64 - mean_c);
            den += (t - mean_t) * (t - mean_t);
        }
        let pairs = self.samples.len().saturating_sub(1).max(1) as f64;
        let rising = self
            .samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .filter(|(a, b)| b.1 > a.1)
            .count() as f64;
        Some(Growth {
            seconds: t1 - t0,
            delta: c1 as i64 - c0 as i64,
            per_second: if den > 0.0 { num / den } else { 0.0 },
            rising_fraction: rising / pairs,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::GrowthWindow;

    #[test]
    fn steady_leak_versus_drained_burst() {
        let mut w = GrowthWindow::new(10.0);
        assert!(w.growth().is_none());
        for i in 0u32..=40 {
            w.push(f64::from(i) * 0.5, 100 + 50 * u64::from(i));
        }
        let g = w.growth().unwrap();
        assert!((g.per_second - 100.0).abs() < 1e-6, "{g:?}");
        assert_eq!(g.seconds, 10.0);
        assert_eq!(g.delta, 1000);
        assert_eq!(g.rising_fraction, 1.0);
        let mut b = GrowthWindow::new(10.0);
        for (t, c) in [(0.0, 10), (1.0, 5000), (2.0, 10), (3.0, 10)] {
            b.push(t, c);
        }
        let g = b.growth().unwrap();
        assert_eq!(g.delta, 0);
        assert!(g.rising_fraction < 0.5);
        // Time going backwards and NaN are ignored; old samples leave the window.
        b.push(1.0, 1);
        b.push(f64::NAN, 1);
        b.push(20.0, 10);
        assert_eq!(b.growth(), None);
    }
}
