//! Detectors: from a process's report to a state and flags an alert can fire on. Every threshold
//! is in the config file (`detectors:`); the definitions are in ARCHITECTURE.md ("Detectors").
use serde::{Deserialize, Serialize};

use crate::{classify::CpuClass, model::report::Report};

/// Thresholds (`detectors:` in the config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Below this many CPU cores a process is `idle`: nothing else is judged.
    pub min_cpu_cores: f64,
    /// Pseudo-idle when the non-productive share of CPU (scheduler + futex + locks + gc + cgo +
    /// native) reaches this.
    pub pseudo_idle_min_score: f64,
    /// `scheduler_storm` when the scheduler + futex share reaches this.
    pub scheduler_storm_min_share: f64,
    /// `futex_storm` when futex(2) waits + wakes per second reach this.
    pub futex_storm_min_per_second: f64,
    /// `cgo_spin` when the cgo share reaches this.
    pub cgo_spin_min_share: f64,
    /// `native_spin` when the native-thread share reaches this.
    pub native_spin_min_share: f64,
    /// `gc_pressure` when the GC share reaches this.
    pub gc_pressure_min_share: f64,
    /// `lock_contention` when the locks share reaches this.
    pub lock_contention_min_share: f64,
    /// `goroutine_leak` when the goroutine count grew by at least this many over the window...
    pub leak_min_growth: u64,
    /// ...and by at least this fraction of its value at the window's start.
    pub leak_min_growth_ratio: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            min_cpu_cores: 0.25,
            pseudo_idle_min_score: 0.6,
            scheduler_storm_min_share: 0.4,
            futex_storm_min_per_second: 5000.0,
            cgo_spin_min_share: 0.5,
            native_spin_min_share: 0.5,
            gc_pressure_min_share: 0.25,
            lock_contention_min_share: 0.25,
            leak_min_growth: 100,
            leak_min_growth_ratio: 0.2,
        }
    }
}

/// The overall state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadState {
    /// Not enough data yet (no window, no samples).
    Unknown,
    /// Below `min_cpu_cores`.
    Idle,
    /// Busy, mostly with its own code (or syscalls it asked for).
    Busy,
    /// Pseudo-idle high load: substantial CPU, little of it the program's own code.
    PseudoIdle,
}

impl LoadState {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadState::Unknown => "unknown",
            LoadState::Idle => "idle",
            LoadState::Busy => "busy",
            LoadState::PseudoIdle => "pseudo_idle",
        }
    }
}

/// A named condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// Pseudo-idle high load.
    PseudoIdle,
    /// The scheduler and futex traffic take a large share of CPU.
    SchedulerStorm,
    /// futex(2) at a very high rate.
    FutexStorm,
    /// C code called through cgo takes most of the CPU.
    CgoSpin,
    /// Threads unknown to the Go runtime take most of the CPU.
    NativeSpin,
    /// The garbage collector takes a large share of CPU.
    GcPressure,
    /// Contention in sync primitives takes a large share of CPU.
    LockContention,
    /// The goroutine count keeps growing.
    GoroutineLeak,
}

impl Flag {
    /// Every flag.
    pub const ALL: [Flag; 8] = [
        Flag::PseudoIdle,
        Flag::SchedulerStorm,
        Flag::FutexStorm,
        Flag::CgoSpin,
        Flag::NativeSpin,
        Flag::GcPressure,
        Flag::LockContention,
        Flag::GoroutineLeak,
    ];

    /// Stable snake_case name (metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::PseudoIdle => "pseudo_idle",
            Flag::SchedulerStorm => "scheduler_storm",
            Flag::FutexStorm => "futex_storm",
            Flag::CgoSpin => "cgo_spin",
            Flag::NativeSpin => "native_spin",
            Flag::GcPressure => "gc_pressure",
            Flag::LockContention => "lock_contention",
            Flag::GoroutineLeak => "goroutine_leak",
        }
    }
}

/// What the detectors say about one process.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// Overall state.
    pub state: LoadState,
    /// Pseudo-idle score: the non-productive share of CPU (null without samples).
    pub pseudo_idle_score: Option<f64>,
    /// Conditions that hold.
    pub flags: Vec<Flag>,
}

/// Goroutine counts at the window's start and now, when the runtime's memory can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoroutineGrowth {
    /// At the window's start.
    pub before: u64,
    /// Now.
    pub now: u64,
}

