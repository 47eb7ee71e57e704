//! Where the host put this VM's two vCPUs, probed by bouncing one cache line between them.
//!
//! On this machine the ping-pong workload's throughput follows the host's vCPU placement, not
//! the tracer: with both vCPUs on one physical core (a cache line moves in ~40 ns) it runs at
//! ~1.9M ops/s; on different cores (~190 ns) at ~1.0M. The placement changes every few seconds
//! to minutes, with or without a tracer. Probing it just before and after each run tells which
//! runs can be compared at all.
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Result, ensure};

use super::{
    Mode,
    stats::{mean_ci_text, median, quartiles},
};

/// One cache line, so that the flag's line holds nothing else.
#[repr(align(64))]
struct Line(AtomicU64);

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) -> Result<()> {
    // SAFETY: `set` is a properly initialized cpu_set_t that outlives the call.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    ensure!(
        rc == 0,
        "sched_setaffinity(cpu {cpu}): {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// Round trips per second of a cache line bounced between CPU 0 and CPU 1 for `dur`.
pub fn cache_line_rate(dur: Duration) -> Result<f64> {
    let flag = Arc::new(Line(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    // Each side waits for its value, then hands the line to the other side.
    let side = |cpu: usize, wait_for: u64| {
        let (flag, stop) = (flag.clone(), stop.clone());
        std::thread::spawn(move || -> Result<u64> {
            pin(cpu)?;
            let mut trips = 0u64;
            'run: loop {
                let mut spins = 0u32;
                while flag.0.load(Ordering::Acquire) != wait_for {
                    spins = spins.wrapping_add(1);
                    if spins.is_multiple_of(1024) && stop.load(Ordering::Relaxed) {
                        break 'run;
                    }
                }
                flag.0.store(wait_for ^ 1, Ordering::Release);
                trips += 1;
                if trips.is_multiple_of(1024) && stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            Ok(trips)
        })
    };
    let t0 = Instant::now();
    let a = side(0, 0);
    let b = side(1, 1);
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    let trips = a
        .join()
        .map_err(|_| anyhow::anyhow!("cache line probe panicked"))??;
    b.join()
        .map_err(|_| anyhow::anyhow!("cache line probe panicked"))??;
    Ok(trips as f64 / t0.elapsed().as_secs_f64())
}

/// The placement a probe rate belongs to, for rates from one machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Placement {
    /// Both vCPUs share a core (the faster mode).
    Near,
    /// The vCPUs are on different cores.
    Far,
    /// The probes never differed more than 2x: one placement throughout.
    Steady,
}

impl Placement {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Near => "near",
            Placement::Far => "far",
            Placement::Steady => "steady",
        }
    }
}

/// Splits `rates` into two placements when they differ more than 2x, at their geometric middle;
/// `None` when all rates are one placement.
pub fn threshold(rates: &[f64]) -> Option<f64> {
    let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rates.iter().copied().fold(0.0, f64::max);
    (lo > 0.0 && hi / lo > 2.0).then(|| (lo * hi).sqrt())
}

/// The placement of a probe rate given the run's `threshold`.
pub fn classify(rate: f64, threshold: Option<f64>) -> Placement {
    match threshold {
        Some(t) if rate < t => Placement::Far,
        Some(_) => Placement::Near,
        None => Placement::Steady,
    }
}

/// How long each placement probe bounces its cache line.
pub const PROBE: Duration = Duration::from_millis(300);

/// The second table: each mode's ratio to `off` over the rounds where both runs kept one vCPU
/// placement throughout, per placement.
pub fn write_by_placement(
    report: &mut String,
    probed: &[BTreeMap<Mode, (f64, f64, f64)>],
) -> Result<()> {
    let rates: Vec<f64> = probed
        .iter()
        .flat_map(|r| r.values().flat_map(|&(_, a, b)| [a, b]))
        .collect();
    let split = threshold(&rates);
    // A run's placement, if the probes on both its sides agree.
    let kept = |&(_, a, b): &(f64, f64, f64)| {
        let p = classify(a, split);
        (p == classify(b, split)).then_some(p)
    };
    let mut by: BTreeMap<(Placement, Mode), Vec<f64>> = BTreeMap::new();
    let mut moved = 0;
    for round in probed {
        let Some(off) = round.get(&Mode::Off) else {
            continue;
        };
        moved += round.values().filter(|s| kept(s).is_none()).count();
        for (m, s) in round.iter().filter(|(m, _)| **m != Mode::Off) {
            if let (Some(p), Some(q)) = (kept(off), kept(s))
                && p == q
            {
                by.entry((p, *m)).or_default().push(s.0 / off.0);
            }
        }
    }
    let median_rate = |p: Placement| {
        median(
            &rates
                .iter()
                .copied()
                .filter(|&r| classify(r, split) == p)
                .collect::<Vec<_>>(),
        )
    };
    writeln!(
        report,
        "\n### By vCPU placement\n\nThe host moves this VM's two vCPUs between sharing a core and not, every few seconds to minutes; the ping-pong workload's throughput follows (about 1.8x). A cache line bounced between the two CPUs for {} ms before and after every run tells the placement{}. {moved} runs changed placement while they ran. Below, each mode against `off` over the rounds in which both runs kept the same placement throughout:\n",
        PROBE.as_millis(),
        match split {
            Some(_) => format!(
                ": near (shared core, median {:.1}M round trips/s) or far (median {:.1}M/s)",
                median_rate(Placement::Near) / 1e6,
                median_rate(Placement::Far) / 1e6
            ),
            None => format!(
                " (here it never changed: median {:.1}M round trips/s)",
                median_rate(Placement::Steady) / 1e6
            ),
        }
    )?;
    writeln!(
        report,
        "| placement | mode | rounds | throughput vs off (median, IQR) | mean, 95% CI |"
    )?;
    writeln!(report, "|---|---|---|---|---|")?;
    for ((p, m), r) in &by {
        let (q1, q3) = quartiles(r);
        writeln!(
            report,
            "| {} | {} | {} | {:.3} ({q1:.3}–{q3:.3}) | {} |",
            p.name(),
            m.name(),
            r.len(),
            median(r),
            mean_ci_text(r)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_placements_split_at_the_geometric_middle() {
        let t = threshold(&[12e6, 2.6e6, 11e6, 2.5e6]);
        assert_eq!(classify(12e6, t), Placement::Near);
        assert_eq!(classify(2.6e6, t), Placement::Far);
        assert!(threshold(&[12e6, 10e6, 11e6]).is_none());
        assert_eq!(classify(1.0, None), Placement::Steady);
    }

    #[test]
    fn the_probe_moves_the_line() {
        // Two vCPUs at the least; the rate is whatever the machine gives, but never zero.
        assert!(cache_line_rate(Duration::from_millis(50)).unwrap_or(0.0) > 1000.0);
    }
}
