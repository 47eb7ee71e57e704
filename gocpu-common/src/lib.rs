//! Types shared by the eBPF programs (`gocpu-ebpf`) and the daemon (`gocpu-daemon`).
//!
//! Every type here crosses the kernel/user boundary through a BPF map or a perf buffer, so each is
//! `#[repr(C)]`, `Copy`, built only from fixed-width integers (no `bool`, no enums in fields), laid
//! out without implicit padding, and pinned by a compile-time size assertion: a change of layout
//! breaks the build instead of silently corrupting data read by the other side.
#![no_std]

use core::mem::size_of;

mod self_timing;
pub use self_timing::{ProgRun, ProgramId};

/// Maximum number of processes the kernel side can account at once (entries in `PROCS`).
pub const MAX_TRACKED_PROCS: u32 = 8192;
/// Threads of tracked processes the kernel remembers (LRU; least recently switched evicted).
pub const MAX_THREADS: u32 = 32768;
/// Distinct (process, thread, stack, mode) CPU sample keys per generation (one poll interval).
pub const MAX_SAMPLE_KEYS: u32 = 16384;
/// Distinct (process, stack) off-CPU keys.
pub const MAX_OFFCPU_KEYS: u32 = 8192;
/// Distinct (process, stack, op) sampled futex call sites per generation.
pub const MAX_FUTEX_KEYS: u32 = 4096;
/// Stack ids per stack map and generation (a stack map is emptied when its generation is drained).
pub const MAX_STACKS: u32 = 4096;
/// Generations of the drained aggregations: the kernel writes one while user space drains the
/// other (see [`maps::GENERATION`]).
pub const GENERATIONS: usize = 2;
/// Stack id meaning "no stack" (capture failed or not attempted).
pub const NO_STACK: u32 = u32::MAX;

/// Names of the BPF maps, shared so that the daemon looks up exactly what the programs define.
pub mod maps {
    /// Per-CPU hash map `tgid -> ProcStats`; its keys are the tracked processes (user space inserts).
    pub const PROCS: &str = "PROCS";
    /// Per-CPU perf event array carrying [`crate::ProcEvent`]s.
    pub const EVENTS: &str = "EVENTS";
    /// Per-CPU array of `u64` drop counters indexed by [`crate::DropReason`].
    pub const DROPS: &str = "DROPS";
    /// Per-CPU array with one `CpuSlice` per CPU: the running slices, uncharged so far.
    pub const CPU_SLICE: &str = "CPU_SLICE";
    /// LRU hash `tid -> ThreadStats` of tracked processes' threads (the kernel inserts).
    pub const THREADS: &str = "THREADS";
    /// Array of one `u32`, written only by user space: the generation the kernel writes now.
    /// Its parity selects the `_0`/`_1` map of each drained aggregation below.
    pub const GENERATION: &str = "GENERATION";
    /// Per-CPU hash `SampleKey -> u64`: CPU clock samples, one map per generation parity; user
    /// space drains the generation the kernel no longer writes.
    pub const CPU_SAMPLES: [&str; crate::GENERATIONS] = ["CPU_SAMPLES_0", "CPU_SAMPLES_1"];
    /// Stack traces of CPU samples (ids in the same generation's `CPU_SAMPLES`); emptied when
    /// that generation is drained.
    pub const STACKS_CPU: [&str; crate::GENERATIONS] = ["STACKS_CPU_0", "STACKS_CPU_1"];
    /// Per-CPU hash `OffCpuKey -> OffCpuValue`: blocked time by the stack that blocked.
    pub const OFFCPU: &str = "OFFCPU";
    /// Per-CPU hash `FutexKey -> u64`: sampled futex calls by call stack, one map per
    /// generation parity, drained like `CPU_SAMPLES`.
    pub const FUTEX_CALLERS: [&str; crate::GENERATIONS] = ["FUTEX_CALLERS_0", "FUTEX_CALLERS_1"];
    /// Stack traces of sampled futex callers and cgo calls (ids in the same generation's
    /// `FUTEX_CALLERS` and in `ThreadStats::cgo_stack` with that `cgo_gen`); emptied when that
    /// generation is drained.
    pub const STACKS_OFF: [&str; crate::GENERATIONS] = ["STACKS_OFF_0", "STACKS_OFF_1"];
    /// Per-CPU array of one [`crate::ThreadChurn`]: `THREADS` entries the kernel inserted and
    /// deleted (user space derives LRU evictions from them).
    pub const THREAD_CHURN: &str = "THREAD_CHURN";
    /// Per-CPU `u32` counter deciding which futex calls get their stack sampled.
    pub const FUTEX_TICK: &str = "FUTEX_TICK";
    /// Per-CPU array `ProgramId -> ProgRun`: the programs' own run time, when `SELF_TIMING` is set.
    pub const PROG_RUNS: &str = "PROG_RUNS";
    /// Array of one `u32`, written only by user space: non-zero while a measurement period of
    /// the syscall tracepoints runs; the programs count nothing outside one.
    pub const SYSCALL_GATE: &str = "SYSCALL_GATE";
}

