//! The programs' own run-time accounting, for kernels that keep none for gocpu: BPF run-time
//! statistics need CAP_SYS_ADMIN (BPF_ENABLE_STATS) or the node's `kernel.bpf_stats_enabled`, and
//! the least-privileged DaemonSet has neither. With `SELF_TIMING` set, each program reads the clock
//! when it starts and when it ends and adds the difference and one run to its slot of `PROG_RUNS`.
use core::mem::size_of;

use crate::programs;

/// Run time and runs of one program on one CPU (a `PROG_RUNS` value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgRun {
    /// Estimated nanoseconds the runs took, as the kernel's statistics would count them: each
    /// run's span between its first and last clock read plus `read_cost_ns` as it stood then
    /// (what the span leaves out).
    pub run_ns: u64,
    /// Runs.
    pub runs: u64,
    /// Sum of the extra clock reads timed on this CPU, each clipped (see [`ProgRun::note_read`]).
    pub clock_ns: u64,
    /// Extra clock reads timed (one run in 64 times one, the first included).
    pub clock_reads: u64,
    /// The cheapest of them.
    pub clock_min_ns: u64,
    /// What each run adds for the clock read its span leaves out: the clipped mean so far.
    pub read_cost_ns: u64,
}
const _: () = assert!(size_of::<ProgRun>() == 48);

/// One run in this many (per CPU, the first included) times one more clock read.
const CLOCK_READ_EVERY: u64 = 64;

/// A timed read counts at most this many times the cheapest one.
const READ_CLIP: u64 = 4;

impl ProgRun {
    /// Records one run whose clock reads were `span_ns` apart. Each run is costed when it is
    /// recorded, never again: the clock reads timed later do not re-cost the runs before them.
    #[inline(always)]
    pub fn record(&mut self, span_ns: u64) {
        self.run_ns = self
            .run_ns
            .wrapping_add(span_ns)
            .wrapping_add(self.read_cost_ns);
        self.runs = self.runs.wrapping_add(1);
    }

    /// Whether the run just recorded should time one more clock read: one in
    /// `CLOCK_READ_EVERY`, starting with the first on each CPU.
    #[inline(always)]
    pub fn times_a_read(&self) -> bool {
        self.runs % CLOCK_READ_EVERY == 1
    }

    /// Notes a timed clock read of `read_ns`, clipped at `READ_CLIP` times the cheapest: a read
    /// an interrupt or the hypervisor stretched (tens of microseconds against ~50 ns) moved the
    /// plain mean by microseconds, and that mean, added back to every run since the daemon
    /// started, put a rarely run program at 4 times the kernel's figure in a 2 s window. The
    /// cheapest alone reads ~20 ns low: reads spread above it.
    pub fn note_read(&mut self, read_ns: u64) {
        if self.clock_reads == 0 || read_ns < self.clock_min_ns {
            self.clock_min_ns = read_ns;
        }
        let clipped = read_ns.min(self.clock_min_ns.saturating_mul(READ_CLIP));
        self.clock_ns = self.clock_ns.wrapping_add(clipped);
        self.clock_reads = self.clock_reads.wrapping_add(1);
        self.read_cost_ns = self.clock_ns / self.clock_reads;
    }

    /// Adds another CPU's values (their clock reads pooled).
    pub fn add(&mut self, other: &ProgRun) {
        self.run_ns = self.run_ns.wrapping_add(other.run_ns);
        self.runs = self.runs.wrapping_add(other.runs);
        if other.clock_reads > 0
            && (self.clock_reads == 0 || other.clock_min_ns < self.clock_min_ns)
        {
            self.clock_min_ns = other.clock_min_ns;
        }
        self.clock_ns = self.clock_ns.wrapping_add(other.clock_ns);
        self.clock_reads = self.clock_reads.wrapping_add(other.clock_reads);
        self.read_cost_ns = self.clock_ns.checked_div(self.clock_reads).unwrap_or(0);
    }
}

/// Every program of the object; the discriminant indexes `PROG_RUNS`. Stable wire values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramId {
    /// [`programs::SCHED_SWITCH`].
    SchedSwitch = 0,
    /// [`programs::SCHED_SWITCH_PRE_5_18`].
    SchedSwitchPre518 = 1,
    /// [`programs::SCHED_WAKEUP`].
    SchedWakeup = 2,
    /// [`programs::PROCESS_EXEC`].
    ProcessExec = 3,
    /// [`programs::PROCESS_EXIT`].
    ProcessExit = 4,
    /// [`programs::SYS_FUTEX`].
    SysFutex = 5,
    /// [`programs::SYS_NANOSLEEP`].
    SysNanosleep = 6,
    /// [`programs::SYS_SCHED_YIELD`].
    SysSchedYield = 7,
    /// [`programs::CPU_CLOCK`].
    CpuClock = 8,
    /// [`programs::RUNTIME_FUTEX`].
    RuntimeFutex = 9,
    /// [`programs::RUNTIME_USLEEP`].
    RuntimeUsleep = 10,
    /// [`programs::RUNTIME_MCALL`].
    RuntimeMcall = 11,
    /// [`programs::RUNTIME_CGOCALL`].
    RuntimeCgocall = 12,
}

