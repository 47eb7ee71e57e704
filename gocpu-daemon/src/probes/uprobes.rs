//! Uprobes attached once per binary file, shared by every process running it, under the
//! overhead budget ([`crate::probes::budget`]).
//!
//! The kernel places a uprobe on an inode, so one attachment serves all processes mapping that
//! file, in any container. Each binary keeps its file open (attachments go through
//! `/proc/self/fd/N`, valid even after its processes exited), and is reference-counted by the
//! processes using it; it lingers for a grace period after the last one exits (short-lived
//! processes of one binary do not churn probes), then its uprobes are detached.
use std::{
    collections::{BTreeSet, HashMap},
    fs::File,
    sync::Arc,
    time::{Duration, Instant},
};

use gocpu_common::ProcStats;
use gocpu_gobin::sites::UprobeHandling;
use serde::Serialize;

use crate::{
    config::ProbesConfig,
    discovery::{
        FileKey, ProcKey,
        binaries::{GoFacts, ProbeSite, RuntimeHook},
    },
    probes::{
        budget::{Action, BudgetConfig, Governor, Period},
        calibrate::HitCost,
        estimate::{Sample, SampleLog, hits_cost},
        loader::KernelProbes,
        uprobe_link::{Scope, UprobeLink, fd_path},
    },
};

/// The state of one hook in one binary, as reported by the API.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum HookState {
    /// Governed: attached now or between measurement periods.
    Governed {
        /// Whether the uprobe is attached right now.
        attached: bool,
        /// Since when, if it is: a window that starts earlier saw every call only after this.
        #[serde(skip)]
        attached_since: Option<Instant>,
        /// Virtual address of the probed instruction.
        vaddr: u64,
        /// Its file offset.
        file_offset: u64,
        /// Fraction of time the hook is attached (1 = continuously), from the last period.
        duty: Option<f64>,
        /// This process's hits per second measured during the last attached period.
        calls_per_second: Option<f64>,
        /// This process's recent attached periods (what its rates are estimated from).
        #[serde(skip)]
        samples: SampleLog,
        /// Cost while attached, as a fraction of the binary's processes' CPU time.
        overhead_while_attached: Option<f64>,
        /// Seconds since the last measurement ended.
        measured_seconds_ago: Option<f64>,
    },
    /// Turned off in the configuration.
    Disabled,
    /// Could not be attached.
    Failed {
        /// Why.
        reason: String,
    },
}

/// A hook and its state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HookStatus {
    /// The runtime function.
    pub function: &'static str,
    /// Its state.
    #[serde(flatten)]
    pub state: HookState,
}

/// Hooks of one binary that share the overhead budget: the enabled uprobes and the syscall
/// tracepoint group.
pub fn governed_hooks(cfg: &ProbesConfig) -> usize {
    RuntimeHook::ALL
        .iter()
        .filter(|&&h| enabled(cfg, h))
        .count()
        + 1
}

fn enabled(cfg: &ProbesConfig, hook: RuntimeHook) -> bool {
    match hook {
        RuntimeHook::Futex => cfg.runtime_futex,
        RuntimeHook::Usleep => cfg.runtime_usleep,
        RuntimeHook::Mcall => cfg.runtime_mcall,
        RuntimeHook::Cgocall => cfg.runtime_cgocall,
    }
}

#[derive(Debug)]
struct HookSlot {
    hook: RuntimeHook,
    site: Result<ProbeSite, String>,
    enabled: bool,
    link: Option<UprobeLink>,
    /// When `link` was attached.
    attached_at: Option<Instant>,
    governor: Governor,
    error: Option<String>,
    /// Per process: its hit counter and CPU time when the current period started.
    bases: HashMap<ProcKey, HitReading>,
    /// Per process: its finished periods.
    samples: HashMap<ProcKey, SampleLog>,
}

#[derive(Debug)]
struct BinaryProbes {
    handle: Arc<File>,
    hooks: Vec<HookSlot>,
    users: BTreeSet<ProcKey>,
    idle_since: Option<Instant>,
}

/// A process's cumulative hits of one hook, and its CPU time, read together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HitReading {
    /// Cumulative hits.
    pub hits: u64,
    /// Cumulative on-CPU time, nanoseconds.
    pub cpu_ns: u64,
    /// Goroutine switches the runtime has counted, read from its memory (runtime.mcall's hook
    /// only, at the ends of its periods: `per_switch.rs`).
    pub switches: Option<u64>,
}