/// Names of the eBPF programs, one per hook.
pub mod programs {
    /// Raw tracepoint `sched_switch`: on-CPU time, context switches, off-CPU intervals.
    pub const SCHED_SWITCH: &str = "sched_switch";
    /// The same, for kernels before 5.18 (no `prev_state` argument).
    pub const SCHED_SWITCH_PRE_5_18: &str = "sched_switch_pre_5_18";
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
    /// Uprobe at the entry of `runtime.cgocall`.
    pub const RUNTIME_CGOCALL: &str = "runtime_cgocall";
    /// Raw tracepoint `sched_wakeup`: when a blocked thread becomes runnable.
    pub const SCHED_WAKEUP: &str = "sched_wakeup";
    /// Tracepoint `syscalls:sys_enter_futex`: futex waits and wakes, with sampled call stacks.
    pub const SYS_FUTEX: &str = "sys_enter_futex";
    /// Tracepoint `syscalls:sys_enter_nanosleep`: Go's runtime.usleep.
    pub const SYS_NANOSLEEP: &str = "sys_enter_nanosleep";
    /// Tracepoint `syscalls:sys_enter_sched_yield`: Go's runtime.osyield.
    pub const SYS_SCHED_YIELD: &str = "sys_enter_sched_yield";
}

/// Names of the read-only globals the loader patches before the programs are verified.
pub mod globals {
    /// `u32`: byte offset of `group_dead` in the `sched_process_exit` record; 0 when absent.
    pub const EXIT_GROUP_DEAD_OFFSET: &str = "EXIT_GROUP_DEAD_OFFSET";
    /// `u32`: byte offset of `op` in the `sys_enter_futex` record.
    pub const FUTEX_OP_OFFSET: &str = "FUTEX_OP_OFFSET";
    /// `u64`: at most one futex call's stack is sampled per CPU in this many nanoseconds.
    pub const FUTEX_SAMPLE_INTERVAL_NS: &str = "FUTEX_SAMPLE_INTERVAL_NS";
    /// `u32`: non-zero to capture user stacks in CPU samples.
    pub const SAMPLE_STACKS: &str = "SAMPLE_STACKS";
    /// `u32`: non-zero for the programs to time themselves into `PROG_RUNS`.
    pub const SELF_TIMING: &str = "SELF_TIMING";
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
    /// futex(2) calls with a wait operation (FUTEX_WAIT, FUTEX_WAIT_BITSET).
    pub futex_wait_syscalls: u64,
    /// futex(2) calls with a wake operation (FUTEX_WAKE, FUTEX_WAKE_BITSET, ...).
    pub futex_wake_syscalls: u64,
    /// futex(2) calls with any other operation.
    pub futex_other_syscalls: u64,
    /// nanosleep(2) calls (Go's runtime.usleep).
    pub nanosleep_syscalls: u64,
    /// sched_yield(2) calls (Go's runtime.osyield).
    pub sched_yield_syscalls: u64,
    /// sched_wakeup events of the process's threads.
    pub wakeups: u64,
    /// Nanoseconds threads spent runnable but waiting for a CPU (woken or preempted until run).
    pub runq_wait_ns: u64,
    /// Nanoseconds threads spent blocked (switched out voluntarily until woken).
    pub blocked_ns: u64,
    /// CPU clock samples taken while a thread of the process was on a CPU.
    pub samples: u64,
    /// Of those, samples that interrupted kernel mode (a syscall or fault in progress).
    pub samples_kernel: u64,
    /// Entries into `runtime.cgocall` (Go calling C).
    pub cgocall_calls: u64,
    /// futex(2) calls covered by stack samples so far: a sampled call's weight is the calls since
    /// the previous sample of this process on this CPU.
    pub futex_sampled_syscalls: u64,
}
const _: () = assert!(size_of::<ProcStats>() == 144);