impl ProgramId {
    /// Number of programs; the length of `PROG_RUNS`.
    pub const COUNT: u32 = 13;
    /// Every program, in index order.
    pub const ALL: [ProgramId; Self::COUNT as usize] = [
        Self::SchedSwitch,
        Self::SchedSwitchPre518,
        Self::SchedWakeup,
        Self::ProcessExec,
        Self::ProcessExit,
        Self::SysFutex,
        Self::SysNanosleep,
        Self::SysSchedYield,
        Self::CpuClock,
        Self::RuntimeFutex,
        Self::RuntimeUsleep,
        Self::RuntimeMcall,
        Self::RuntimeCgocall,
    ];

    /// The program's name in the object.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SchedSwitch => programs::SCHED_SWITCH,
            Self::SchedSwitchPre518 => programs::SCHED_SWITCH_PRE_5_18,
            Self::SchedWakeup => programs::SCHED_WAKEUP,
            Self::ProcessExec => programs::PROCESS_EXEC,
            Self::ProcessExit => programs::PROCESS_EXIT,
            Self::SysFutex => programs::SYS_FUTEX,
            Self::SysNanosleep => programs::SYS_NANOSLEEP,
            Self::SysSchedYield => programs::SYS_SCHED_YIELD,
            Self::CpuClock => programs::CPU_CLOCK,
            Self::RuntimeFutex => programs::RUNTIME_FUTEX,
            Self::RuntimeUsleep => programs::RUNTIME_USLEEP,
            Self::RuntimeMcall => programs::RUNTIME_MCALL,
            Self::RuntimeCgocall => programs::RUNTIME_CGOCALL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records `runs` runs of `span` each, timing a read of `read` where the type asks for one.
    fn run(r: &mut ProgRun, runs: u64, span: u64, read: u64) {
        for _ in 0..runs {
            r.record(span);
            if r.times_a_read() {
                r.note_read(read);
            }
        }
    }

    #[test]
    fn each_run_adds_the_clipped_mean_clock_read_so_far() {
        let mut r = ProgRun::default();
        // The first run times a read, after it was costed without one.
        run(&mut r, 64, 300, 40);
        assert_eq!((r.runs, r.clock_reads, r.read_cost_ns), (64, 1, 40));
        assert_eq!(r.run_ns, 300 + 63 * 340);
        // A read stretched a thousandfold counts as 4 cheapest ones: (40 + 160) / 2, from the
        // next run on.
        run(&mut r, 64, 300, 40_000);
        assert_eq!(
            (r.clock_reads, r.clock_min_ns, r.read_cost_ns),
            (2, 40, 100)
        );
        assert_eq!(r.run_ns, 300 + 64 * 340 + 63 * 400);
        // A cheap read lowers the cost of the runs after it, not of those before.
        run(&mut r, 64, 300, 40);
        assert_eq!(r.read_cost_ns, 80);
        assert_eq!(r.run_ns, 300 + 64 * 340 + 64 * 400 + 63 * 380);
    }

    #[test]
    fn cpus_add_up_with_their_clock_reads_pooled() {
        let mut a = ProgRun::default();
        run(&mut a, 10, 100, 50);
        let mut b = ProgRun::default();
        run(&mut b, 10, 100, 30);
        let mut sum = ProgRun::default();
        sum.add(&a);
        sum.add(&ProgRun::default());
        sum.add(&b);
        assert_eq!(sum.runs, 20);
        assert_eq!(sum.run_ns, 100 + 9 * 150 + 100 + 9 * 130);
        assert_eq!(
            (sum.clock_reads, sum.clock_min_ns, sum.read_cost_ns),
            (2, 30, 40)
        );
    }

    #[test]
    fn ids_index_in_order_and_name_distinct_programs() {
        for (i, id) in ProgramId::ALL.iter().enumerate() {
            assert_eq!(*id as usize, i);
            for other in &ProgramId::ALL[i + 1..] {
                assert_ne!(id.name(), other.name());
            }
        }
    }
}
