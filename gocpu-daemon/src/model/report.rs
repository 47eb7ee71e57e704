//! What one process's numbers say over the window: CPU split by class, ratios, off-CPU time by
//! reason, futex traffic by caller. Computed on demand from the model (API and /metrics share it).
use std::{collections::BTreeMap, time::Instant};

use gocpu_common::ProcStats;
use serde::Serialize;

use crate::{
    classify::CpuClass,
    model::{
        blocking::{FutexOpLabel, OffReason},
        process::GoProcess,
    },
    probes::{
        estimate::{RateEstimate, WindowFacts, window_rate},
        per_switch::{SwitchFacts, per_switch_rate},
        syscalls::Estimated,
    },
};

/// CPU time of one class over the window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ClassShare {
    /// CPU seconds (on-CPU time over the window times the class's share of samples).
    pub seconds: f64,
    /// Share of the process's CPU samples.
    pub share: f64,
}

/// The CPU split over the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CpuSplit {
    /// Window covered, seconds.
    pub window_seconds: f64,
    /// On-CPU seconds of all threads (exact, from context switches).
    pub cpu_seconds: f64,
    /// Average CPU cores used.
    pub cores: f64,
    /// CPU samples the split is based on.
    pub samples: u64,
    /// Share of samples taken in kernel mode.
    pub kernel_share: f64,
    /// Per class (every class present, zero when unseen).
    pub classes: BTreeMap<&'static str, ClassShare>,
}

impl CpuSplit {
    /// The share of `class`.
    pub fn share(&self, class: CpuClass) -> f64 {
        self.classes
            .get(class.as_str())
            .map(|c| c.share)
            .unwrap_or(0.0)
    }
}

/// The ratios users alert on (shares of the process's CPU time).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Ratios {
    /// Scheduler share: schedule/findRunnable/stealWork/park_m, goroutine switching, channel
    /// machinery, runtime lock spinning, usleep/osyield backoff.
    pub spin: f64,
    /// Futex share: CPU spent parking and waking Ms through futex(2).
    pub park: f64,
    /// Syscall share: CPU in other system calls.
    pub syscall: f64,
}

/// Off-CPU thread-seconds over the window, by reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OffCpu {
    /// Window covered, seconds.
    pub window_seconds: f64,
    /// Thread-seconds blocked, per reason.
    pub blocked_seconds: BTreeMap<&'static str, f64>,
    /// Thread-seconds runnable but waiting for a CPU (wake-up or preemption to running).
    pub runnable_seconds: f64,
}

/// One futex caller's rate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FutexCallerRate {
    /// The runtime function that made the calls.
    pub function: String,
    /// Wait or wake.
    pub op: FutexOpLabel,
    /// Calls per second: its share of the sampled stacks times the futex call rate.
    pub per_second: f64,
}

/// futex(2) traffic over the window (over its part since the syscall estimate became complete,
/// when that is later than the window's start).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FutexTraffic {
    /// Wait calls per second (exact while the futex tracepoint stays attached, else estimated
    /// from its attached periods).
    pub wait_per_second: f64,
    /// Wake calls per second (as `wait_per_second`).
    pub wake_per_second: f64,
    /// Top callers, by rate.
    pub callers: Vec<FutexCallerRate>,
}

/// Everything computed for one process.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// CPU split (null before the first samples).
    pub cpu: Option<CpuSplit>,
    /// Ratios (null without samples).
    pub ratios: Option<Ratios>,
    /// Off-CPU time.
    pub offcpu: Option<OffCpu>,
    /// futex traffic (null until the syscall tracepoints have counted the process's calls).
    pub futex: Option<FutexTraffic>,
    /// Thread wake-ups per second (sched_wakeup of the process's threads).
    pub wakeups_per_second: Option<f64>,
    /// nanosleep calls (runtime.usleep) per second (null as `futex`).
    pub usleep_per_second: Option<f64>,
    /// sched_yield calls (runtime.osyield) per second (null as `futex`).
    pub osyield_per_second: Option<f64>,
}

