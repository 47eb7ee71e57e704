//! Accounting shared by several hooks: per-process and per-thread counters, on-CPU slices, stack
//! capture, keyed aggregation and drop counting.
use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_ANY, BPF_F_CURRENT_CPU, BPF_F_USER_STACK, BPF_NOEXIST},
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_stack, bpf_ktime_get_ns,
        bpf_perf_event_output,
    },
    maps::{PerCpuHashMap, StackTrace},
    programs::tracing::StackIdContext,
};
use gocpu_common::{
    DropReason, NO_STACK, OFF_FRAMES, ProcEvent, ProcStats, ProgramId, THREAD_GO, ThreadChurn,
    ThreadStats,
};

use crate::maps::{
    CPU_SLICE, DROPS, EVENTS, GENERATION, PROCS, PROG_RUNS, SELF_TIMING, SYSCALL_GATE,
    THREAD_CHURN, THREADS,
};

/// `-EEXIST` from `bpf_get_stackid`: the stack's bucket holds another stack.
const EEXIST: i32 = -17;

/// Runs a program's `body`; with `SELF_TIMING` set, adds its run time and one run to the
/// program's `PROG_RUNS` slot on this CPU. The global is read-only data, so with it zero the
/// verifier removes the clock reads altogether.
///
/// The kernel's own statistics time a run from just before the program to just after it; the
/// reads here miss about one clock read's worth of that (the end of the first read, the start
/// of the last). One run in 64 times one more read, and each run adds the cheapest read timed so
/// far on its CPU ([`gocpu_common::ProgRun::record`]).
#[inline(always)]
pub fn timed(id: ProgramId, body: impl FnOnce() -> u32) -> u32 {
    if SELF_TIMING.load() == 0 {
        return body();
    }
    let start = now_ns();
    let ret = body();
    let Some(slot) = PROG_RUNS.get_ptr_mut(id as u32) else {
        return ret;
    };
    let end = now_ns();
    // SAFETY: each program has its own slot of this CPU's array. Only a program interrupting
    // this one between the read and the write on the same CPU (the clock sampler's hrtimer
    // during a raw tracepoint) could lose an add; the BPF target has no atomic add in Rust's
    // core, and such nesting is rare enough not to matter to a cost estimate.
    unsafe {
        (*slot).record(end.wrapping_sub(start));
        if (*slot).times_a_read() {
            (*slot).note_read(now_ns().wrapping_sub(end));
        }
    }
    ret
}

/// The task running this program.
#[derive(Clone, Copy)]
pub struct Task {
    /// Thread group id (process).
    pub tgid: u32,
    /// Thread id.
    pub tid: u32,
}

/// The task running this program.
#[inline(always)]
pub fn current() -> Task {
    let v = bpf_get_current_pid_tgid();
    Task {
        tgid: (v >> 32) as u32,
        tid: v as u32,
    }
}

/// This CPU's counters for `tgid`, or `None` when the process is not tracked.
#[inline(always)]
pub fn stats_mut(tgid: u32) -> Option<&'static mut ProcStats> {
    // SAFETY: a per-CPU value is only written by programs on this CPU, and tracepoint, uprobe and
    // perf_event programs do not nest on one CPU (the kernel's per-CPU recursion guard), so this is
    // the only live reference. The entry may be deleted concurrently by user space; the kernel keeps
    // the element's memory valid for the duration of the program (RCU), the write is then lost.
    PROCS.get_ptr_mut(tgid).map(|p| unsafe { &mut *p })
}

/// The `task_struct` address of the task running this program: the `THREADS` key.
#[inline(always)]
pub fn current_task() -> u64 {
    // SAFETY: helper without preconditions.
    unsafe { bpf_get_current_task() }
}

/// The state of `task` (at `key`, its task_struct address) of a tracked process, created on
/// first use, and started afresh when the entry belonged to another thread (an exec changed
/// its ids, or an entry outlived its task).
#[inline(always)]
pub fn thread_mut(key: u64, task: Task) -> Option<&'static mut ThreadStats> {
    let stale = match existing_thread_mut(key) {
        Some(t) if t.tid == task.tid && t.tgid == task.tgid => return Some(t),
        Some(_) => true,
        None => false,
    };
    let fresh = ThreadStats {
        tgid: task.tgid,
        tid: task.tid,
        cgo_stack: NO_STACK,
        ..ThreadStats::default()
    };
    // An LRU map makes room by evicting; BPF_ANY replaces a stale entry, and nothing
    // else inserts this key concurrently (only the task itself, on its own CPU).
    if THREADS.insert(key, fresh, u64::from(BPF_ANY)).is_err() {
        count_drop(DropReason::ThreadInsert);
        return None;
    }
    if !stale {
        // A replaced stale entry neither adds nor removes one: only fresh inserts count, so
        // that user space's `inserts - deletes - live` is exactly what the LRU evicted.
        count_churn(|c| &mut c.inserts);
    }
    existing_thread_mut(key)
}