/// Judges a report.
pub fn judge(cfg: &DetectorConfig, r: &Report, goroutines: Option<GoroutineGrowth>) -> Verdict {
    let mut flags = Vec::new();
    if let Some(g) = goroutines {
        let growth = g.now.saturating_sub(g.before);
        if growth >= cfg.leak_min_growth
            && growth as f64 >= cfg.leak_min_growth_ratio * g.before.max(1) as f64
        {
            flags.push(Flag::GoroutineLeak);
        }
    }
    let Some(cpu) = r.cpu.as_ref().filter(|c| c.window_seconds > 0.0) else {
        return Verdict {
            state: LoadState::Unknown,
            pseudo_idle_score: None,
            flags,
        };
    };
    let score = (cpu.samples > 0).then(|| {
        [
            CpuClass::Scheduler,
            CpuClass::Futex,
            CpuClass::Locks,
            CpuClass::Gc,
            CpuClass::Cgo,
            CpuClass::Native,
        ]
        .iter()
        .map(|c| cpu.share(*c))
        .sum::<f64>()
    });
    if cpu.cores < cfg.min_cpu_cores {
        flags.sort();
        return Verdict {
            state: LoadState::Idle,
            pseudo_idle_score: score,
            flags,
        };
    }
    let Some(score) = score else {
        return Verdict {
            state: LoadState::Unknown,
            pseudo_idle_score: None,
            flags,
        };
    };
    let state = if score >= cfg.pseudo_idle_min_score {
        flags.push(Flag::PseudoIdle);
        LoadState::PseudoIdle
    } else {
        LoadState::Busy
    };
    let share = |c| cpu.share(c);
    for (cond, flag) in [
        (
            share(CpuClass::Scheduler) + share(CpuClass::Futex) >= cfg.scheduler_storm_min_share,
            Flag::SchedulerStorm,
        ),
        (
            r.futex.as_ref().is_some_and(|f| {
                f.wait_per_second + f.wake_per_second >= cfg.futex_storm_min_per_second
            }),
            Flag::FutexStorm,
        ),
        (
            share(CpuClass::Cgo) >= cfg.cgo_spin_min_share,
            Flag::CgoSpin,
        ),
        (
            share(CpuClass::Native) >= cfg.native_spin_min_share,
            Flag::NativeSpin,
        ),
        (
            share(CpuClass::Gc) >= cfg.gc_pressure_min_share,
            Flag::GcPressure,
        ),
        (
            share(CpuClass::Locks) >= cfg.lock_contention_min_share,
            Flag::LockContention,
        ),
    ] {
        if cond {
            flags.push(flag);
        }
    }
    flags.sort();
    Verdict {
        state,
        pseudo_idle_score: Some(score),
        flags,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::report::{ClassShare, CpuSplit};

    fn report(cores: f64, shares: &[(CpuClass, f64)]) -> Report {
        let classes: BTreeMap<&'static str, ClassShare> = CpuClass::ALL
            .iter()
            .map(|c| {
                let share = shares
                    .iter()
                    .find(|(k, _)| k == c)
                    .map(|(_, s)| *s)
                    .unwrap_or(0.0);
                (
                    c.as_str(),
                    ClassShare {
                        seconds: share * cores * 10.0,
                        share,
                    },
                )
            })
            .collect();
        Report {
            cpu: Some(CpuSplit {
                window_seconds: 10.0,
                cpu_seconds: cores * 10.0,
                cores,
                samples: 1000,
                kernel_share: 0.0,
                classes,
            }),
            ..Report::default()
        }
    }

    #[test]
    fn pathologies_and_controls() {
        let cfg = DetectorConfig::default();
        let storm = judge(
            &cfg,
            &report(
                1.8,
                &[
                    (CpuClass::Scheduler, 0.7),
                    (CpuClass::Futex, 0.2),
                    (CpuClass::User, 0.1),
                ],
            ),
            None,
        );
        assert_eq!(storm.state, LoadState::PseudoIdle);
        assert!(storm.flags.contains(&Flag::SchedulerStorm));
        let cgo = judge(
            &cfg,
            &report(1.0, &[(CpuClass::Cgo, 0.97), (CpuClass::User, 0.03)]),
            None,
        );
        assert_eq!(cgo.flags, vec![Flag::PseudoIdle, Flag::CgoSpin]);
        let native = judge(&cfg, &report(1.0, &[(CpuClass::Native, 0.99)]), None);
        assert!(native.flags.contains(&Flag::NativeSpin));
        let compute = judge(
            &cfg,
            &report(2.0, &[(CpuClass::User, 0.97), (CpuClass::Scheduler, 0.03)]),
            None,
        );
        assert_eq!(compute.state, LoadState::Busy);
        assert!(compute.flags.is_empty());
        let idle = judge(&cfg, &report(0.01, &[(CpuClass::Scheduler, 1.0)]), None);
        assert_eq!(idle.state, LoadState::Idle);
        assert!(idle.flags.is_empty());
        let gc = judge(
            &cfg,
            &report(1.5, &[(CpuClass::Gc, 0.3), (CpuClass::User, 0.7)]),
            None,
        );
        assert_eq!(gc.flags, vec![Flag::GcPressure]);
    }

    #[test]
    fn leak_needs_absolute_and_relative_growth() {
        let cfg = DetectorConfig::default();
        let r = report(0.01, &[]);
        let grow = |before, now| judge(&cfg, &r, Some(GoroutineGrowth { before, now })).flags;
        assert_eq!(grow(10, 500), vec![Flag::GoroutineLeak]);
        assert!(grow(10, 50).is_empty(), "growth below the absolute minimum");
        assert!(
            grow(100_000, 100_200).is_empty(),
            "growth below the relative minimum"
        );
    }
}