fn per_second(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// Most futex callers reported.
const TOP_CALLERS: usize = 10;

/// The syscall counters' increase over the window ending at `now` and its length in seconds,
/// cut to the part in which their estimate is complete (`None` when that part is empty: a rate
/// over time whose calls were not seen would read zero).
fn syscall_delta(
    since: Instant,
    now: Instant,
    current: &Estimated,
    window: (f64, ProcStats),
) -> Option<(f64, ProcStats)> {
    let (secs, delta) = match current.syscalls_known_since {
        Some((t, base)) if t > since => (
            now.saturating_duration_since(t).as_secs_f64(),
            current.stats.since(&base),
        ),
        _ => window,
    };
    (secs > 0.0).then_some((secs, delta))
}

/// Computes the report of `p` as of `now`, given its current cumulative counters.
pub fn report(p: &GoProcess, now: Instant, current: &Estimated) -> Report {
    let d = p.window.delta(now, &current.stats);
    let Some(a) = p.analysis.as_ref() else {
        return Report::default();
    };
    let secs = d.seconds;
    let since = d.since.unwrap_or(now);
    let syscalls = syscall_delta(since, now, current, (secs, d.stats));
    let counts = a.profile.classes_since(since, now);
    let cpu_seconds = d.stats.oncpu_ns as f64 / 1e9;
    let cpu = (secs > 0.0).then(|| CpuSplit {
        window_seconds: secs,
        cpu_seconds,
        cores: cpu_seconds / secs,
        samples: counts.total(),
        kernel_share: if counts.total() > 0 {
            counts.kernel as f64 / counts.total() as f64
        } else {
            0.0
        },
        classes: CpuClass::ALL
            .iter()
            .map(|c| {
                let share = counts.share(*c);
                (
                    c.as_str(),
                    ClassShare {
                        seconds: cpu_seconds * share,
                        share,
                    },
                )
            })
            .collect(),
    });
    let ratios = cpu.as_ref().filter(|c| c.samples > 0).map(|c| Ratios {
        spin: c.share(CpuClass::Scheduler),
        park: c.share(CpuClass::Futex),
        syscall: c.share(CpuClass::Syscall),
    });
    let reasons = a.blocking.reasons();
    let offcpu = (secs > 0.0).then(|| OffCpu {
        window_seconds: secs,
        blocked_seconds: OffReason::ALL
            .iter()
            .map(|r| {
                let ns = reasons.stats.get(r).copied().unwrap_or(0);
                (r.as_str(), ns as f64 / 1e9)
            })
            .collect(),
        runnable_seconds: d.stats.runq_wait_ns as f64 / 1e9,
    });
    let callers = a.blocking.futex_callers();
    // Stacks are sampled only while the futex tracepoint is attached: their shares, applied to
    // the (estimated) futex call rate, give each caller's rate.
    let sampled: u64 = callers.stats.values().sum();
    let futex = syscalls.map(|(secs, s)| {
        let futex_per_second = per_second(
            s.futex_wait_syscalls
                .saturating_add(s.futex_wake_syscalls)
                .saturating_add(s.futex_other_syscalls),
            secs,
        );
        let mut rates: Vec<FutexCallerRate> = callers
            .stats
            .iter()
            .filter(|_| sampled > 0)
            .map(|((f, op), n)| FutexCallerRate {
                function: f.to_string(),
                op: *op,
                per_second: *n as f64 / sampled as f64 * futex_per_second,
            })
            .collect();
        rates.sort_by(|a, b| {
            b.per_second
                .total_cmp(&a.per_second)
                .then(a.function.cmp(&b.function))
        });
        rates.truncate(TOP_CALLERS);
        FutexTraffic {
            wait_per_second: per_second(s.futex_wait_syscalls, secs),
            wake_per_second: per_second(s.futex_wake_syscalls, secs),
            callers: rates,
        }
    });
    let syscall_rate = |n: fn(&ProcStats) -> u64| syscalls.map(|(secs, s)| per_second(n(&s), secs));
    Report {
        cpu,
        ratios,
        offcpu,
        futex,
        wakeups_per_second: (secs > 0.0).then(|| per_second(d.stats.wakeups, secs)),
        usleep_per_second: syscall_rate(|s| s.nanosleep_syscalls),
        osyield_per_second: syscall_rate(|s| s.sched_yield_syscalls),
    }
}

/// How a runtime call rate was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateMethod {
    /// Exact: the uprobe stayed attached, the rate is the counter's increase over the window.
    Window,
    /// Sampled: the calls counted while attached, plus what the model fitted to the uprobe's
    /// attached periods (calls per wall and per CPU second) says of the time it did not watch
    /// (`probes/estimate.rs`).
    Sampled,
    /// runtime.mcall: the calls counted while attached, plus the attached periods' calls per
    /// goroutine switch times the switches the runtime itself counted while detached
    /// (`probes/per_switch.rs`).
    PerSwitch,
}