/// Number of `u64` counters in [`ProcStats`].
pub const PROC_STATS_FIELDS: usize = size_of::<ProcStats>() / 8;

impl ProcStats {
    /// The counters as an array, in declaration order.
    pub fn as_array(&self) -> &[u64; PROC_STATS_FIELDS] {
        // SAFETY: ProcStats is repr(C) and made of exactly PROC_STATS_FIELDS u64 fields (size
        // asserted above), so it has the layout and alignment of [u64; PROC_STATS_FIELDS].
        unsafe { &*(self as *const Self).cast::<[u64; PROC_STATS_FIELDS]>() }
    }

    /// The counters as a mutable array, in declaration order.
    pub fn as_array_mut(&mut self) -> &mut [u64; PROC_STATS_FIELDS] {
        // SAFETY: as in `as_array`; every bit pattern is a valid u64.
        unsafe { &mut *(self as *mut Self).cast::<[u64; PROC_STATS_FIELDS]>() }
    }

    /// Adds `other` counter by counter (wrapping): how user space folds the per-CPU values.
    pub fn accumulate(&mut self, other: &ProcStats) {
        for (a, b) in self.as_array_mut().iter_mut().zip(other.as_array()) {
            *a = a.wrapping_add(*b);
        }
    }

    /// futex(2) calls of every operation (wrapping, like every counter here).
    #[inline(always)]
    pub fn futex_syscalls(&self) -> u64 {
        self.futex_wait_syscalls
            .wrapping_add(self.futex_wake_syscalls)
            .wrapping_add(self.futex_other_syscalls)
    }

    /// `self - base`, counter by counter (wrapping): the increments since `base`.
    pub fn since(&self, base: &ProcStats) -> ProcStats {
        let mut d = *self;
        for (a, b) in d.as_array_mut().iter_mut().zip(base.as_array()) {
            *a = a.wrapping_sub(*b);
        }
        d
    }
}

/// Per-thread state and totals of a tracked process's thread (value of `THREADS`, whose key is
/// the thread's `task_struct` address: what the raw scheduler tracepoints pass).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadStats {
    /// Thread group the thread belongs to.
    pub tgid: u32,
    /// 1 when the thread last left the CPU blocked (voluntarily), 0 when preempted.
    pub blocked: u32,
    /// Nanoseconds on a CPU.
    pub oncpu_ns: u64,
    /// When the thread last left the CPU; 0 while it is on a CPU.
    pub off_since_ns: u64,
    /// Last wake-up while off CPU.
    pub woken_ns: u64,
    /// [`THREAD_GO`] and other bits.
    pub flags: u32,
    /// Number of valid entries in `off_ips`.
    pub off_depth: u32,
    /// Stack id (in the `STACKS_OFF` map of generation `cgo_gen`) of the Go stack at its last
    /// `runtime.cgocall`, or [`NO_STACK`]: the Go caller of C code whose own frames cannot be
    /// unwound. User space resolves it when generation `cgo_gen` is drained.
    pub cgo_stack: u32,
    /// Thread id.
    pub tid: u32,
    /// The innermost user frames where it last blocked (the runtime's syscall wrapper first):
    /// enough to name the reason, at a fraction of a full stack walk's cost.
    pub off_ips: [u64; OFF_FRAMES],
    /// Nanoseconds runnable but waiting for a CPU.
    pub runq_wait_ns: u64,
    /// Nanoseconds blocked.
    pub blocked_ns: u64,
    /// Context switches out while blocked.
    pub voluntary_switches: u64,
    /// Context switches out while runnable.
    pub involuntary_switches: u64,
    /// Generation (`GENERATION` value) in which `cgo_stack` was captured.
    pub cgo_gen: u32,
    /// Reserved, 0: keeps the size a multiple of 8 without implicit padding.
    pub reserved: u32,
}
const _: () = assert!(size_of::<ThreadStats>() == 88 + 8 * OFF_FRAMES);

