//! Every map and load-time global of gocpu's programs, in one place.
//!
//! Names are the contract with user space (`gocpu_common::maps`, `gocpu_common::globals`).
use aya_ebpf::{
    Global,
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, PerCpuHashMap, PerfEventArray, StackTrace},
};
use gocpu_common::{
    CpuSlice, DropReason, FutexKey, MAX_FUTEX_KEYS, MAX_OFFCPU_KEYS, MAX_SAMPLE_KEYS, MAX_STACKS,
    MAX_THREADS, MAX_TRACKED_PROCS, OffCpuKey, OffCpuValue, ProcEvent, ProcStats, ProgRun,
    ProgramId, SampleKey, ThreadChurn, ThreadStats,
};

/// Tracked processes: `tgid -> ProcStats`. User space inserts and removes keys; the kernel only
/// updates values, so a hook firing in an untracked process costs one failed lookup and nothing
/// more, and the map can never fill up from the kernel side.
#[map(name = "PROCS")]
pub static PROCS: PerCpuHashMap<u32, ProcStats> =
    PerCpuHashMap::with_max_entries(MAX_TRACKED_PROCS, 0);

/// Threads of tracked processes by task_struct address (what the raw scheduler tracepoints
/// pass), inserted by the kernel at their first switch, deleted at their last; LRU so that it
/// can never refuse a thread (the least recently switched one is forgotten instead).
#[map(name = "THREADS")]
pub static THREADS: LruHashMap<u64, ThreadStats> = LruHashMap::with_max_entries(MAX_THREADS, 0);

/// When the task now running on this CPU got it.
#[map(name = "CPU_SLICE")]
pub static CPU_SLICE: PerCpuArray<CpuSlice> = PerCpuArray::with_max_entries(1, 0);

/// The generation the programs write now (slot 0), set only by user space. Its parity picks the
/// `_0` or `_1` map of each drained aggregation, so user space empties the other one while no
/// program writes it: a read-then-delete of a map being written would lose increments.
#[map(name = "GENERATION")]
pub static GENERATION: Array<u32> = Array::with_max_entries(1, 0);

/// CPU clock samples by (process, thread, user stack, mode), generation 0 mod 2.
#[map(name = "CPU_SAMPLES_0")]
pub static CPU_SAMPLES_0: PerCpuHashMap<SampleKey, u64> =
    PerCpuHashMap::with_max_entries(MAX_SAMPLE_KEYS, 0);

/// CPU clock samples, generation 1 mod 2.
#[map(name = "CPU_SAMPLES_1")]
pub static CPU_SAMPLES_1: PerCpuHashMap<SampleKey, u64> =
    PerCpuHashMap::with_max_entries(MAX_SAMPLE_KEYS, 0);

/// User stacks of CPU samples, generation 0 mod 2 (emptied with its samples).
#[map(name = "STACKS_CPU_0")]
pub static STACKS_CPU_0: StackTrace = StackTrace::with_max_entries(MAX_STACKS, 0);

/// User stacks of CPU samples, generation 1 mod 2.
#[map(name = "STACKS_CPU_1")]
pub static STACKS_CPU_1: StackTrace = StackTrace::with_max_entries(MAX_STACKS, 0);

/// Blocked time by (process, stack where the thread blocked): cumulative, its key holds the
/// frames themselves, so no stack id to free.
#[map(name = "OFFCPU")]
pub static OFFCPU: PerCpuHashMap<OffCpuKey, OffCpuValue> =
    PerCpuHashMap::with_max_entries(MAX_OFFCPU_KEYS, 0);

/// Sampled futex calls by (process, user stack, operation), generation 0 mod 2.
#[map(name = "FUTEX_CALLERS_0")]
pub static FUTEX_CALLERS_0: PerCpuHashMap<FutexKey, u64> =
    PerCpuHashMap::with_max_entries(MAX_FUTEX_KEYS, 0);

/// Sampled futex calls, generation 1 mod 2.
#[map(name = "FUTEX_CALLERS_1")]
pub static FUTEX_CALLERS_1: PerCpuHashMap<FutexKey, u64> =
    PerCpuHashMap::with_max_entries(MAX_FUTEX_KEYS, 0);

/// User stacks of futex callers and cgo calls, generation 0 mod 2.
#[map(name = "STACKS_OFF_0")]
pub static STACKS_OFF_0: StackTrace = StackTrace::with_max_entries(MAX_STACKS, 0);

/// User stacks of futex callers and cgo calls, generation 1 mod 2.
#[map(name = "STACKS_OFF_1")]
pub static STACKS_OFF_1: StackTrace = StackTrace::with_max_entries(MAX_STACKS, 0);

/// `THREADS` entries the kernel inserted and deleted, per CPU (evictions are derived from them).
#[map(name = "THREAD_CHURN")]
pub static THREAD_CHURN: PerCpuArray<ThreadChurn> = PerCpuArray::with_max_entries(1, 0);

/// Per CPU: `[futex calls of tracked processes, earliest time (ns) of the next stack sample]`.
#[map(name = "FUTEX_TICK")]
pub static FUTEX_TICK: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// Slot 0 non-zero while the syscall tracepoints' measurement period runs, set only by user
/// space. Attaching and detaching a tracepoint takes from a tenth of a millisecond to tens of
/// milliseconds (the detach waits out an RCU grace period), so the calls counted between the
/// first attach and the last detach are not those of the period user space timed; the gate
/// makes them so.
#[map(name = "SYSCALL_GATE")]
pub static SYSCALL_GATE: Array<u32> = Array::with_max_entries(1, 0);

/// Process lifecycle events (exec, exit): rare, so streamed rather than aggregated.
#[map(name = "EVENTS")]
pub static EVENTS: PerfEventArray<ProcEvent> = PerfEventArray::new(0);

/// Events lost in kernel, indexed by `DropReason`.
#[map(name = "DROPS")]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DropReason::COUNT, 0);

/// Each program's own run time, indexed by `ProgramId` (written only with `SELF_TIMING`).
#[map(name = "PROG_RUNS")]
pub static PROG_RUNS: PerCpuArray<ProgRun> = PerCpuArray::with_max_entries(ProgramId::COUNT, 0);

/// Non-zero: every program times itself into `PROG_RUNS` (the loader sets it when the kernel
/// keeps no run-time statistics; zero makes the verifier drop the timing code).
#[unsafe(no_mangle)]
pub static SELF_TIMING: Global<u32> = Global::new(0);

/// Byte offset of `op` in the `sys_enter_futex` record.
#[unsafe(no_mangle)]
pub static FUTEX_OP_OFFSET: Global<u32> = Global::new(24);

/// At most one futex call's stack is sampled per CPU in this many nanoseconds.
#[unsafe(no_mangle)]
pub static FUTEX_SAMPLE_INTERVAL_NS: Global<u64> = Global::new(5_000_000);

/// Non-zero: capture user stacks in CPU samples.
#[unsafe(no_mangle)]
pub static SAMPLE_STACKS: Global<u32> = Global::new(1);

/// Byte offset of `group_dead` in the `sched_process_exit` record; 0 when the kernel lacks it.
#[unsafe(no_mangle)]
pub static EXIT_GROUP_DEAD_OFFSET: Global<u32> = Global::new(0);