/// Entries per second into one hooked runtime function.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CallRate {
    /// Calls per second (null when withheld, see `withheld`).
    pub per_second: Option<f64>,
    /// How it was obtained.
    pub method: RateMethod,
    /// Fraction of time the uprobe is attached.
    pub duty: Option<f64>,
    /// About 95% interval, calls per second (equal to the rate when exact; null with too few
    /// periods to say).
    pub low: Option<f64>,
    /// Upper end of the interval.
    pub high: Option<f64>,
    /// Attached seconds a sampled rate rests on.
    pub sample_seconds: Option<f64>,
    /// Attached periods a sampled rate rests on.
    pub samples: Option<usize>,
    /// Why the rate is withheld: its interval is wider than the rate itself (a rate resting
    /// on one period has no interval, is given, and is not exported on /metrics).
    pub withheld: Option<&'static str>,
}

impl CallRate {
    /// The rate, when its interval is known and narrower than the rate: what /metrics
    /// exports (one period says nothing of how periods differ).
    pub fn bounded(&self) -> Option<f64> {
        self.per_second
            .filter(|_| self.low.is_some() && self.high.is_some())
    }
}

/// Call rates of the hooked runtime functions, and the wake-up amplification they allow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuntimeRates {
    /// Per function (runtime.futex, runtime.usleep, runtime.mcall, runtime.cgocall).
    pub calls: BTreeMap<&'static str, CallRate>,
    /// futex(2) wakes per goroutine switch (runtime.mcall): how many thread wake-ups each
    /// goroutine hand-off costs; high values are the signature of a wake-up storm.
    pub wake_amplification: Option<f64>,
    /// cgo calls per second (runtime.cgocall).
    pub cgo_calls_per_second: Option<f64>,
}

/// A sampled rate, or why it is withheld: its interval is wider than the rate itself, or
/// there is none.
fn rated(e: RateEstimate, duty: Option<f64>, method: RateMethod) -> CallRate {
    // The hit cost's part of the interval is known from a single period; the statistical part
    // needs periods enough that none carries a term of the model alone.
    let withheld = match (e.low, e.high) {
        _ if e.cost_spread > e.per_second && e.per_second > 0.0 => {
            Some("the hook's own cost is most of the CPU time it watched")
        }
        (Some(lo), Some(hi)) if hi - lo > e.per_second && e.per_second > 0.0 => {
            Some("interval wider than the rate")
        }
        (Some(_), Some(_)) => None,
        // Single-period rates given so read the GC-heavy workload's runtime.mcall at x12.
        _ => Some(NO_INTERVAL),
    };
    CallRate {
        per_second: withheld.is_none().then_some(e.per_second),
        method,
        duty,
        low: e.low,
        high: e.high,
        sample_seconds: Some(e.sample_seconds),
        samples: Some(e.samples),
        withheld,
    }
}

/// Why a sampled rate with no interval is withheld.
pub const NO_INTERVAL: &str = "too few attached periods to bound it";