/// `THREADS` entries the kernel inserted and deleted on one CPU (value of `THREAD_CHURN`).
///
/// The LRU map evicts without telling anyone; with user space's own deletes and the live
/// entries, `inserts - deletes - user deletes - live` is what it evicted.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadChurn {
    /// Fresh entries the kernel inserted (a replaced stale entry counts as none).
    pub inserts: u64,
    /// Entries the kernel deleted (a thread's last switch).
    pub deletes: u64,
}
const _: () = assert!(size_of::<ThreadChurn>() == 16);

/// User frames recorded where a thread blocks.
pub const OFF_FRAMES: usize = 4;

/// [`ThreadStats::flags`] bit: the thread ran Go runtime code (a uprobe on a runtime function
/// fired on it), so it is an M of the Go runtime, not a thread started by C code.
pub const THREAD_GO: u32 = 1;

/// [`ThreadStats::flags`] bit: the thread passed `sched_process_exit`; its entry is dropped at
/// its next switch (on kernels whose `sched_switch` does not say the task is dead).
pub const THREAD_EXITING: u32 = 2;

/// Key of `CPU_SAMPLES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SampleKey {
    /// Process.
    pub tgid: u32,
    /// Thread.
    pub tid: u32,
    /// User stack id in `STACKS_CPU`, or [`NO_STACK`].
    pub stack: u32,
    /// Bit 0: the sample interrupted kernel mode.
    pub flags: u32,
}
const _: () = assert!(size_of::<SampleKey>() == 16);

/// [`SampleKey::flags`] bit: the sample interrupted kernel mode.
pub const SAMPLE_KERNEL: u32 = 1;

/// Key of `OFFCPU`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OffCpuKey {
    /// Process.
    pub tgid: u32,
    /// Number of valid entries in `ips` (0: the stack could not be read).
    pub depth: u32,
    /// The innermost user frames where the thread blocked.
    pub ips: [u64; OFF_FRAMES],
}
const _: () = assert!(size_of::<OffCpuKey>() == 8 + 8 * OFF_FRAMES);

/// Value of `OFFCPU`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffCpuValue {
    /// Nanoseconds blocked there (until woken).
    pub blocked_ns: u64,
    /// Times blocked there.
    pub count: u64,
}
const _: () = assert!(size_of::<OffCpuValue>() == 16);

/// Key of `FUTEX_CALLERS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FutexKey {
    /// Process.
    pub tgid: u32,
    /// User stack id in `STACKS_OFF`, or [`NO_STACK`].
    pub stack: u32,
    /// A [`FutexOp`] discriminant.
    pub op: u32,
    /// Reserved, 0.
    pub reserved: u32,
}
const _: () = assert!(size_of::<FutexKey>() == 16);

/// Futex operation classes; stable wire values.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FutexOp {
    /// FUTEX_WAIT, FUTEX_WAIT_BITSET.
    Wait = 0,
    /// FUTEX_WAKE, FUTEX_WAKE_BITSET, FUTEX_WAKE_OP.
    Wake = 1,
    /// Anything else.
    Other = 2,
}

impl FutexOp {
    /// Classifies a futex(2) `op` argument (flags such as FUTEX_PRIVATE_FLAG ignored).
    pub const fn classify(op: u64) -> FutexOp {
        match op & 0x7f {
            0 | 9 => FutexOp::Wait,
            1 | 5 | 10 => FutexOp::Wake,
            _ => FutexOp::Other,
        }
    }

    /// Decodes a wire value.
    pub const fn from_u32(v: u32) -> Option<FutexOp> {
        match v {
            0 => Some(FutexOp::Wait),
            1 => Some(FutexOp::Wake),
            2 => Some(FutexOp::Other),
            _ => None,
        }
    }
}

