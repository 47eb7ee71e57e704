//! Throughput second by second, split by the pace the host's vCPU placement sets.
//!
//! A window's average mixes the two paces whenever the placement changes during a run, and
//! the probes around a run (`placement`) cannot see a change and change back. Each second of
//! every window is instead assigned to the fast or the slow pace by the gap between the two in
//! the `off` runs, and each mode is compared with `off` within one pace. A second counts for a
//! run only if the run spent at least `MIN_SECONDS` seconds in that pace, so one transition
//! second does not stand for a run.
use std::{collections::BTreeMap, fmt::Write as _};

use anyhow::Result;

use super::{
    Mode, Run,
    stats::{mean_ci, median},
};

/// Seconds a run needs in a pace to contribute its mean for that pace.
const MIN_SECONDS: usize = 3;

/// Two paces must differ at least this much to be told apart.
const MIN_GAP: f64 = 1.3;

/// The rate between the slow and the fast pace, or `None` when `rates` form one pace.
///
/// The split (in log space) that leaves the least variance within the two groups (Otsu's
/// method), with at least 5% of the rates on each side; it counts only if the groups' medians
/// are `MIN_GAP` apart. Seconds in which the placement changed lie between the paces, so
/// a widest-gap rule would find no gap once there are a few of them.
pub fn valley(rates: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = rates
        .iter()
        .copied()
        .filter(|r| *r > 0.0)
        .map(f64::ln)
        .collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let edge = (n / 20).max(1);
    if n < 2 * edge + 1 {
        return None;
    }
    let (mut sum, mut sq) = (vec![0.0; n + 1], vec![0.0; n + 1]);
    for (i, x) in v.iter().enumerate() {
        sum[i + 1] = sum[i] + x;
        sq[i + 1] = sq[i] + x * x;
    }
    // Sum of squared deviations of v[a..b] from its mean.
    let ss = |a: usize, b: usize| {
        let (s, q, k) = (sum[b] - sum[a], sq[b] - sq[a], (b - a) as f64);
        q - s * s / k
    };
    let i = (edge..=n - edge)
        .min_by(|&a, &b| (ss(0, a) + ss(a, n)).total_cmp(&(ss(0, b) + ss(b, n))))?;
    // Medians, so that a few outliers making up one side cannot pass for a pace.
    let (lo, hi) = (v[(i - 1) / 2], v[i + (n - i) / 2]);
    ((hi - lo).exp() > MIN_GAP).then(|| ((v[i - 1] + v[i]) / 2.0).exp())
}

/// Which pace a second belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Pace {
    /// Above the valley (or the only pace).
    Fast,
    /// Below the valley.
    Slow,
}

/// The pace of a second's `rate`: below the valley is slow; everything is fast without one.
pub(super) fn pace_of(rate: f64, valley: Option<f64>) -> Pace {
    match valley {
        Some(v) if rate < v => Pace::Slow,
        _ => Pace::Fast,
    }
}

/// Per pace, each run's mean rate over its seconds in that pace (runs with enough of them).
fn run_means(runs: &[Run], valley: Option<f64>) -> BTreeMap<Pace, Vec<f64>> {
    let mut out: BTreeMap<Pace, Vec<f64>> = BTreeMap::new();
    for r in runs {
        let mut by: BTreeMap<Pace, Vec<f64>> = BTreeMap::new();
        for &s in &r.per_second {
            by.entry(pace_of(s, valley)).or_default().push(s);
        }
        for (pace, secs) in by {
            if secs.len() >= MIN_SECONDS {
                out.entry(pace)
                    .or_default()
                    .push(secs.iter().sum::<f64>() / secs.len() as f64);
            }
        }
    }
    out
}