impl HitReading {
    /// The reading of `hook` in counters `s`.
    pub fn of(s: &ProcStats, hook: RuntimeHook) -> HitReading {
        let hits = match hook {
            RuntimeHook::Futex => s.futex_calls,
            RuntimeHook::Usleep => s.usleep_calls,
            RuntimeHook::Mcall => s.mcall_calls,
            RuntimeHook::Cgocall => s.cgocall_calls,
        };
        HitReading {
            hits,
            cpu_ns: s.oncpu_ns,
            switches: None,
        }
    }
}

/// What the governors read of the traced processes at one tick.
pub struct Targets<'a> {
    /// Each process's counters.
    pub stats: &'a HashMap<ProcKey, ProcStats>,
    /// The CPU use of each binary's processes, cores.
    pub cores: &'a dyn Fn(FileKey) -> f64,
    /// A process's goroutine switches, read from its memory now (`None`: unreadable).
    pub switches: &'a dyn Fn(ProcKey) -> Option<u64>,
}

impl std::fmt::Debug for Targets<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Targets")
            .field("stats", self.stats)
            .finish_non_exhaustive()
    }
}

/// Every binary's uprobe attachments.
#[derive(Debug, Default)]
pub struct UprobeSet {
    binaries: HashMap<FileKey, BinaryProbes>,
}

/// Wait after a failed attach before the governor tries again.
const ATTACH_RETRY: Duration = Duration::from_secs(30);

/// The cost while attached, as a fraction of the program's CPU time, above which a hook's
/// traps are taken to change what the program does ([`UprobeSet::slowed`]).
const SLOWING: f64 = 0.05;

impl UprobeSet {
    /// Registers `user` as running binary `file` (open as `handle`). The governor attaches the
    /// enabled hooks at its next tick, or within the shortest detached time when they are
    /// duty-cycled.
    pub fn acquire(
        &mut self,
        user: ProcKey,
        file: FileKey,
        handle: &Arc<File>,
        facts: &GoFacts,
        cfg: &ProbesConfig,
    ) {
        let now = Instant::now();
        let entry = self.binaries.entry(file).or_insert_with(|| BinaryProbes {
            handle: Arc::clone(handle),
            hooks: facts
                .sites
                .iter()
                .map(|(hook, site)| HookSlot {
                    hook: *hook,
                    site: site.clone(),
                    enabled: enabled(cfg, *hook),
                    link: None,
                    attached_at: None,
                    governor: Governor::new(now),
                    error: None,
                    bases: HashMap::new(),
                    samples: HashMap::new(),
                })
                .collect(),
            users: BTreeSet::new(),
            idle_since: None,
        });
        if entry.users.insert(user) {
            // A process that joins during a period gets no sample from it; a hook detached by
            // its duty cycle could leave it without a rate for a minute. Measure again soon.
            for h in &mut entry.hooks {
                h.governor.measure_soon(now);
            }
        }
        entry.idle_since = None;
    }

    /// `user` no longer runs `file`; its probes linger until [`UprobeSet::sweep`].
    pub fn release(&mut self, user: ProcKey, file: FileKey, now: Instant) {
        if let Some(b) = self.binaries.get_mut(&file) {
            b.users.remove(&user);
            for h in &mut b.hooks {
                h.bases.remove(&user);
                h.samples.remove(&user);
            }
            if b.users.is_empty() {
                b.idle_since = Some(now);
            }
        }
    }

