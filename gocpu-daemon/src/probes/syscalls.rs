//! The syscall tracepoints (futex, nanosleep, sched_yield) under the overhead budget.
//!
//! A scheduler storm makes hundreds of thousands of futex and sched_yield calls a second, and an
//! attached syscall tracepoint puts every one of them (of every process) through the syscall
//! slow path plus a BPF program: `cargo xtask bench` measured 5-10% of a ping-pong storm's
//! throughput. So these three are governed like the uprobes, over all tracked processes:
//! attached for a measurement period, then duty-cycled to the budget.
//!
//! They are governed as one group (one [`Governor`], attached and detached together), because
//! the slow path is not per tracepoint: registering any `syscalls:sys_enter_*` event marks every
//! thread of the node for syscall tracing, and every syscall then takes the slow path, whichever
//! one the event is for. Governed one by one, the nanosleep tracepoint (a few hundred calls a
//! second, within budget on its own) stayed attached and put the storm's futex calls through the
//! slow path for good: 2-3% of a ping-pong storm's throughput when the host placed the VM's
//! vCPUs on different cores. The group's cost is all the calls it counts (futex, nanosleep,
//! sched_yield) at `syscall_hit_ns` each; other syscalls (reads, writes, epoll) pay the slow
//! path too and are not counted, which Go's scheduler pathologies, made of these three, make
//! the small part.
//!
//! While the group is duty-cycled, each process's counts are estimated: the calls counted while
//! attached, plus, for the time detached, what the model fitted to its attached periods (calls
//! per wall second and per CPU second, `estimate.rs`) says of that time and its CPU time; the
//! estimate is exact whenever the group stayed attached.
use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use aya::programs::trace_point::TracePointLinkId;
use gocpu_common::{ProcStats, programs};

use crate::{
    discovery::ProcKey,
    probes::{
        budget::{Action, BudgetConfig, Governor, Period},
        estimate::{Sample, SampleLog, hits_cost},
        loader::KernelProbes,
        uprobes::error_chain,
    },
};

/// One governed syscall tracepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyscallTracepoint {
    /// `syscalls:sys_enter_futex`.
    Futex,
    /// `syscalls:sys_enter_nanosleep`.
    Nanosleep,
    /// `syscalls:sys_enter_sched_yield`.
    SchedYield,
}

impl SyscallTracepoint {
    /// All of them, in slot order.
    pub const ALL: [SyscallTracepoint; 3] = [Self::Futex, Self::Nanosleep, Self::SchedYield];

    /// The BPF program.
    pub fn program(self) -> &'static str {
        match self {
            Self::Futex => programs::SYS_FUTEX,
            Self::Nanosleep => programs::SYS_NANOSLEEP,
            Self::SchedYield => programs::SYS_SCHED_YIELD,
        }
    }

    /// The tracepoint's event name (category `syscalls`).
    pub fn event(self) -> &'static str {
        match self {
            Self::Futex => "sys_enter_futex",
            Self::Nanosleep => "sys_enter_nanosleep",
            Self::SchedYield => "sys_enter_sched_yield",
        }
    }

    /// The calls it counts in `s`.
    fn calls(self, s: &ProcStats) -> u64 {
        match self {
            Self::Futex => s.futex_syscalls(),
            Self::Nanosleep => s.nanosleep_syscalls,
            Self::SchedYield => s.sched_yield_syscalls,
        }
    }
}

/// Each counter the group's tracepoints feed.
type Counter = fn(&mut ProcStats) -> &mut u64;
const COUNTERS: [Counter; 5] = [
    |s| &mut s.futex_wait_syscalls,
    |s| &mut s.futex_wake_syscalls,
    |s| &mut s.futex_other_syscalls,
    |s| &mut s.nanosleep_syscalls,
    |s| &mut s.sched_yield_syscalls,
];

/// The calls of `s` the group counts: all three tracepoints'.
fn group_calls(s: &ProcStats) -> u64 {
    SyscallTracepoint::ALL.iter().map(|tp| tp.calls(s)).sum()
}

