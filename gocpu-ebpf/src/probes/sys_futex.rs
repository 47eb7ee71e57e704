//! `syscalls:sys_enter_futex`: every futex(2) of a tracked process, counted by operation; at most
//! one call per CPU every `FUTEX_SAMPLE_INTERVAL_NS` also records its user stack (who in the
//! runtime waits and wakes). A scheduler storm makes hundreds of thousands of futex calls a
//! second: a stack per fixed number of calls would cost the target more than the budget, a stack
//! per time interval costs the same whatever the rate.
use aya_ebpf::programs::TracePointContext;
use gocpu_common::{FutexKey, FutexOp, ProgramId};

use crate::{
    accounting::{
        classic_tracepoint, current, generation, now_ns, stats_mut, syscall_gate_open,
        update_keyed, user_stack,
    },
    maps::{
        FUTEX_CALLERS_0, FUTEX_CALLERS_1, FUTEX_OP_OFFSET, FUTEX_SAMPLE_INTERVAL_NS, FUTEX_TICK,
        STACKS_OFF_0, STACKS_OFF_1,
    },
};

/// The clock is read on one call in this many (per CPU), so the common path stays clock-free.
const CLOCK_EVERY_MASK: u64 = 15;

// Not aya's #[tracepoint]: its entry returns 0 whatever the body says, and 0 hides the
// event from the tracepoint's perf consumers (see `classic_tracepoint`).
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint")]
pub fn sys_enter_futex(raw: *mut core::ffi::c_void) -> u32 {
    let ctx = TracePointContext::new(raw);
    classic_tracepoint(ProgramId::SysFutex, || {
        if !syscall_gate_open() {
            return;
        }
        let task = current();
        let Some(stats) = stats_mut(task.tgid) else {
            return;
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

        let Some(tick) = FUTEX_TICK.get_ptr_mut(0) else {
            return;
        };
        // SAFETY: per-CPU slot; programs do not nest on one CPU.
        let tick = unsafe { &mut *tick };
        tick[0] = tick[0].wrapping_add(1);
        if tick[0] & CLOCK_EVERY_MASK != 0 {
            return;
        }
        let now = now_ns();
        if now < tick[1] {
            return;
        }
        tick[1] = now.wrapping_add(FUTEX_SAMPLE_INTERVAL_NS.load());
        // The sample stands for this process's calls on this CPU since its previous sample here, so
        // per-stack sums estimate all calls.
        let calls = stats.futex_syscalls();
        let weight = calls.wrapping_sub(stats.futex_sampled_syscalls);
        stats.futex_sampled_syscalls = calls;
        // Stack and key go to the same generation's maps: user space empties both together.
        let odd = generation() & 1 != 0;
        let mut key = FutexKey {
            tgid: task.tgid,
            stack: gocpu_common::NO_STACK,
            op: op as u32,
            reserved: 0,
        };
        if odd {
            key.stack = user_stack(&ctx, &STACKS_OFF_1);
            update_keyed(&FUTEX_CALLERS_1, &key, |n| *n = n.wrapping_add(weight));
        } else {
            key.stack = user_stack(&ctx, &STACKS_OFF_0);
            update_keyed(&FUTEX_CALLERS_0, &key, |n| *n = n.wrapping_add(weight));
        }
    })
}