    /// Detaches binaries idle for longer than `linger`.
    pub fn sweep(&mut self, kernel: &mut KernelProbes, now: Instant, linger: Duration) {
        let expired: Vec<FileKey> = self
            .binaries
            .iter()
            .filter(|(_, b)| {
                b.idle_since
                    .is_some_and(|t| now.duration_since(t) >= linger)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(mut b) = self.binaries.remove(&id) {
                for h in &mut b.hooks {
                    detach(kernel, h);
                }
            }
        }
    }

    /// Runs every hook's governor: attaches, detaches, records rates. Returns when the earliest
    /// governor wants its next tick (`None`: no hook to govern).
    pub fn govern(
        &mut self,
        kernel: &mut KernelProbes,
        now: Instant,
        budget: &BudgetConfig,
        cost: &HitCost,
        targets: &Targets<'_>,
    ) -> Option<Instant> {
        let Targets {
            stats,
            cores,
            switches,
        } = targets;
        let mut next: Option<Instant> = None;
        for (file, b) in &mut self.binaries {
            if b.users.is_empty() {
                // Lingering: nothing to measure; keep it detached, and have the governor attach
                // it again when a process of the binary comes back.
                for h in &mut b.hooks {
                    detach(kernel, h);
                    h.governor.suspend(now);
                }
                continue;
            }
            let target_cores = cores(*file);
            let hot_budget = hot_share(&b.hooks, budget);
            for h in &mut b.hooks {
                let Ok(site) = h.site.clone() else {
                    continue;
                };
                if !h.enabled {
                    continue;
                }
                let mut per_user: Vec<(ProcKey, HitReading)> = b
                    .users
                    .iter()
                    .map(|u| {
                        let s = stats.get(u).copied().unwrap_or_default();
                        (*u, HitReading::of(&s, h.hook))
                    })
                    .collect();
                let total: u64 = per_user.iter().map(|(_, n)| n.hits).sum();
                let hit_cost = match site.handling {
                    UprobeHandling::Optimizable | UprobeHandling::Emulated => cost.emulated,
                    _ => cost.single_stepped,
                };
                let was_attached = h.governor.attached();
                let before = h.governor.last_period();
                let calm = h.governor.last_period().is_some_and(|p| p.duty >= 1.0);
                let own = if calm { budget } else { &hot_budget };
                // A quiet period is still judged against the last poll's CPU use: its few hits
                // (a sleeping program's timers) would look costly on the idle floor.
                let cores_now = period_cores(&h.bases, &per_user, h.governor.period_start(), now)
                    .map_or(target_cores, |c| c.max(target_cores));
                let action = h.governor.tick(own, now, total, cores_now, hit_cost);
                let finished = h.governor.last_period() != before;
                // The switches are read only where a period of runtime.mcall's hook ends (and
                // the next may begin): a read of the process's memory each.
                let counts_switches = h.hook == RuntimeHook::Mcall;
                if counts_switches && finished {
                    // Its calls and switches read back to back, as at the attach: a period may
                    // be a millisecond, and the stats were read before every other hook ran.
                    let running = kernel.running();
                    for (u, r) in &mut per_user {
                        if let Some(s) = kernel.read_with(u.pid, &running) {
                            *r = HitReading::of(&s, h.hook);
                        }
                        r.switches = switches(*u);
                    }
                }
                if let Some(p) = h.governor.last_period().filter(|_| finished) {
                    let samples = period_samples(&h.bases, &per_user, &p, hit_cost);
                    tracing::debug!(
                        function = h.hook.function(),
                        attached_ms = p.attached.as_secs_f64() * 1e3,
                        hits_per_second = p.hits_per_second,
                        calls = samples.iter().map(|(_, s)| s.calls).sum::<u64>(),
                        cpu_ms = samples.iter().map(|(_, s)| s.cpu_ns).sum::<u64>() as f64 / 1e6,
                        switches = ?samples.iter().map(|(_, s)| s.switches).collect::<Vec<_>>(),
                        target_cores,
                        overhead = p.overhead_attached,
                        duty = p.duty,
                        "uprobe period"
                    );
                    for (user, sample) in samples {
                        h.samples.entry(user).or_default().push(sample);
                    }
                }
                if finished || (action == Action::Attach && !was_attached) {
                    h.bases = per_user.iter().copied().collect();
                }
                match action {
                    Action::Attach => match attach(kernel, h.hook, &b.handle, site.file_offset) {
                        Ok(link) => {
                            h.link = Some(link);
                            let done = Instant::now();
                            h.governor.attached_at(done);
                            // Registering takes milliseconds on a busy binary, as long as a
                            // short period: the period's CPU time starts where its clock does.
                            let running = kernel.running();
                            h.bases = b
                                .users
                                .iter()
                                .filter_map(|u| {
                                    let s = kernel.read_with(u.pid, &running)?;
                                    let mut r = HitReading::of(&s, h.hook);
                                    r.switches = counts_switches.then(|| switches(*u)).flatten();
                                    Some((*u, r))
                                })
                                .collect();
                            h.attached_at = Some(done);
                            h.error = None;
                        }
                        Err(e) => {
                            tracing::warn!(function = h.hook.function(), error = %e, "uprobe not attached");
                            h.error = Some(e);
                            h.governor.attach_failed(now, ATTACH_RETRY);
                        }
                    },
                    Action::Detach => detach(kernel, h),
                    Action::Keep => {}
                }
                let due = h.governor.next_check(now);
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        next
    }

    /// The state of every hook of `file`, with `user`'s measured rates.
    pub fn status(&self, file: FileKey, user: ProcKey, now: Instant) -> Vec<HookStatus> {
        let Some(b) = self.binaries.get(&file) else {
            return Vec::new();
        };
        b.hooks
            .iter()
            .map(|h| HookStatus {
                function: h.hook.function(),
                state: match (&h.site, h.enabled, &h.error) {
                    (_, false, _) => HookState::Disabled,
                    (Err(reason), _, _) | (_, _, Some(reason)) => HookState::Failed {
                        reason: reason.clone(),
                    },
                    (Ok(site), true, None) => {
                        let last = h.governor.last_period();
                        let samples = h.samples.get(&user).cloned().unwrap_or_default();
                        HookState::Governed {
                            attached: h.link.is_some(),
                            attached_since: h.attached_at.filter(|_| h.link.is_some()),
                            vaddr: site.vaddr,
                            file_offset: site.file_offset,
                            duty: last.map(|p| p.duty),
                            calls_per_second: samples
                                .last()
                                .filter(|s| s.seconds > 0.0)
                                .map(|s| s.calls as f64 / s.seconds),
                            samples,
                            overhead_while_attached: last.map(|p| p.overhead_attached),
                            measured_seconds_ago: last
                                .map(|p| now.saturating_duration_since(p.ended).as_secs_f64()),
                        }
                    }
                },
            })
            .collect()
    }

    /// The processes whose binary has a duty-cycled hook attached now whose traps slow them:
    /// one that cost them more than [`SLOWING`] of their CPU time while attached last (a
    /// storm's switches threefold under runtime.mcall), or has not been measured yet. What
    /// they do meanwhile is not what they do the rest of the time. A hook cheaper than that
    /// changes little: counted too, the GC-heavy workload's three (runtime.futex 1.3% of its
    /// CPU while attached, runtime.mcall 0.3%, runtime.usleep 0.1%) overlapped every syscall
    /// period for 10 s at times, and its syscall rates went missing for want of a period.
    pub fn slowed(&self) -> impl Iterator<Item = ProcKey> + '_ {
        self.binaries
            .values()
            .filter(|b| {
                b.hooks.iter().any(|h| {
                    h.link.is_some()
                        && h.governor
                            .last_period()
                            .is_none_or(|p| p.duty < 1.0 && p.overhead_attached > SLOWING)
                })
            })
            .flat_map(|b| b.users.iter().copied())
    }

    /// Total attached seconds per hook over all binaries (the daemon's own cost, in time).
    pub fn attached_seconds(&self, now: Instant) -> HashMap<RuntimeHook, f64> {
        let mut out = HashMap::new();
        for b in self.binaries.values() {
            for h in &b.hooks {
                *out.entry(h.hook).or_insert(0.0) += h.governor.attached_total(now).as_secs_f64();
            }
        }
        out
    }

    /// Detaches everything (shutdown).
    pub fn detach_all(&mut self, kernel: &mut KernelProbes) {
        for (_, mut b) in self.binaries.drain() {
            for h in &mut b.hooks {
                detach(kernel, h);
            }
        }
    }

    /// Number of binaries with probes.
    pub fn binaries(&self) -> usize {
        self.binaries.len()
    }

    /// Number of uprobes attached right now.
    pub fn links(&self) -> usize {
        self.binaries
            .values()
            .flat_map(|b| &b.hooks)
            .filter(|h| h.link.is_some())
            .count()
    }
}

fn attach(
    kernel: &mut KernelProbes,
    hook: RuntimeHook,
    handle: &File,
    file_offset: u64,
) -> Result<UprobeLink, String> {
    kernel
        .attach_uprobe(
            hook.program(),
            &fd_path(handle),
            file_offset,
            Scope::AllProcesses,
        )
        .map_err(|e| format!("attach at offset {file_offset:#x}: {}", error_chain(&e)))
}

/// `e` and its sources, joined: aya's top-level messages omit the errno.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn detach(kernel: &mut KernelProbes, h: &mut HookSlot) {
    let Some(link) = h.link.take() else {
        return;
    };
    h.attached_at = None;
    if let Err(e) = kernel.detach_uprobe(h.hook.program(), link) {
        let e = error_chain(&e);
        tracing::warn!(function = h.hook.function(), error = %e, "uprobe detach failed");
    }
}

/// The processes' CPU use over the running period, cores (`None` before it has any length or
/// a base). The last poll's does for a steady program, but a storm that began in a period was
/// costed against the quiet before it: on the floor for an idle program, runtime.mcall's traps
/// in a storm read 8.4 times the storm's CPU time, and that peak set the hook's duty cycle.
fn period_cores(
    bases: &HashMap<ProcKey, HitReading>,
    now_readings: &[(ProcKey, HitReading)],
    since: Option<Instant>,
    now: Instant,
) -> Option<f64> {
    let secs = now.saturating_duration_since(since?).as_secs_f64();
    let cpu_ns: u64 = now_readings
        .iter()
        .filter_map(|(u, r)| Some(r.cpu_ns.saturating_sub(bases.get(u)?.cpu_ns)))
        .sum();
    (secs > 0.0 && !bases.is_empty()).then(|| cpu_ns as f64 / 1e9 / secs)
}

/// The budget of each of a binary's hooks that is duty-cycled: the binary's (`budget` is one
/// hook's even share of it) less what the hooks left attached spend, shared among the others,
/// never less than the even share. runtime.usleep and runtime.cgocall mostly cost a hundredth
/// of their share; runtime.mcall in a storm, at its share, met a bursty program's storms once
/// in half a minute.
fn hot_share(hooks: &[HookSlot], budget: &BudgetConfig) -> BudgetConfig {
    let governed: Vec<&HookSlot> = hooks
        .iter()
        .filter(|h| h.enabled && h.site.is_ok())
        .collect();
    let (calm, spent) = governed
        .iter()
        .filter_map(|h| h.governor.last_period().filter(|p| p.duty >= 1.0))
        .fold((0usize, 0.0), |(n, s), p| (n + 1, s + p.overhead_attached));
    let hot = governed.len().saturating_sub(calm);
    let pool = budget.max_overhead * governed.len() as f64;
    BudgetConfig {
        max_overhead: ((pool - spent) / hot.max(1) as f64).max(budget.max_overhead),
        ..budget.clone()
    }
}

/// Each process's sample of the finished `period`, from its readings at the period's start
/// (`bases`) and at its end, each hit costing `hit_cost`. A process tracked during the period
/// has no base and gets no sample: its hits cover only part of it, so it waits for a whole one.
fn period_samples(
    bases: &HashMap<ProcKey, HitReading>,
    now_readings: &[(ProcKey, HitReading)],
    period: &Period,
    hit_cost: Duration,
) -> Vec<(ProcKey, Sample)> {
    if period.attached.is_zero() {
        return Vec::new();
    }
    now_readings
        .iter()
        .filter_map(|(u, r)| {
            let base = bases.get(u)?;
            let calls = r.hits.saturating_sub(base.hits);
            let cpu = r.cpu_ns.saturating_sub(base.cpu_ns);
            let switches = r
                .switches
                .zip(base.switches)
                .and_then(|(n, b)| n.checked_sub(b));
            Some((
                *u,
                Sample::of(period, calls, cpu, hits_cost(calls, hit_cost)).with_switches(switches),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pid: u32) -> ProcKey {
        ProcKey {
            pid,
            start_ticks: 1,
        }
    }

    fn reading(hits: u64, cpu_ns: u64) -> HitReading {
        HitReading {
            hits,
            cpu_ns,
            switches: None,
        }
    }

    fn slot(hook: RuntimeHook, governor: Governor) -> HookSlot {
        HookSlot {
            hook,
            site: Ok(ProbeSite {
                hook,
                entry: 0x1000,
                vaddr: 0x1004,
                file_offset: 0x4,
                handling: UprobeHandling::Emulated,
                repeats_on_stack_growth: false,
                rets: 1,
            }),
            enabled: true,
            link: None,
            attached_at: None,
            governor,
            error: None,
            bases: HashMap::new(),
            samples: HashMap::new(),
        }
    }

    #[test]
    fn hooks_left_attached_leave_their_unspent_budget_to_the_duty_cycled_ones() {
        let share = BudgetConfig {
            max_overhead: 0.0002,
            ..BudgetConfig::default()
        };
        let t0 = Instant::now();
        let hit = Duration::from_nanos(1_000);
        // A governor whose period saw `per_second` hits on one core, warmed up if cheap.
        let governed = |per_second: u64| {
            let mut g = Governor::seeded(t0, 5);
            let (mut t, mut hits) = (t0, 0);
            for _ in 0..4 {
                g.tick(&share, t, hits, 1.0, hit);
                t += Duration::from_millis(100);
                hits += per_second / 10;
                g.tick(&share, t, hits, 1.0, hit);
                t = g.next_check(t).max(t);
            }
            g
        };
        let calm = governed(20);
        assert_eq!(calm.last_period().map(|p| p.duty), Some(1.0));
        let hooks = [
            slot(RuntimeHook::Futex, governed(100_000)),
            slot(RuntimeHook::Usleep, calm.clone()),
            slot(RuntimeHook::Mcall, governed(1_000_000)),
            slot(RuntimeHook::Cgocall, calm),
        ];
        // Four shares less the two attached hooks' 20 calls/s x 1 µs each, over the two others.
        let hot = hot_share(&hooks, &share);
        let want = (4.0 * 0.0002 - 2.0 * 20e-6) / 2.0;
        assert!((hot.max_overhead - want).abs() < 1e-12, "{hot:?}");
        // None left attached: the even share.
        let all_hot = [
            slot(RuntimeHook::Futex, governed(100_000)),
            slot(RuntimeHook::Mcall, governed(1_000_000)),
        ];
        assert_eq!(hot_share(&all_hot, &share), share);
    }

    #[test]
    fn a_periods_hits_are_costed_against_the_cpu_time_of_the_period() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_millis(10);
        let bases = HashMap::from([(key(1), reading(0, 1_000)), (key(2), reading(0, 0))]);
        // 13 ms and 6 ms of CPU in 10 ms: 1.9 cores; a process without a base is left out.
        let readings = [
            (key(1), reading(5, 13_001_000)),
            (key(2), reading(5, 6_000_000)),
            (key(3), reading(5, 50_000_000)),
        ];
        let cores = period_cores(&bases, &readings, Some(t0), now).unwrap_or(f64::NAN);
        assert!((cores - 1.9).abs() < 1e-9, "{cores}");
        assert_eq!(period_cores(&bases, &readings, None, now), None);
        assert_eq!(period_cores(&bases, &readings, Some(now), now), None);
        assert_eq!(
            period_cores(&HashMap::new(), &readings, Some(t0), now),
            None
        );
    }

    #[test]
    fn only_processes_present_for_the_whole_period_get_a_sample() {
        let bases = HashMap::from([(key(1), reading(100, 5)), (key(2), reading(0, 0))]);
        let now = [
            (key(1), reading(150, 20_005)),
            (key(2), reading(0, 0)),
            (key(3), reading(7, 9)),
        ];
        let t = Instant::now();
        let mut period = Period {
            ended: t,
            attached: Duration::from_millis(100),
            hits_per_second: 0.0,
            overhead_attached: 0.0,
            duty: 1.0,
            cut_short: false,
            after_off: true,
        };
        // Each hit cost 100 ns of the period's CPU time.
        let cost = Duration::from_nanos(100);
        let samples = period_samples(&bases, &now, &period, cost);
        let mut got: Vec<(u32, u64, u64, u64)> = samples
            .iter()
            .map(|(k, s)| (k.pid, s.calls, s.cpu_ns, s.probe_ns))
            .collect();
        got.sort();
        assert_eq!(got, vec![(1, 50, 20_000, 5_000), (2, 0, 0, 0)]);
        assert!(
            samples
                .iter()
                .all(|(_, s)| s.ended == t && s.seconds == 0.1 && s.after_off)
        );
        period.attached = Duration::ZERO;
        assert!(period_samples(&bases, &now, &period, cost).is_empty());
    }
}
