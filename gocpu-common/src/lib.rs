//! Types shared by the eBPF programs (`gocpu-ebpf`) and the daemon (`gocpu-daemon`).
//!
//! Every type here crosses the kernel/user boundary through a BPF map or a perf buffer, so each is
//! `#[repr(C)]`, `Copy`, built only from fixed-width integers (no `bool`, no enums in fields), laid
//! out without implicit padding, and pinned by a compile-time size assertion: a change of layout
//! breaks the build instead of silently corrupting data read by the other side.
#![no_std]

use core::mem::size_of;

/// Maximum number of processes the kernel side can account at once (entries in `PROCS`).
pub const MAX_TRACKED_PROCS: u32 = 8192;

/// Names of the BPF maps, shared so that the daemon looks up exactly what the programs define.
pub mod maps {
    /// Per-CPU hash map `tgid -> ProcStats`; its keys are the tracked processes (user space inserts).
    pub const PROCS: &str = "PROCS";
    /// Per-CPU perf event array carrying [`crate::ProcEvent`]s.
    pub const EVENTS: &str = "EVENTS";
    /// Per-CPU array of `u64` drop counters indexed by [`crate::DropReason`].
    pub const DROPS: &str = "DROPS";
    /// Per-CPU array with one `CpuSlice` per CPU (kernel-internal scheduling bookkeeping).
    pub const CPU_SLICE: &str = "CPU_SLICE";
}

/// Names of the eBPF programs, one per hook.
pub mod programs {
    /// Tracepoint `sched:sched_switch`: on-CPU time and context switches.
    pub const SCHED_SWITCH: &str = "sched_switch";
    /// Tracepoint `sched:sched_process_exec`: a process replaced its image.
    pub const PROCESS_EXEC: &str = "sched_process_exec";
    /// Tracepoint `sched:sched_process_exit`: a thread (or whole thread group) exited.
    pub const PROCESS_EXIT: &str = "sched_process_exit";
    /// perf_event on the CPU clock: closes the running slice so long runs are accounted promptly.
    pub const CPU_CLOCK: &str = "cpu_clock";
    /// Uprobe at the entry of `runtime.futex`.
    pub const RUNTIME_FUTEX: &str = "runtime_futex";
    /// Uprobe at the entry of `runtime.usleep`.
    pub const RUNTIME_USLEEP: &str = "runtime_usleep";
    /// Uprobe at the entry of `runtime.mcall`.
    pub const RUNTIME_MCALL: &str = "runtime_mcall";
}

/// Names of the read-only globals the loader patches before the programs are verified.
pub mod globals {
    /// `u32`: byte offset of `prev_state` in the `sched_switch` tracepoint record.
    pub const SWITCH_PREV_STATE_OFFSET: &str = "SWITCH_PREV_STATE_OFFSET";
    /// `u32`: byte offset of `group_dead` in the `sched_process_exit` record; 0 when absent.
    pub const EXIT_GROUP_DEAD_OFFSET: &str = "EXIT_GROUP_DEAD_OFFSET";
}

/// Per-process counters, aggregated in kernel: one value per CPU, summed by user space.
///
/// Every field is cumulative since user space inserted the process into `PROCS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcStats {
    /// Entries into `runtime.futex` (futex wait and wake, both directions).
    pub futex_calls: u64,
    /// Entries into `runtime.usleep` (spinning Ms backing off, sysmon).
    pub usleep_calls: u64,
    /// Entries into `runtime.mcall` (a goroutine switching to g0: park, gosched, exit).
    pub mcall_calls: u64,
    /// Nanoseconds any thread of the process spent on a CPU.
    pub oncpu_ns: u64,
    /// Context switches where the thread left the CPU because it blocked.
    pub voluntary_switches: u64,
    /// Context switches where the thread was preempted while runnable.
    pub involuntary_switches: u64,
}
const _: () = assert!(size_of::<ProcStats>() == 48);

impl ProcStats {
    /// Adds `other` field by field (wrapping): how user space folds the per-CPU values.
    pub fn accumulate(&mut self, other: &ProcStats) {
        self.futex_calls = self.futex_calls.wrapping_add(other.futex_calls);
        self.usleep_calls = self.usleep_calls.wrapping_add(other.usleep_calls);
        self.mcall_calls = self.mcall_calls.wrapping_add(other.mcall_calls);
        self.oncpu_ns = self.oncpu_ns.wrapping_add(other.oncpu_ns);
        self.voluntary_switches = self
            .voluntary_switches
            .wrapping_add(other.voluntary_switches);
        self.involuntary_switches = self
            .involuntary_switches
            .wrapping_add(other.involuntary_switches);
    }
}