/// The three governed syscall tracepoints, governed as one group.
#[derive(Debug)]
pub struct SyscallProbes {
    governor: Governor,
    /// Each tracepoint's link while the group is attached, in [`SyscallTracepoint::ALL`] order.
    links: [Option<TracePointLinkId>; 3],
    /// Calls of processes no longer tracked, so that the governor's total stays monotonic.
    base: u64,
    /// Per process: its counters when the current attached period started.
    bases: HashMap<ProcKey, ProcStats>,
    /// Processes a duty-cycled uprobe slowed during the current period ([`SyscallProbes::slowed`]).
    slowed: HashSet<ProcKey>,
}

/// One finished attached period of the group, seen from one process: a sample per
/// [`COUNTERS`] entry.
pub type PeriodSamples = (ProcKey, [Sample; 5]);

/// Retry delay after a failed attach.
const ATTACH_RETRY: Duration = Duration::from_secs(10);

impl SyscallProbes {
    /// All detached; the first govern attaches them.
    pub fn new(now: Instant) -> Self {
        Self {
            governor: Governor::new(now).for_tracepoints(),
            links: [None, None, None],
            base: 0,
            bases: HashMap::new(),
            slowed: HashSet::new(),
        }
    }

    /// Runs the group's governor: `stats` are the tracked processes' counters, `target_cores`
    /// their CPU use, `hit_cost` the cost of one traced call. Returns when it next wants a tick,
    /// and each process's samples of the period that ended, if one did.
    pub fn govern(
        &mut self,
        kernel: &mut KernelProbes,
        now: Instant,
        budget: &BudgetConfig,
        stats: &HashMap<ProcKey, ProcStats>,
        target_cores: f64,
        hit_cost: Duration,
    ) -> (Option<Instant>, Vec<PeriodSamples>) {
        let total: u64 = stats.values().map(group_calls).sum();
        // Processes come and go: count from a base so that the governor sees a monotonic total
        // of calls made while it watched.
        let hits = self.base.wrapping_add(total);
        let was_attached = self.governor.attached();
        let before = self.governor.last_period();
        let action = self
            .governor
            .tick(budget, now, hits, target_cores, hit_cost);
        let finished = self.governor.last_period().filter(|p| Some(*p) != before);
        // A period that ends in a detach ends with the gate's closing: counts read after it
        // hold every call the period counted, and nothing counts until the next one opens.
        let fresh;
        let end_stats = if action == Action::Detach {
            close_gate(kernel);
            fresh = read_all(kernel, stats);
            &fresh
        } else {
            stats
        };
        let samples: Vec<PeriodSamples> = finished
            .map(|p| period_samples(&self.bases, end_stats, &p, hit_cost))
            .unwrap_or_default();
        for (k, [wait, wake, other, nanosleep, yields]) in &samples {
            tracing::debug!(
                pid = k.pid,
                seconds = wait.seconds,
                cpu_ms = wait.cpu_ns as f64 / 1e6,
                futex = wait.calls + wake.calls + other.calls,
                nanosleep = nanosleep.calls,
                sched_yield = yields.calls,
                after_off = wait.after_off,
                slowed = self.slowed.contains(k),
                "syscall period"
            );
        }
        let samples = samples
            .into_iter()
            .filter(|(k, _)| !self.slowed.contains(k))
            .collect();
        if finished.is_some() || (action == Action::Attach && !was_attached) {
            self.bases = end_stats.clone();
            self.slowed.clear();
        }
        match action {
            Action::Attach => match self.attach_all(kernel) {
                Ok(()) => {
                    // The gate is closed: the counts stand still while the bases are read,
                    // and the period starts when it opens (attaching three tracepoints takes
                    // 0.6 ms, more than half of the shortest period).
                    self.bases = read_all(kernel, stats);
                    match kernel.set_syscall_gate(true) {
                        Ok(()) => self.governor.attached_at(Instant::now()),
                        Err(e) => {
                            tracing::warn!(error = %e, "syscall tracepoints' gate not opened");
                            self.detach_all(kernel);
                            self.governor.attach_failed(now, ATTACH_RETRY);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "syscall tracepoints not attached");
                    self.detach_all(kernel);
                    self.governor.attach_failed(now, ATTACH_RETRY);
                }
            },
            Action::Detach => self.detach_all(kernel),
            Action::Keep => {}
        }
        (Some(self.governor.next_check(now)), samples)
    }

    /// Attaches every tracepoint of the group; on an error, those attached stay for the caller
    /// to detach.
    fn attach_all(&mut self, kernel: &mut KernelProbes) -> Result<(), String> {
        for (link, tp) in self.links.iter_mut().zip(SyscallTracepoint::ALL) {
            if link.is_none() {
                *link = Some(attach(kernel, tp).map_err(|e| format!("{}: {e}", tp.event()))?);
            }
        }
        Ok(())
    }

    fn detach_all(&mut self, kernel: &mut KernelProbes) {
        for (link, tp) in self.links.iter_mut().zip(SyscallTracepoint::ALL) {
            if let Some(link) = link.take() {
                detach(kernel, tp, link);
            }
        }
    }

    /// These processes are slowed by a uprobe's traps now: a period of the group that holds
    /// such a time is not a sample of them. The storm's futex calls follow the uprobes: 1 500 a
    /// second unwatched, 6 400 while runtime.mcall's traps slowed its switches (threads ran
    /// out of work and parked); and a model fitted to such periods is extrapolated to the time
    /// the uprobes are detached, nearly all of it. Their calls still count; the model is fitted
    /// to the other periods.
    pub fn slowed(&mut self, keys: impl Iterator<Item = ProcKey>) {
        if self.governor.attached() {
            self.slowed.extend(keys);
        }
    }

    /// No process is tracked: detach (a syscall tracepoint costs every process's syscalls) until
    /// there is one to measure again.
    pub fn suspend(&mut self, kernel: &mut KernelProbes, now: Instant) {
        if self.governor.attached() {
            close_gate(kernel);
        }
        self.detach_all(kernel);
        self.governor.suspend(now);
    }

    /// A process is now tracked: its calls have not been measured yet.
    pub fn measure_soon(&mut self, now: Instant) {
        self.governor.measure_soon(now);
    }

    /// A tracked process left: its calls leave the totals, so raise the bases by them.
    pub fn forget(&mut self, key: ProcKey, last: &ProcStats) {
        self.base = self.base.wrapping_add(group_calls(last));
        self.bases.remove(&key);
    }

    /// Cumulative attached time of the group (of each of its tracepoints).
    pub fn exposure(&self, now: Instant) -> Duration {
        self.governor.attached_total(now)
    }

    /// Whether each tracepoint is attached now, in [`SyscallTracepoint::ALL`] order.
    pub fn attached(&self) -> [bool; 3] {
        self.links.each_ref().map(Option::is_some)
    }
}

fn attach(kernel: &mut KernelProbes, tp: SyscallTracepoint) -> Result<TracePointLinkId, String> {
    kernel
        .tracepoint(tp.program())
        .map_err(|e| e.to_string())?
        .attach("syscalls", tp.event())
        .map_err(|e| error_chain(&e))
}

/// Detaches `link`, closed on a thread of its own ([`crate::probes::drop_elsewhere`]).
fn detach(kernel: &mut KernelProbes, tp: SyscallTracepoint, link: TracePointLinkId) {
    let res = kernel
        .tracepoint(tp.program())
        .map_err(|e| e.to_string())
        .and_then(|p| p.take_link(link).map_err(|e| error_chain(&e)));
    match res {
        Ok(link) => crate::probes::drop_elsewhere(link),
        Err(e) => tracing::warn!(tracepoint = tp.event(), error = %e, "detach failed"),
    }
}

/// Closes the measurement period's gate. Should that fail, the programs go on counting until
/// their links are closed, and the period's samples then hold more calls than its time: warned.
fn close_gate(kernel: &mut KernelProbes) {
    if let Err(e) = kernel.set_syscall_gate(false) {
        tracing::warn!(error = %e, "syscall tracepoints' gate not closed");
    }
}

/// The counters of each of `stats`' processes, read again now.
fn read_all(
    kernel: &KernelProbes,
    stats: &HashMap<ProcKey, ProcStats>,
) -> HashMap<ProcKey, ProcStats> {
    let running = kernel.running();
    stats
        .keys()
        .filter_map(|k| Some((*k, kernel.read_with(k.pid, &running)?)))
        .collect()
}

/// Each process's samples of the finished `period`, from its counters at the period's start
/// (`bases`) and at its end, each traced call costing `hit_cost`; a process tracked during the
/// period has no base and no sample.
fn period_samples(
    bases: &HashMap<ProcKey, ProcStats>,
    now_stats: &HashMap<ProcKey, ProcStats>,
    period: &Period,
    hit_cost: Duration,
) -> Vec<PeriodSamples> {
    if period.attached.is_zero() {
        return Vec::new();
    }
    now_stats
        .iter()
        .filter_map(|(k, s)| {
            let (mut base, mut cur) = (*bases.get(k)?, *s);
            let cpu_ns = cur.oncpu_ns.saturating_sub(base.oncpu_ns);
            // Every traced call of the group cost its hit, whichever counter it went to.
            let traced = group_calls(&cur).saturating_sub(group_calls(&base));
            let probe_ns = hits_cost(traced, hit_cost);
            let samples = COUNTERS.map(|field| {
                let calls = field(&mut cur).saturating_sub(*field(&mut base));
                Sample::of(period, calls, cpu_ns, probe_ns)
            });
            Some((*k, samples))
        })
        .collect()
}

/// How far back a process's rates pool its periods (more when fewer than
/// [`crate::probes::estimate::MIN_SAMPLES`] are that recent).
const POOL_WINDOW: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
struct Estimate {
    at: Instant,
    exposure: Duration,
    raw: ProcStats,
    /// Estimated cumulative counts (the [`COUNTERS`]; the rest is raw).
    estimated: ProcStats,
    /// See [`Estimated::syscalls_known_since`].
    known_since: Option<(Instant, ProcStats)>,
}

/// A process's counters with the syscall counters estimated.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimated {
    /// The cumulative counters; the syscall ones estimated for the time the group was detached.
    pub stats: ProcStats,
    /// When the syscall estimate became complete, and `stats` then: before it lies time in which
    /// the group was detached and no rate of the process was known yet, whose calls are missing
    /// from the counts (a rate over it would read low, or zero). `None`: complete throughout.
    pub syscalls_known_since: Option<(Instant, ProcStats)>,
}

