//! `sched:sched_wakeup`: a blocked thread of a tracked process became runnable; its runnable
//! wait starts now (closed by sched_switch when it gets a CPU).
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

use crate::{
    accounting::{existing_thread_mut, now_ns, stats_mut},
    maps::WAKEUP_PID_OFFSET,
};

#[tracepoint]
pub fn sched_wakeup(ctx: TracePointContext) -> u32 {
    // SAFETY: the loader set the offset from this tracepoint's format; the helper bounds the read.
    let Ok(tid) = (unsafe { ctx.read_at::<i32>(WAKEUP_PID_OFFSET.load() as usize) }) else {
        return 0;
    };
    let Some(th) = existing_thread_mut(tid as u32) else {
        return 0;
    };
    if th.off_since_ns != 0 {
        th.woken_ns = now_ns();
    }
    if let Some(stats) = stats_mut(th.tgid) {
        stats.wakeups = stats.wakeups.wrapping_add(1);
    }
    0
}