/// Counts one `THREADS` insert or delete of this CPU.
#[inline(always)]
fn count_churn(field: fn(&mut ThreadChurn) -> &mut u64) {
    if let Some(c) = THREAD_CHURN.get_ptr_mut(0) {
        // SAFETY: per-CPU slot; programs do not nest on one CPU (see `stats_mut`).
        let c = field(unsafe { &mut *c });
        *c = c.wrapping_add(1);
    }
}

/// The state of the task at `key` (its task_struct address), if it has one.
#[inline(always)]
pub fn existing_thread_mut(key: u64) -> Option<&'static mut ThreadStats> {
    // SAFETY: the entry lives in kernel memory valid for the program's duration (RCU). Other CPUs
    // may write other fields of the same thread (its wake-up); word-sized plain stores, and a lost
    // update only skews one thread's statistics.
    THREADS.get_ptr_mut(key).map(|p| unsafe { &mut *p })
}

/// Drops the state of the task at `key`: it is exiting, and its task_struct will be reused.
#[inline(always)]
pub fn forget_thread(key: u64) {
    // Absent for almost every task (only threads of tracked processes have one).
    if THREADS.remove(key).is_ok() {
        count_churn(|c| &mut c.deletes);
    }
}

/// The entry at `key` names a process `PROCS` no longer has: what it was about to count is
/// lost (counted), and the entry is deleted, since nothing will ever read it again.
#[inline(always)]
pub fn orphaned_thread(key: u64) {
    count_drop(DropReason::StatsMissing);
    forget_thread(key);
}

/// The generation the programs write now; its parity picks the `_0` or `_1` drained maps.
#[inline(always)]
pub fn generation() -> u32 {
    GENERATION.get(0).copied().unwrap_or(0)
}

/// Whether a measurement period of the syscall tracepoints runs (`SYSCALL_GATE`).
#[inline(always)]
pub fn syscall_gate_open() -> bool {
    SYSCALL_GATE.get(0).is_some_and(|g| *g != 0)
}

/// As [`count_call`], for a syscall tracepoint: only within a measurement period.
#[inline(always)]
pub fn count_syscall(field: fn(&mut ProcStats) -> &mut u64) {
    if syscall_gate_open() {
        count_call(field);
    }
}

/// Increments the counter `field` selects for the current process, if it is tracked.
#[inline(always)]
pub fn count_call(field: fn(&mut ProcStats) -> &mut u64) {
    if let Some(stats) = stats_mut(current().tgid) {
        let c = field(stats);
        *c = c.wrapping_add(1);
    }
}

/// A uprobe on a Go runtime function fired: counts it and marks the thread as a Go M (only Go
/// threads run runtime code; a thread started by C code never does). Returns the thread's
/// state when the process is tracked.
#[inline(always)]
pub fn count_runtime_call(
    field: fn(&mut ProcStats) -> &mut u64,
) -> Option<&'static mut ThreadStats> {
    let task = current();
    let stats = stats_mut(task.tgid)?;
    let c = field(stats);
    *c = c.wrapping_add(1);
    let th = thread_mut(current_task(), task)?;
    th.flags |= THREAD_GO;
    Some(th)
}

/// Closes the slice running on this CPU at `now` and starts a new one; returns its length
/// (0 for the first slice seen on this CPU, whose start is unknown).
#[inline(always)]
pub fn close_slice(now: u64) -> u64 {
    let Some(slice) = CPU_SLICE.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU slot, written only by sched_switch (IRQs off) and the CPU clock handler (in
    // IRQ context), which therefore never interleave on one CPU.
    let slice = unsafe { &mut *slice };
    let start = slice.start_ns;
    slice.start_ns = now;
    if start != 0 && now > start {
        now - start
    } else {
        0
    }
}

/// Records whose slice runs on this CPU (`tgid`, 0 for a task not tracked): user space adds the
/// running slices to the charged time, so that the CPU time it reads is exact at any instant,
/// not up to a clock period stale (a 2 ms measurement period needs that).
#[inline(always)]
pub fn set_slice_owner(tgid: u32) {
    if let Some(slice) = CPU_SLICE.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, written only at sched_switch and the CPU clock (see close_slice).
        unsafe { (*slice).tgid = tgid };
    }
}

