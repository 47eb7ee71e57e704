//! Every map and load-time global of gocpu's programs, in one place.
//!
//! Names are the contract with user space (`gocpu_common::maps`, `gocpu_common::globals`).
use aya_ebpf::{
    Global,
    macros::map,
    maps::{PerCpuArray, PerCpuHashMap, PerfEventArray},
};
use gocpu_common::{CpuSlice, DropReason, MAX_TRACKED_PROCS, ProcEvent, ProcStats};

/// Tracked processes: `tgid -> ProcStats`. User space inserts and removes keys; the kernel only
/// updates values, so a hook firing in an untracked process costs one failed lookup and nothing
/// more, and the map can never fill up from the kernel side.
#[map(name = "PROCS")]
pub static PROCS: PerCpuHashMap<u32, ProcStats> =
    PerCpuHashMap::with_max_entries(MAX_TRACKED_PROCS, 0);

/// When the task now running on this CPU got it.
#[map(name = "CPU_SLICE")]
pub static CPU_SLICE: PerCpuArray<CpuSlice> = PerCpuArray::with_max_entries(1, 0);

/// Process lifecycle events (exec, exit): rare, so streamed rather than aggregated.
#[map(name = "EVENTS")]
pub static EVENTS: PerfEventArray<ProcEvent> = PerfEventArray::new(0);

/// Events lost in kernel, indexed by `DropReason`.
#[map(name = "DROPS")]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DropReason::COUNT, 0);

/// Byte offset of `prev_state` in the `sched_switch` record (read from tracefs by the loader).
#[unsafe(no_mangle)]
pub static SWITCH_PREV_STATE_OFFSET: Global<u32> = Global::new(32);

/// Byte offset of `group_dead` in the `sched_process_exit` record; 0 when the kernel lacks it.
#[unsafe(no_mangle)]
pub static EXIT_GROUP_DEAD_OFFSET: Global<u32> = Global::new(0);
