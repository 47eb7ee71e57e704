//! Accounting shared by several hooks: per-process counters, on-CPU slices, drop counters.
use aya_ebpf::{
    EbpfContext,
    bindings::BPF_F_CURRENT_CPU,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_perf_event_output},
};
use gocpu_common::{DropReason, ProcEvent, ProcStats};

use crate::maps::{CPU_SLICE, DROPS, EVENTS, PROCS};

/// Thread group id of the task running this program.
#[inline(always)]
pub fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// Thread id of the task running this program.
#[inline(always)]
pub fn current_pid() -> u32 {
    bpf_get_current_pid_tgid() as u32
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

/// Increments the counter `field` selects for the current process, if it is tracked.
#[inline(always)]
pub fn count_call(field: fn(&mut ProcStats) -> &mut u64) {
    if let Some(stats) = stats_mut(current_tgid()) {
        let c = field(stats);
        *c = c.wrapping_add(1);
    }
}

/// Closes the slice of the task running on this CPU at `now`: charges its length to the task's
/// process if tracked, and starts a new slice. Returns the charged process's counters.
#[inline(always)]
pub fn close_slice(now: u64) -> Option<&'static mut ProcStats> {
    let slice = CPU_SLICE.get_ptr_mut(0)?;
    // SAFETY: per-CPU slot, written only by sched_switch (IRQs off) and the CPU clock handler (in
    // IRQ context), which therefore never interleave on one CPU.
    let slice = unsafe { &mut *slice };
    let start = slice.start_ns;
    slice.start_ns = now;
    let stats = stats_mut(current_tgid())?;
    // start == 0: the first switch seen on this CPU; the slice's beginning is unknown.
    if start != 0 && now > start {
        stats.oncpu_ns = stats.oncpu_ns.wrapping_add(now - start);
    }
    Some(stats)
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
