//! runtime.mcall's rate scaled by the runtime's own count of goroutine switches.
//!
//! A uprobe on runtime.mcall slows a goroutine storm three- to fivefold (a hit traps for longer
//! than a switch takes), so the calls per CPU or wall second its attached periods see are not
//! the unwatched program's (`estimate.rs` withholds them). The runtime counts its goroutines'
//! switches out of running itself (`runtime/sched.rs`), without a breakpoint, and enters
//! runtime.mcall once per such switch (a park, a yield, a preemption, an exit): the calls per
//! switch of the attached periods stay what they are when the program slows down. The calls the
//! periods did not see are that ratio times the switches the runtime counted while the hook was
//! detached.
//!
//! The ratio is the periods' calls over their switches (least squares with a count's variance,
//! proportional to the switches); its standard error comes from each period's own residual,
//! scaled by 1 / (1 - leverage) and never below the count's Poisson variance
//! (`estimate::hc3_square`, shared with the fit of the other hooks). No interval while one
//! period holds nearly all the switches.
use crate::probes::estimate::{RateEstimate, Sample, hc3_square};

/// What is known of one process's switches over one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SwitchFacts {
    /// Window length, seconds.
    pub seconds: f64,
    /// runtime.mcall calls counted in it while attached.
    pub counted: u64,
    /// Goroutine switches the runtime counted in it.
    pub switches: f64,
    /// Of those, the ones made while the hook was attached.
    pub watched_switches: f64,
}

/// Calls per second over the window: those counted, plus the calls per switch of the periods
/// with a switch count times the switches made while detached. `None` when no period has a
/// count (a process's first period may begin before its runtime layout is known), or they
/// saw no switch.
pub fn per_switch_rate(periods: &[&Sample], w: SwitchFacts) -> Option<RateEstimate> {
    if w.seconds <= 0.0 || !w.switches.is_finite() {
        return None;
    }
    // (period, its switches, its calls)
    let rows: Vec<(&Sample, f64, f64)> = periods
        .iter()
        .filter_map(|s| Some((*s, s.switches? as f64, s.calls as f64)))
        .collect();
    let (sx, sy): (f64, f64) = rows
        .iter()
        .fold((0.0, 0.0), |(a, b), (_, x, y)| (a + x, b + y));
    if sx <= 0.0 {
        return None;
    }
    let ratio = sy / sx;
    let variance = (rows.len() > 1)
        .then(|| {
            rows.iter().try_fold(0.0, |acc, (_, x, y)| {
                Some(acc + hc3_square(*y, ratio * x, x / sx)?)
            })
        })
        .flatten()
        .map(|meat| meat / (sx * sx));
    let unwatched = (w.switches - w.watched_switches).max(0.0);
    let counted = w.counted as f64 / w.seconds;
    let modelled = ratio * unwatched / w.seconds;
    let per_second = counted + modelled;
    let spread = variance.map(|v| 2.0 * v.sqrt() * unwatched / w.seconds);
    let cpu: u64 = rows.iter().map(|(s, ..)| s.cpu_ns).sum();
    let probe: u64 = rows.iter().map(|(s, ..)| s.probe_ns).sum();
    Some(RateEstimate {
        per_second,
        low: spread.map(|s| (per_second - s).max(counted)),
        high: spread.map(|s| per_second + s),
        sample_seconds: rows.iter().map(|(s, ..)| s.seconds).sum(),
        samples: rows.len(),
        probe_share: if cpu > 0 {
            probe as f64 / cpu as f64
        } else {
            0.0
        },
        // Calls per switch do not rest on the program's own time, so not on the hits' cost.
        cost_spread: 0.0,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, Instant};

    use super::*;

    fn period(i: u64, calls: u64, switches: Option<u64>, cpu_ms: u64) -> Sample {
        Sample {
            ended: Instant::now() + Duration::from_secs(i),
            seconds: 0.1,
            calls,
            cpu_ns: cpu_ms * 1_000_000,
            // The hook's traps took most of the CPU time: no matter here.
            probe_ns: cpu_ms * 800_000,
            after_off: true,
            switches,
        }
    }

    #[test]
    fn a_slowed_storm_is_scaled_by_the_switches_it_made_unwatched() {
        // Watched, the storm made 40 000 switches per 100 ms period (slowed by the traps), one
        // call each; unwatched it made 1.6 million a second. Calls per CPU second of the
        // periods would say 400 000 a second; per switch, the truth.
        let periods: Vec<Sample> = (0..8)
            .map(|i| period(i, 40_000, Some(40_000), 100))
            .collect();
        let picked: Vec<&Sample> = periods.iter().collect();
        let w = SwitchFacts {
            seconds: 10.0,
            counted: 80_000,
            switches: 80_000.0 + 1_600_000.0 * 9.9,
            watched_switches: 80_000.0,
        };
        let r = per_switch_rate(&picked, w).unwrap();
        let truth = (80_000.0 + 1_600_000.0 * 9.9) / 10.0;
        assert!((r.per_second - truth).abs() < 1e-6 * truth, "{r:?}");
        // One call per switch in every period: only the counts' Poisson noise.
        let (lo, hi) = (r.low.unwrap(), r.high.unwrap());
        assert!(lo < r.per_second && lo > 0.98 * truth, "{r:?}");
        assert!(hi > r.per_second && hi < 1.02 * truth, "{r:?}");
        assert_eq!(r.cost_spread, 0.0);
        assert!((r.probe_share - 0.8).abs() < 1e-9);
    }

    #[test]
    fn periods_that_disagree_widen_the_interval_and_one_alone_gives_none() {
        let w = SwitchFacts {
            seconds: 10.0,
            counted: 0,
            switches: 1_000_000.0,
            watched_switches: 0.0,
        };
        // Half the periods make one call per switch, half three (GC workers parking, say).
        let mixed: Vec<Sample> = (0..8)
            .map(|i| period(i, if i % 2 == 0 { 1000 } else { 3000 }, Some(1000), 10))
            .collect();
        let r = per_switch_rate(&mixed.iter().collect::<Vec<_>>(), w).unwrap();
        assert!((r.per_second - 200_000.0).abs() < 1e-6, "{r:?}");
        assert!(r.high.unwrap() > 1.3 * r.per_second, "{r:?}");
        // One period with nearly all the switches: its residual says nothing.
        let one = [
            period(0, 10_000, Some(10_000), 10),
            period(1, 0, Some(10), 10),
        ];
        let r = per_switch_rate(&one.iter().collect::<Vec<_>>(), w).unwrap();
        assert_eq!((r.low, r.high), (None, None), "{r:?}");
    }

    #[test]
    fn no_switch_count_or_no_switch_gives_no_rate() {
        let w = SwitchFacts {
            seconds: 10.0,
            counted: 5,
            switches: 100.0,
            watched_switches: 0.0,
        };
        let unread = [period(0, 10, None, 1), period(1, 10, None, 1)];
        assert_eq!(per_switch_rate(&unread.iter().collect::<Vec<_>>(), w), None);
        // A period without a count is left out, not the model.
        let one_unread = [period(0, 10, Some(10), 1), period(1, 99, None, 1)];
        let r = per_switch_rate(&one_unread.iter().collect::<Vec<_>>(), w).unwrap();
        assert_eq!((r.samples, r.per_second), (1, 0.5 + 10.0));
        let idle = [period(0, 0, Some(0), 1), period(1, 0, Some(0), 1)];
        assert_eq!(per_switch_rate(&idle.iter().collect::<Vec<_>>(), w), None);
        assert_eq!(per_switch_rate(&[], w), None);
    }
}