impl Estimate {
    /// The first estimate: counts `raw` at `now`, when the group's cumulative attached time was
    /// `exposure`, taken as they are.
    fn baseline(
        now: Instant,
        exposure: Duration,
        raw: ProcStats,
        known_since: Option<(Instant, ProcStats)>,
    ) -> Estimate {
        Estimate {
            at: now,
            exposure,
            raw,
            estimated: raw,
            known_since,
        }
    }

    /// The first estimate of a process not started: nothing is known of the calls counted so
    /// far.
    fn unstarted(now: Instant, exposure: Duration, raw: ProcStats) -> Estimate {
        Estimate::baseline(now, exposure, raw, Some((now, raw)))
    }

    fn output(&self) -> Estimated {
        Estimated {
            stats: self.estimated,
            syscalls_known_since: self.known_since,
        }
    }
}

/// One process's estimate and the attached periods it is made from (kept apart: the estimate
/// moves on at every poll and request, the periods only when one ends).
#[derive(Debug)]
struct Tracked {
    estimate: Estimate,
    /// Per [`COUNTERS`] entry.
    samples: [SampleLog; 5],
}

impl Tracked {
    fn new(estimate: Estimate) -> Tracked {
        Tracked {
            estimate,
            samples: Default::default(),
        }
    }
}

