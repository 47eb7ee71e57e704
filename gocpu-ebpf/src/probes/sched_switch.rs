//! `sched:sched_switch`: charges the outgoing task's slice, counts its switch, records where and
//! why it left the CPU; for the incoming task, closes its off-CPU interval (blocked time by
//! blocking stack, runnable wait).
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

use crate::{
    accounting::{
        close_slice, current, existing_thread_mut, now_ns, stats_mut, thread_mut, update_keyed,
        user_frames,
    },
    maps::{OFFCPU, SWITCH_NEXT_PID_OFFSET, SWITCH_PREV_STATE_OFFSET},
};

/// `TASK_RUNNING`: a task switched out in this state was preempted, not blocked.
const TASK_RUNNING: i64 = 0;

#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    let now = now_ns();
    switch_out(&ctx, now);
    switch_in(&ctx, now);
    0
}

fn switch_out(ctx: &TracePointContext, now: u64) {
    // At this tracepoint `current` is still the outgoing task: its ids without task_struct reads.
    let slice = close_slice(now);
    let prev = current();
    let Some(stats) = stats_mut(prev.tgid) else {
        return;
    };
    stats.oncpu_ns = stats.oncpu_ns.wrapping_add(slice);
    // SAFETY: the loader set the offset from this tracepoint's format; the helper bounds the read.
    let Ok(prev_state) = (unsafe { ctx.read_at::<i64>(SWITCH_PREV_STATE_OFFSET.load() as usize) })
    else {
        return;
    };
    // Low byte: the task state bits; higher bits (TASK_REPORT_MAX "+") mark preemption.
    let blocked = prev_state & 0xff != TASK_RUNNING;
    if blocked {
        stats.voluntary_switches = stats.voluntary_switches.wrapping_add(1);
    } else {
        stats.involuntary_switches = stats.involuntary_switches.wrapping_add(1);
    }
    let Some(th) = thread_mut(prev.tid, prev.tgid) else {
        return;
    };
    th.oncpu_ns = th.oncpu_ns.wrapping_add(slice);
    th.off_since_ns = now;
    th.woken_ns = 0;
    th.blocked = u32::from(blocked);
    if blocked {
        th.voluntary_switches = th.voluntary_switches.wrapping_add(1);
        // Where it blocked: the innermost user frame is the runtime's syscall wrapper
        // (runtime.futex, runtime.usleep, runtime.epollwait, syscall.Syscall6, ...), which names
        // the reason. A few frames suffice: a full stack walk would cost a microsecond per switch.
        th.off_depth = user_frames(ctx, &mut th.off_ips);
    } else {
        th.involuntary_switches = th.involuntary_switches.wrapping_add(1);
    }
}

fn switch_in(ctx: &TracePointContext, now: u64) {
    // SAFETY: the loader set the offset from this tracepoint's format; the helper bounds the read.
    let Ok(next) = (unsafe { ctx.read_at::<i32>(SWITCH_NEXT_PID_OFFSET.load() as usize) }) else {
        return;
    };
    let Some(th) = existing_thread_mut(next as u32) else {
        return;
    };
    let since = th.off_since_ns;
    if since == 0 || now <= since {
        return;
    }
    th.off_since_ns = 0;
    let off = now - since;
    let (blocked, waiting) = if th.blocked != 0 {
        // Blocked until woken, then runnable until now.
        let woken = th.woken_ns;
        let waiting = if woken > since && woken < now {
            now - woken
        } else {
            0
        };
        (off - waiting, waiting)
    } else {
        (0, off)
    };
    th.blocked_ns = th.blocked_ns.wrapping_add(blocked);
    th.runq_wait_ns = th.runq_wait_ns.wrapping_add(waiting);
    let tgid = th.tgid;
    if let Some(stats) = stats_mut(tgid) {
        stats.blocked_ns = stats.blocked_ns.wrapping_add(blocked);
        stats.runq_wait_ns = stats.runq_wait_ns.wrapping_add(waiting);
    } else {
        return;
    }
    if blocked > 0 {
        let key = gocpu_common::OffCpuKey {
            tgid,
            depth: th.off_depth,
            ips: th.off_ips,
        };
        update_keyed(&OFFCPU, &key, |v| {
            v.blocked_ns = v.blocked_ns.wrapping_add(blocked);
            v.count = v.count.wrapping_add(1);
        });
    }
}