/// The running slice on one CPU: when the current task got the CPU (kernel-internal).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSlice {
    /// `bpf_ktime_get_ns()` at the last switch (or flush) on this CPU; 0 before the first one.
    pub start_ns: u64,
}
const _: () = assert!(size_of::<CpuSlice>() == 8);

/// Kinds of [`ProcEvent`]; the discriminants are stable wire values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A process called execve and now runs a new image.
    Exec = 1,
    /// The last thread of a tracked process exited.
    Exit = 2,
}

impl EventKind {
    /// Decodes a wire value; `None` for values this build does not know.
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Exec),
            2 => Some(Self::Exit),
            _ => None,
        }
    }
}

/// A discrete process lifecycle event, streamed through the `EVENTS` perf buffers.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcEvent {
    /// An [`EventKind`] discriminant.
    pub kind: u32,
    /// Thread group id (the process id user space sees).
    pub tgid: u32,
    /// Thread id of the task that triggered the event.
    pub pid: u32,
    /// Reserved, always 0: keeps `ktime_ns` 8-byte aligned without implicit padding.
    pub reserved: u32,
    /// `bpf_ktime_get_ns()` when the event happened.
    pub ktime_ns: u64,
}
const _: () = assert!(size_of::<ProcEvent>() == 24);

impl ProcEvent {
    /// Decodes an event from raw perf-buffer bytes (which may carry trailing alignment padding).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < size_of::<Self>() {
            return None;
        }
        let u32_at = |at: usize| -> Option<u32> {
            let b = bytes.get(at..at + 4)?;
            Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        let lo = u32_at(16)? as u64;
        let hi = u32_at(20)? as u64;
        let ktime_ns = if cfg!(target_endian = "little") {
            lo | (hi << 32)
        } else {
            (lo << 32) | hi
        };
        Some(Self {
            kind: u32_at(0)?,
            tgid: u32_at(4)?,
            pid: u32_at(8)?,
            reserved: u32_at(12)?,
            ktime_ns,
        })
    }
}

/// Why an event was lost in kernel; indexes the `DROPS` per-CPU array. Stable wire values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// `bpf_perf_event_output` failed (perf buffer full).
    EventOutput = 0,
    /// A counter update found no `PROCS` entry it expected (process removed concurrently).
    StatsMissing = 1,
}

impl DropReason {
    /// Number of reasons; the length of the `DROPS` array.
    pub const COUNT: u32 = 2;
    /// Every reason, in index order.
    pub const ALL: [DropReason; Self::COUNT as usize] = [Self::EventOutput, Self::StatsMissing];

    /// Stable snake_case name, used as a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EventOutput => "event_output",
            Self::StatsMissing => "stats_missing",
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all three are repr(C), Copy, made only of u64/u32 fields with no padding (sizes are
    // asserted above), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::ProcStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CpuSlice {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ProcEvent {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_roundtrips_through_bytes() {
        let ev = ProcEvent {
            kind: EventKind::Exit as u32,
            tgid: 42,
            pid: 43,
            reserved: 0,
            ktime_ns: 0x1122_3344_5566_7788,
        };
        // SAFETY: ProcEvent is repr(C) without padding; viewing it as bytes is sound.
        let bytes: [u8; 24] = unsafe { core::mem::transmute(ev) };
        let mut padded = [0u8; 28];
        padded[..24].copy_from_slice(&bytes);
        assert_eq!(ProcEvent::from_bytes(&padded), Some(ev));
        assert_eq!(ProcEvent::from_bytes(&bytes[..23]), None);
    }

    #[test]
    fn kinds_and_reasons_are_stable() {
        assert_eq!(EventKind::from_u32(1), Some(EventKind::Exec));
        assert_eq!(EventKind::from_u32(2), Some(EventKind::Exit));
        assert_eq!(EventKind::from_u32(3), None);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn accumulate_sums_every_field() {
        let one = ProcStats {
            futex_calls: 1,
            usleep_calls: 2,
            mcall_calls: 3,
            oncpu_ns: 4,
            voluntary_switches: 5,
            involuntary_switches: 6,
        };
        let mut sum = one;
        sum.accumulate(&one);
        assert_eq!(
            sum,
            ProcStats {
                futex_calls: 2,
                usleep_calls: 4,
                mcall_calls: 6,
                oncpu_ns: 8,
                voluntary_switches: 10,
                involuntary_switches: 12,
            }
        );
    }
}