/// Per-process estimates of the syscall counters while their tracepoints are duty-cycled.
#[derive(Debug, Default)]
pub struct SyscallEstimates {
    procs: HashMap<ProcKey, Tracked>,
}

impl SyscallEstimates {
    /// `key`'s kernel counters start from zero at `now`, when the group's cumulative attached
    /// time is `exposure`: the baseline of its first interval, so that calls counted before its
    /// first poll are scaled by the time they were counted in.
    pub fn start(&mut self, key: ProcKey, now: Instant, exposure: Duration) {
        self.procs.insert(
            key,
            Tracked::new(Estimate::baseline(
                now,
                exposure,
                ProcStats::default(),
                None,
            )),
        );
    }

    /// `raw` (the kernel's counts for `key` at `now`, with the group's cumulative attached
    /// time `exposure`) with its syscall counters replaced by estimates of every call made.
    pub fn estimate(
        &mut self,
        key: ProcKey,
        now: Instant,
        raw: ProcStats,
        exposure: Duration,
    ) -> Estimated {
        match self.procs.get_mut(&key) {
            Some(t) => {
                t.estimate = advance(&t.estimate, &t.samples, now, raw, exposure);
                t.estimate.output()
            }
            None => {
                let e = Estimate::unstarted(now, exposure, raw);
                self.procs.insert(key, Tracked::new(e.clone()));
                e.output()
            }
        }
    }

