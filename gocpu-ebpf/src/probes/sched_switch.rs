//! `sched:sched_switch`: charges the outgoing task's slice and counts its context switch.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

use crate::{
    accounting::{close_slice, now_ns},
    maps::SWITCH_PREV_STATE_OFFSET,
};

/// `TASK_RUNNING`: a task switched out in this state was preempted, not blocked.
const TASK_RUNNING: i64 = 0;

#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    try_sched_switch(&ctx).unwrap_or(0)
}

fn try_sched_switch(ctx: &TracePointContext) -> Result<u32, i32> {
    // At this tracepoint `current` is still the outgoing task, so its tgid is at hand without
    // reading task_struct (no CO-RE needed).
    let Some(stats) = close_slice(now_ns()) else {
        return Ok(0);
    };
    let offset = SWITCH_PREV_STATE_OFFSET.load() as usize;
    // SAFETY: the loader set `offset` from this tracepoint's format; the read is bounds-checked by
    // the helper.
    let prev_state: i64 = unsafe { ctx.read_at(offset)? };
    // Low byte: the task state bits; higher bits (TASK_REPORT_MAX "+") mark preemption.
    if prev_state & 0xff == TASK_RUNNING {
        stats.involuntary_switches = stats.involuntary_switches.wrapping_add(1);
    } else {
        stats.voluntary_switches = stats.voluntary_switches.wrapping_add(1);
    }
    Ok(0)
}