/// Runtime call rates over the window ending `now` (counters `current`), given the hooks'
/// governed states.
pub fn runtime_rates(
    p: &GoProcess,
    now: Instant,
    current: &Estimated,
    hooks: &[crate::probes::uprobes::HookStatus],
) -> RuntimeRates {
    use crate::probes::uprobes::HookState;
    let d = p.window.delta(now, &current.stats);
    let mut calls = BTreeMap::new();
    for h in hooks {
        let HookState::Governed {
            attached,
            attached_since,
            duty,
            ref samples,
            ..
        } = h.state
        else {
            continue;
        };
        let counter = match h.function {
            "runtime.futex" => d.stats.futex_calls,
            "runtime.usleep" => d.stats.usleep_calls,
            "runtime.mcall" => d.stats.mcall_calls,
            "runtime.cgocall" => d.stats.cgocall_calls,
            _ => continue,
        };
        let Some(since) = d.since.filter(|_| d.seconds > 0.0) else {
            continue;
        };
        // Counted exactly only when the uprobe saw the whole window; otherwise estimated from
        // its attached periods.
        let whole_window = matches!(attached_since, Some(a) if a <= since);
        let rate = if attached && whole_window && duty == Some(1.0) {
            let r = counter as f64 / d.seconds;
            Some(CallRate {
                per_second: Some(r),
                method: RateMethod::Window,
                duty,
                low: Some(r),
                high: Some(r),
                sample_seconds: None,
                samples: None,
                withheld: None,
            })
        } else {
            let running = attached_since.filter(|_| attached).map_or(0.0, |a| {
                now.saturating_duration_since(a.max(since)).as_secs_f64()
            });
            // runtime.mcall: per switch the runtime counted, where it counts them; the calls
            // per CPU second of a storm slowed by the traps are not the program's.
            let per_switch = (h.function == "runtime.mcall")
                .then(|| {
                    let rate = p.analysis.as_ref()?.runtime.switch_rate()?;
                    let (counted, uncounted) = samples.watched_switches(since);
                    let facts = SwitchFacts {
                        seconds: d.seconds,
                        counted: counter,
                        switches: rate * d.seconds,
                        // The running period's switches are not read yet, nor those of a period
                        // that began before the runtime could be read: their share in time.
                        watched_switches: counted + rate * (running + uncounted),
                    };
                    per_switch_rate(&samples.picked(since, now), facts)
                })
                .flatten();
            if let Some(e) = per_switch {
                calls.insert(h.function, rated(e, duty, RateMethod::PerSwitch));
                continue;
            }
            samples.bounded_pool(since, now).and_then(|pool| {
                let cpu_seconds = d.stats.oncpu_ns as f64 / 1e9;
                let (watched, watched_cpu) = samples.watched(since);
                // The running period's CPU time is not read yet: its share in time.
                let running_cpu = cpu_seconds * running / d.seconds;
                let facts = WindowFacts {
                    seconds: d.seconds,
                    counted: counter,
                    cpu_seconds,
                    watched: watched + running,
                    watched_cpu: watched_cpu + running_cpu,
                };
                window_rate(facts, &pool).map(|e| rated(e, duty, RateMethod::Sampled))
            })
        };
        if let Some(r) = rate {
            calls.insert(h.function, r);
        }
    }
    let since = d.since.unwrap_or(now);
    let wakes = syscall_delta(since, now, current, (d.seconds, d.stats))
        .map(|(secs, s)| per_second(s.futex_wake_syscalls, secs));
    let mcalls = calls.get("runtime.mcall").and_then(|r| r.per_second);
    let wake_amplification = match (wakes, mcalls) {
        (Some(w), Some(m)) if m > 0.0 => Some(w / m),
        _ => None,
    };
    let cgo_calls_per_second = calls.get("runtime.cgocall").and_then(|r| r.per_second);
    RuntimeRates {
        calls,
        wake_amplification,
        cgo_calls_per_second,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    fn waits(n: u64) -> ProcStats {
        ProcStats {
            futex_wait_syscalls: n,
            ..ProcStats::default()
        }
    }

    #[test]
    fn a_rate_is_withheld_with_the_reason_its_interval_is_wide() {
        let e = |low, high, cost_spread| RateEstimate {
            per_second: 100.0,
            low,
            high,
            sample_seconds: 0.1,
            samples: 4,
            probe_share: 0.0,
            cost_spread,
        };
        let given = rated(
            e(Some(80.0), Some(120.0), 10.0),
            Some(0.1),
            RateMethod::Sampled,
        );
        assert_eq!((given.per_second, given.withheld), (Some(100.0), None));
        let wide = rated(
            e(Some(20.0), Some(180.0), 10.0),
            Some(0.1),
            RateMethod::Sampled,
        );
        assert_eq!(wide.withheld, Some("interval wider than the rate"));
        assert_eq!(wide.per_second, None);
        // The hook's cost alone is known from one period, which has no statistical interval.
        let costly = rated(e(None, None, 150.0), Some(0.1), RateMethod::Sampled);
        assert_eq!(
            costly.withheld,
            Some("the hook's own cost is most of the CPU time it watched")
        );
        // Without an interval (too few periods) it is withheld, however cheap the hook.
        let unbounded = rated(e(None, None, 10.0), Some(0.1), RateMethod::Sampled);
        assert_eq!(
            (unbounded.per_second, unbounded.withheld),
            (None, Some(NO_INTERVAL))
        );
    }

    #[test]
    fn syscall_rates_cover_only_the_time_their_estimate_is_complete() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let window = (10.0, waits(400));
        let current = |known_since| Estimated {
            stats: waits(1000),
            syscalls_known_since: known_since,
        };
        // Complete throughout, or since before the window: the window's own delta.
        for known in [None, Some((at(0), waits(0))), Some((at(5), waits(600)))] {
            assert_eq!(
                syscall_delta(at(5), at(15), &current(known), window),
                Some(window)
            );
        }
        // Complete only since 12 s: the 3 s since, and the calls counted in them.
        let (secs, delta) =
            syscall_delta(at(5), at(15), &current(Some((at(12), waits(700)))), window).unwrap();
        assert_eq!((secs, delta.futex_wait_syscalls), (3.0, 300));
        // Not yet complete at all: no rate, rather than zero.
        assert_eq!(
            syscall_delta(at(5), at(15), &current(Some((at(15), waits(1000)))), window),
            None
        );
        // No window yet.
        assert_eq!(
            syscall_delta(at(15), at(15), &current(None), (0.0, waits(0))),
            None
        );
    }
}