/// The third table: each mode's throughput against `off` within each pace.
pub fn write_by_pace(report: &mut String, runs: &BTreeMap<Mode, Vec<Run>>) -> Result<()> {
    let Some(off) = runs.get(&Mode::Off) else {
        return Ok(());
    };
    let off_seconds: Vec<f64> = off.iter().flat_map(|r| r.per_second.clone()).collect();
    let valley = valley(&off_seconds);
    let base = run_means(off, valley);
    writeln!(
        report,
        "\n### By pace, second by second\n\nThe workload reports its rate in every second of the window. {} A run contributes its mean over its seconds in a pace if it spent at least {MIN_SECONDS} s there. Ratio: the mode's mean of run means over `off`'s, with a 95% interval from both spreads. A mode far slower than either pace (ungoverned, bpftrace) lands in the slow one; read its round ratios above instead.\n",
        match valley {
            Some(v) => format!(
                "The `off` runs' seconds fall into a fast and a slow pace (split at {:.0} ops/s); each second of every mode is assigned to one of them by that split.",
                v
            ),
            None => "The `off` runs' seconds form one pace.".to_string(),
        }
    )?;
    writeln!(
        report,
        "| mode | pace | runs | seconds | median ops/s | vs off (mean, 95% CI) | share of seconds in this pace |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|")?;
    for (m, rs) in runs {
        let total = rs.iter().map(|r| r.per_second.len()).sum::<usize>().max(1);
        let means = run_means(rs, valley);
        for (pace, ms) in &means {
            let secs: Vec<f64> = rs
                .iter()
                .flat_map(|r| r.per_second.iter().copied())
                .filter(|&s| pace_of(s, valley) == *pace)
                .collect();
            let (mean, half) = mean_ci(ms);
            let vs = match base.get(pace) {
                _ if *m == Mode::Off => "1".to_string(),
                Some(b) => {
                    let (bm, bh) = mean_ci(b);
                    let r = mean / bm;
                    let rel = ((half / mean).powi(2) + (bh / bm).powi(2)).sqrt();
                    if rel.is_nan() {
                        format!("{r:.3} (too few runs for an interval)")
                    } else {
                        format!("{r:.3} ± {:.3}", r * rel)
                    }
                }
                None => "– (off never ran at this pace)".to_string(),
            };
            writeln!(
                report,
                "| {} | {} | {} | {} | {:.0} | {vs} | {:.0}% |",
                m.name(),
                if *pace == Pace::Fast && valley.is_some() {
                    "fast"
                } else if *pace == Pace::Slow {
                    "slow"
                } else {
                    "one pace"
                },
                ms.len(),
                secs.len(),
                median(&secs),
                secs.len() as f64 / total as f64 * 100.0
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_paces_split_in_the_gap_and_one_pace_does_not() {
        let mut two = vec![1.9e6; 40];
        two.extend([1.0e6; 20]);
        // Seconds in which the placement changed, bridging every gap.
        two.extend((0..9).map(|i| 1.05e6 + i as f64 * 0.1e6));
        let v = valley(&two).unwrap_or(0.0);
        assert!(v > 1.1e6 && v < 1.8e6, "{v}");
        let one: Vec<f64> = (0..60).map(|i| 1.9e6 + i as f64 * 1e3).collect();
        assert!(valley(&one).is_none());
        // A lone outlier is not a pace.
        let mut outlier = one.clone();
        outlier.push(0.5e6);
        assert!(valley(&outlier).is_none());
    }

    #[test]
    fn runs_contribute_per_pace_with_enough_seconds() {
        let run = |s: &[f64]| Run {
            per_second: s.to_vec(),
            ..Run::default()
        };
        let runs = [
            run(&[2.0, 2.0, 2.0, 1.0]),
            run(&[1.0, 1.0, 1.0, 1.0]),
            run(&[2.0, 1.0, 2.0]),
        ];
        let m = run_means(&runs, Some(1.4));
        assert_eq!(m[&Pace::Fast], vec![2.0]);
        assert_eq!(m[&Pace::Slow], vec![1.0]);
    }
}