    /// As [`SyscallEstimates::estimate`], without moving the estimate on (an API request
    /// between two polls must not shift the polls' intervals).
    pub fn peek(
        &self,
        key: ProcKey,
        now: Instant,
        raw: ProcStats,
        exposure: Duration,
    ) -> Estimated {
        match self.procs.get(&key) {
            Some(t) => advance(&t.estimate, &t.samples, now, raw, exposure).output(),
            None => Estimate::unstarted(now, exposure, raw).output(),
        }
    }

    /// Adds `key`'s samples of a finished attached period.
    pub fn record(&mut self, key: ProcKey, samples: [Sample; 5]) {
        if let Some(t) = self.procs.get_mut(&key) {
            for (log, s) in t.samples.iter_mut().zip(samples) {
                log.push(s);
            }
        }
    }

    /// Forgets `key`.
    pub fn forget(&mut self, key: ProcKey) {
        self.procs.remove(&key);
    }
}

/// `e` moved on to `now`, where the kernel counts are `raw` and the group's cumulative attached
/// time `exposure`, the time not watched estimated from `samples`. Estimates never go backwards.
fn advance(
    e: &Estimate,
    samples: &[SampleLog; 5],
    now: Instant,
    raw: ProcStats,
    exposure: Duration,
) -> Estimate {
    let dt = now.saturating_duration_since(e.at).as_secs_f64();
    let mut next = Estimate {
        at: now,
        exposure,
        raw,
        estimated: raw,
        known_since: e.known_since,
    };
    let (mut prev_raw, mut raw_now, mut est) = (e.raw, raw, e.estimated);
    let exposed = exposure.saturating_sub(e.exposure).as_secs_f64();
    // The CPU time of the interval not watched: the interval's, less the finished periods'
    // in it (read at their ends), less the running period's share in time. Spread evenly, a
    // storm detached most of the time and a quiet watched long would share their CPU time.
    let cpu = raw.oncpu_ns.saturating_sub(e.raw.oncpu_ns) as f64 / 1e9;
    // Every counter's log holds the same periods: any one says when the group was attached.
    let (finished, finished_cpu) = samples[0].watched(e.at);
    let running = (exposed - finished).max(0.0);
    let running_cpu = if dt > 0.0 { cpu * running / dt } else { 0.0 };
    let unwatched_cpu = (cpu - finished_cpu - running_cpu).clamp(0.0, cpu);
    let since = now.checked_sub(POOL_WINDOW).unwrap_or(now);
    let mut unknown = false;
    for (k, field) in COUNTERS.iter().enumerate() {
        let counted = field(&mut raw_now).saturating_sub(*field(&mut prev_raw)) as f64;
        let add = if exposed + 1e-3 >= dt {
            // Watched throughout: the count itself.
            counted
        } else {
            // Partly watched or not at all: what was counted, plus the model's calls for the
            // time and CPU time not watched.
            let extra = samples[k]
                .pool(since, now)
                .map(|p| p.predict(dt - exposed, unwatched_cpu).0);
            unknown |= extra.is_none();
            counted + extra.unwrap_or(0.0)
        };
        *field(&mut next.estimated) = field(&mut est).saturating_add(add.round() as u64);
    }
    if unknown {
        next.known_since = Some((now, next.estimated));
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ProcKey {
        ProcKey {
            pid: 42,
            start_ticks: 7,
        }
    }

    fn stats(wait: u64, yields: u64) -> ProcStats {
        ProcStats {
            futex_wait_syscalls: wait,
            sched_yield_syscalls: yields,
            ..ProcStats::default()
        }
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn always_attached_counts_are_exact() {
        let mut est = SyscallEstimates::default();
        let t0 = Instant::now();
        est.estimate(key(), t0, stats(0, 0), Duration::ZERO);
        let t1 = t0 + secs(1.0);
        let s = est.estimate(key(), t1, stats(1000, 50), secs(1.0));
        assert_eq!(
            (s.stats.futex_wait_syscalls, s.stats.sched_yield_syscalls),
            (1000, 50)
        );
    }

    /// A finished period: `calls` futex waits and `cpu_ms` of CPU in `ms` attached.
    fn period(at: Instant, calls: u64, cpu_ms: u64, ms: u64) -> [Sample; 5] {
        let mut s = [Sample {
            ended: at,
            seconds: ms as f64 / 1000.0,
            calls: 0,
            cpu_ns: cpu_ms * 1_000_000,
            probe_ns: 0,
            after_off: true,
            switches: None,
        }; 5];
        s[0].calls = calls;
        s
    }

    fn with_cpu(wait: u64, cpu_ms: u64) -> ProcStats {
        ProcStats {
            oncpu_ns: cpu_ms * 1_000_000,
            ..stats(wait, 0)
        }
    }

    #[test]
    fn duty_cycled_counts_add_the_calls_per_cpu_second_times_the_cpu_not_watched() {
        let mut est = SyscallEstimates::default();
        let t0 = Instant::now();
        est.estimate(key(), t0, stats(0, 0), Duration::ZERO);
        // One 100 ms period saw 100 waits in 50 ms of CPU: 2000 per CPU second.
        est.record(key(), period(t0 + secs(0.5), 100, 50, 100));
        // Over the second: 0.5 CPU seconds, 100 ms of it watched (100 waits counted), the
        // rest 0.9 x 0.5 s x 2000 = 900.
        let s = est.estimate(key(), t0 + secs(1.0), with_cpu(100, 500), secs(0.1));
        assert_eq!(s.stats.futex_wait_syscalls, 1000);
        // Detached for the next 2 s, the process idle: no CPU, no calls estimated.
        let s = est.estimate(key(), t0 + secs(3.0), with_cpu(100, 500), secs(0.1));
        assert_eq!(s.stats.futex_wait_syscalls, 1000);
        // Busy again for a second at one core: 2000 more.
        let s = est.estimate(key(), t0 + secs(4.0), with_cpu(100, 1500), secs(0.1));
        assert_eq!(s.stats.futex_wait_syscalls, 3000);
        // A peek neither moves the estimate nor differs from what a poll would say.
        let raw = with_cpu(100, 2000);
        let peeked = est.peek(key(), t0 + secs(5.0), raw, secs(0.1));
        assert_eq!(peeked.stats.futex_wait_syscalls, 4000);
        assert_eq!(est.peek(key(), t0 + secs(5.0), raw, secs(0.1)), peeked);
        let s = est.estimate(key(), t0 + secs(5.0), raw, secs(0.1));
        assert_eq!(s, peeked);
        // Other counters pass through untouched.
        assert_eq!(s.stats.oncpu_ns, 2_000_000_000);
    }

    #[test]
    fn periods_in_the_quiet_do_not_zero_the_rate_of_a_bursty_process() {
        let mut est = SyscallEstimates::default();
        let t0 = Instant::now();
        est.estimate(key(), t0, stats(0, 0), Duration::ZERO);
        // Two 100 ms periods in a burst (1000 waits in 100 ms of CPU), six in the quiet,
        // seeing nothing: per wall second the pool would say 2000 in 0.8 s; per CPU second it
        // says 10 000, the bursts' ratio, and the periods left out agree with it.
        for i in 0..8 {
            let busy = i % 4 == 0;
            let (calls, cpu) = if busy { (1000, 100) } else { (0, 0) };
            est.record(
                key(),
                period(t0 + secs(0.1 * (i + 1) as f64), calls, cpu, 100),
            );
        }
        // Two seconds of 0.5 CPU seconds (its bursts), 0.8 s of it watched.
        let s = est.estimate(key(), t0 + secs(2.0), with_cpu(2000, 500), secs(0.8));
        assert_eq!(s.stats.futex_wait_syscalls, 2000 + 3000);
    }

    #[test]
    fn the_cpu_time_not_watched_is_the_intervals_less_the_periods() {
        let mut est = SyscallEstimates::default();
        let t0 = Instant::now();
        est.estimate(key(), t0, stats(0, 0), Duration::ZERO);
        // A first second of storm watched in eight 50 ms periods, 100 waits in 50 ms of CPU
        // each (2000 per CPU second), no CPU time outside them.
        for i in 0..8 {
            est.record(key(), period(t0 + secs(0.1 * (i + 1) as f64), 100, 50, 50));
        }
        let s = est.estimate(key(), t0 + secs(1.0), with_cpu(800, 400), secs(0.4));
        assert_eq!(s.stats.futex_wait_syscalls, 800);
        // The next second: its first half quiet and watched (nothing seen), its second half a
        // storm not watched, 0.5 CPU seconds: 1000 waits. Spread evenly over the second, the CPU
        // time would put half of it in the watched quiet and estimate 500.
        est.record(key(), period(t0 + secs(1.5), 0, 0, 500));
        let s = est.estimate(key(), t0 + secs(2.0), with_cpu(800, 900), secs(0.9));
        assert_eq!(s.stats.futex_wait_syscalls, 800 + 1000);
    }

    #[test]
    fn calls_counted_before_the_first_poll_are_scaled_from_the_start() {
        let mut est = SyscallEstimates::default();
        let t0 = Instant::now();
        est.start(key(), t0, secs(3.0));
        // Attached 10 ms of the first second: 100 waits in 5 ms of CPU; 0.5 CPU seconds in all.
        est.record(key(), period(t0 + secs(0.5), 100, 5, 10));
        let s = est.estimate(key(), t0 + secs(1.0), with_cpu(100, 500), secs(3.01));
        assert_eq!(s.stats.futex_wait_syscalls, 100 + 9900);
        assert_eq!(s.syscalls_known_since, None);
    }

    #[test]
    fn a_process_never_watched_estimates_zero_and_is_forgotten() {
        let mut est = SyscallEstimates::default();
        let t0 = Instant::now();
        est.estimate(key(), t0, stats(0, 0), Duration::ZERO);
        let s = est.estimate(key(), t0 + secs(1.0), stats(0, 0), Duration::ZERO);
        assert_eq!(s.stats.futex_wait_syscalls, 0);
        // And says that zero is not a rate: nothing is known up to now.
        assert_eq!(s.syscalls_known_since, Some((t0 + secs(1.0), s.stats)));
        let peeked = est.peek(key(), t0 + secs(1.5), stats(0, 0), Duration::ZERO);
        assert_eq!(peeked.syscalls_known_since, Some((t0 + secs(1.5), s.stats)));
        est.forget(key());
        assert!(est.procs.is_empty());
    }

    #[test]
    fn the_estimate_is_known_from_the_end_of_the_last_interval_without_a_rate() {
        let mut est = SyscallEstimates::default();
        let t0 = Instant::now();
        est.start(key(), t0, secs(5.0));
        // Two seconds detached before the process's first period: calls made then are not
        // seen, and no rate says how many.
        let s = est.estimate(key(), t0 + secs(1.0), with_cpu(0, 300), secs(5.0));
        assert_eq!(s.syscalls_known_since, Some((t0 + secs(1.0), s.stats)));
        let s = est.estimate(key(), t0 + secs(2.0), with_cpu(0, 600), secs(5.0));
        let known = Some((t0 + secs(2.0), s.stats));
        assert_eq!(s.syscalls_known_since, known);
        // Then a 100 ms period: 100 waits in 30 ms of CPU; known from t0 + 2 s on.
        est.record(key(), period(t0 + secs(2.5), 100, 30, 100));
        let s = est.estimate(key(), t0 + secs(3.0), with_cpu(100, 900), secs(5.1));
        assert_eq!(s.stats.futex_wait_syscalls, 100 + 900);
        assert_eq!(s.syscalls_known_since, known);
    }

    #[test]
    fn a_process_watched_from_its_start_is_known_throughout() {
        let mut est = SyscallEstimates::default();
        let t0 = Instant::now();
        est.start(key(), t0, secs(1.0));
        est.record(key(), period(t0 + secs(0.05), 10, 10, 50));
        let s = est.estimate(key(), t0 + secs(1.0), with_cpu(10, 200), secs(1.05));
        assert_eq!(s.stats.futex_wait_syscalls, 10 + 190);
        assert_eq!(s.syscalls_known_since, None);
    }
}
