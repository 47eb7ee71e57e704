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
    /// Nanoseconds between the program's first and last clock read, summed over runs.
    pub run_ns: u64,
    /// Runs.
    pub runs: u64,
    /// Nanoseconds taken by `clock_reads` extra clock reads (one run in 64 makes one).
    pub clock_ns: u64,
    /// Extra clock reads timed.
    pub clock_reads: u64,
}
const _: () = assert!(size_of::<ProgRun>() == 32);

impl ProgRun {
    /// Adds another CPU's (or period's) values.
    pub fn add(&mut self, other: &ProgRun) {
        self.run_ns = self.run_ns.wrapping_add(other.run_ns);
        self.runs = self.runs.wrapping_add(other.runs);
        self.clock_ns = self.clock_ns.wrapping_add(other.clock_ns);
        self.clock_reads = self.clock_reads.wrapping_add(other.clock_reads);
    }

    /// Estimated nanoseconds the runs took, as the kernel's statistics would count them: the
    /// timed span plus one clock read per run (what the timed span leaves out).
    pub fn estimated_ns(&self) -> u64 {
        let per_read = self.clock_ns.checked_div(self.clock_reads).unwrap_or(0);
        self.run_ns.wrapping_add(per_read.saturating_mul(self.runs))
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

    #[test]
    fn the_estimate_adds_one_mean_clock_read_per_run() {
        let mut a = ProgRun {
            run_ns: 1000,
            runs: 10,
            clock_ns: 60,
            clock_reads: 2,
        };
        assert_eq!(a.estimated_ns(), 1000 + 10 * 30);
        a.add(&ProgRun {
            run_ns: 500,
            runs: 5,
            clock_ns: 0,
            clock_reads: 0,
        });
        assert_eq!(a.estimated_ns(), 1500 + 15 * 30);
        // No read timed yet: the span alone.
        assert_eq!(
            ProgRun {
                run_ns: 7,
                runs: 3,
                ..ProgRun::default()
            }
            .estimated_ns(),
            7
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