/// Monotonic nanoseconds (CLOCK_MONOTONIC, as `bpf_ktime_get_ns`).
#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: helper without preconditions.
    unsafe { bpf_ktime_get_ns() }
}

/// Counts one lost event of kind `reason` on this CPU.
#[inline(always)]
pub fn count_drop(reason: DropReason) {
    if let Some(c) = DROPS.get_ptr_mut(reason as u32) {
        // SAFETY: per-CPU slot; programs do not nest on one CPU (see `stats_mut`).
        unsafe { *c = (*c).wrapping_add(1) };
    }
}

/// The current task's user stack id in `map`, or `NO_STACK` (counted as a drop) when it cannot
/// be captured.
///
/// Without `BPF_F_REUSE_STACKID`: an id in a key must keep naming the stack it was taken for
/// until user space reads it, and a reused id would silently name another stack (and merge two
/// stacks' counts under one key). A collision is counted instead; the maps are emptied every
/// generation, so only stacks of one poll interval can collide.
#[inline(always)]
pub fn user_stack<C: StackIdContext>(ctx: &C, map: &StackTrace) -> u32 {
    match ctx.get_stackid(map, u64::from(BPF_F_USER_STACK)) {
        Ok(id) => id as u32,
        Err(e) => {
            count_drop(if e == EEXIST {
                DropReason::StackIdCollision
            } else {
                DropReason::StackCapture
            });
            NO_STACK
        }
    }
}

/// Writes the innermost `OFF_FRAMES` user frames of the current task into `ips`; returns how
/// many are valid. Bounded: only that many frames are walked, unlike a full stack id.
#[inline(always)]
pub fn user_frames<C: EbpfContext>(ctx: &C, ips: &mut [u64; OFF_FRAMES]) -> u32 {
    // SAFETY: `ips` is writable memory of exactly the size passed.
    let n = unsafe {
        bpf_get_stack(
            ctx.as_ptr(),
            ips.as_mut_ptr().cast(),
            core::mem::size_of::<[u64; OFF_FRAMES]>() as u32,
            u64::from(BPF_F_USER_STACK),
        )
    };
    if n < 0 {
        count_drop(DropReason::StackCapture);
        return 0;
    }
    (n as u32) / 8
}

/// Applies `update` to this CPU's value for `key`, inserting `V::default()` first if needed.
#[inline(always)]
pub fn update_keyed<K, V: Default>(
    map: &PerCpuHashMap<K, V>,
    key: &K,
    update: impl FnOnce(&mut V),
) {
    if map.get_ptr_mut(key).is_none()
        && map
            .insert(key, V::default(), u64::from(BPF_NOEXIST))
            .is_err()
    {
        // Either another CPU inserted it meanwhile (then the lookup below succeeds) or it is full.
    }
    match map.get_ptr_mut(key) {
        // SAFETY: this CPU's slot of a per-CPU value; programs do not nest on one CPU.
        Some(v) => update(unsafe { &mut *v }),
        None => count_drop(DropReason::AggregationFull),
    }
}

/// Streams `event` to user space through this CPU's perf buffer; a failure is counted, not lost
/// silently.
#[inline(always)]
pub fn emit<C: EbpfContext>(ctx: &C, event: &ProcEvent) {
    // `PerfEventArray::output` discards the helper's result; call it directly to count failures.
    // The map static is `repr(transparent)` over its definition, so its address is the map pointer.
    // SAFETY: `EVENTS` is a perf event array map and `event` points to `size_of::<ProcEvent>()`
    // readable bytes for the duration of the call.
    let ret = unsafe {
        bpf_perf_event_output(
            ctx.as_ptr(),
            core::ptr::from_ref(&EVENTS).cast_mut().cast(),
            u64::from(BPF_F_CURRENT_CPU as u32),
            core::ptr::from_ref(event).cast_mut().cast(),
            core::mem::size_of::<ProcEvent>() as u64,
        )
    };
    if ret < 0 {
        count_drop(DropReason::EventOutput);
    }
}

/// A classic tracepoint program's body, timed like [`timed`], returning non-zero: the kernel
/// hands an event to the tracepoint's perf consumers only when its BPF programs return
/// non-zero, so returning 0 (what aya's `#[tracepoint]` entry does) hides every event from,
/// say, `perf stat -e syscalls:sys_enter_futex` on the node while gocpu is attached. gocpu's
/// own perf event then counts it too (a counter add on the one CPU it is opened on).
pub fn classic_tracepoint(id: ProgramId, body: impl FnOnce()) -> u32 {
    timed(id, || {
        body();
        1
    })
}