/// The running slice on one CPU: since when, and for which process, it runs uncharged.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSlice {
    /// `bpf_ktime_get_ns()` at the last switch (or flush) on this CPU; 0 before the first one.
    pub start_ns: u64,
    /// Thread-group id of the running task if it is a known thread of a tracked process, else 0.
    pub tgid: u32,
    /// Zero.
    pub reserved: u32,
}
const _: () = assert!(size_of::<CpuSlice>() == 16);

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
    /// A thread's `THREADS` entry named a process no longer in `PROCS` (untracked or exited
    /// while the thread was off CPU): its closing off-CPU interval or wake-up went uncounted, and
    /// the orphaned entry was deleted.
    StatsMissing = 1,
    /// A stack could not be walked (no user stack, a fault in the walk).
    StackCapture = 2,
    /// A keyed aggregation map (`CPU_SAMPLES`, `OFFCPU`, `FUTEX_CALLERS`) was full.
    AggregationFull = 3,
    /// A stack's id was taken by another stack of the same generation (no `BPF_F_REUSE_STACKID`,
    /// so that ids already in keys keep their stack); the sample or call went without its stack.
    StackIdCollision = 4,
    /// Inserting a thread's `THREADS` entry failed (the LRU map found no entry to evict, or no
    /// memory): that switch's per-thread times were not recorded.
    ThreadInsert = 5,
}

impl DropReason {
    /// Number of reasons; the length of the `DROPS` array.
    pub const COUNT: u32 = 6;
    /// Every reason, in index order.
    pub const ALL: [DropReason; Self::COUNT as usize] = [
        Self::EventOutput,
        Self::StatsMissing,
        Self::StackCapture,
        Self::AggregationFull,
        Self::StackIdCollision,
        Self::ThreadInsert,
    ];

    /// Stable snake_case name, used as a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EventOutput => "event_output",
            Self::StatsMissing => "stats_missing",
            Self::StackCapture => "stack_capture",
            Self::AggregationFull => "aggregation_full",
            Self::StackIdCollision => "stack_id_collision",
            Self::ThreadInsert => "thread_insert",
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: every type here is repr(C), Copy, made only of u64/u32 fields with no padding
    // (sizes are asserted above), so every bit pattern is a valid value.
    unsafe impl aya::Pod for super::ProcStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CpuSlice {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ProcEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ThreadStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SampleKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::OffCpuKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::OffCpuValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FutexKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ProgRun {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ThreadChurn {}
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
    fn futex_ops_classify_like_the_kernel_commands() {
        // FUTEX_WAIT_PRIVATE (128|0) and FUTEX_WAKE_PRIVATE (128|1) are what Go uses.
        assert_eq!(FutexOp::classify(128), FutexOp::Wait);
        assert_eq!(FutexOp::classify(129), FutexOp::Wake);
        assert_eq!(FutexOp::classify(9 | 256), FutexOp::Wait);
        assert_eq!(FutexOp::classify(10), FutexOp::Wake);
        assert_eq!(FutexOp::classify(6), FutexOp::Other);
        for op in [FutexOp::Wait, FutexOp::Wake, FutexOp::Other] {
            assert_eq!(FutexOp::from_u32(op as u32), Some(op));
        }
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
    fn array_view_follows_field_order_and_folds() {
        let mut one = ProcStats::default();
        for (i, v) in one.as_array_mut().iter_mut().enumerate() {
            *v = i as u64 + 1;
        }
        assert_eq!(one.futex_calls, 1);
        assert_eq!(one.oncpu_ns, 4);
        assert_eq!(one.futex_sampled_syscalls, PROC_STATS_FIELDS as u64);
        let mut sum = one;
        sum.accumulate(&one);
        assert!(
            sum.as_array()
                .iter()
                .zip(one.as_array())
                .all(|(s, o)| *s == 2 * o)
        );
        assert_eq!(sum.since(&one), one);
        let wrapped = ProcStats::default().since(&one);
        assert_eq!(wrapped.futex_calls, u64::MAX);
    }
}
