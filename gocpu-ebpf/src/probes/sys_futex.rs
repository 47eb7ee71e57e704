//! `syscalls:sys_enter_futex`: every futex(2) of a tracked process, counted by operation; one call
//! in `FUTEX_SAMPLE_MASK + 1` also records its user stack (who in the runtime waits and wakes).
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use gocpu_common::{FutexKey, FutexOp};

use crate::{
    accounting::{current, stats_mut, update_keyed, user_stack},
    maps::{FUTEX_CALLERS, FUTEX_OP_OFFSET, FUTEX_SAMPLE_MASK, FUTEX_TICK, STACKS_OFF},
};

#[tracepoint]
pub fn sys_enter_futex(ctx: TracePointContext) -> u32 {
    let task = current();
    let Some(stats) = stats_mut(task.tgid) else {
        return 0;
    };
    // SAFETY: the loader set the offset from this tracepoint's format; the helper bounds the read.
    let op = unsafe { ctx.read_at::<u64>(FUTEX_OP_OFFSET.load() as usize) }.unwrap_or(u64::MAX);
    let op = FutexOp::classify(op);
    let c = match op {
        FutexOp::Wait => &mut stats.futex_wait_syscalls,
        FutexOp::Wake => &mut stats.futex_wake_syscalls,
        FutexOp::Other => &mut stats.futex_other_syscalls,
    };
    *c = c.wrapping_add(1);

    let mask = FUTEX_SAMPLE_MASK.load();
    let Some(tick) = FUTEX_TICK.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU slot; programs do not nest on one CPU.
    let tick = unsafe {
        *tick = (*tick).wrapping_add(1);
        *tick
    };
    if tick & mask != 0 {
        return 0;
    }
    let key = FutexKey {
        tgid: task.tgid,
        stack: user_stack(&ctx, &STACKS_OFF),
        op: op as u32,
        reserved: 0,
    };
    // Weighted by the sampling period, so per-stack sums estimate all calls.
    let weight = u64::from(mask) + 1;
    update_keyed(&FUTEX_CALLERS, &key, |n| *n = n.wrapping_add(weight));
    0
}
