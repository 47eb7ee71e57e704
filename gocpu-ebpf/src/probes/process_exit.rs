//! `sched:sched_process_exit`: a thread of a tracked process is exiting (its `THREADS` entry is
//! marked, to be dropped at its last switch); the last one ends the process.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use aya_log_ebpf::warn;
use gocpu_common::{EventKind, ProcEvent, ProgramId, THREAD_EXITING};

use crate::{
    accounting::{current, current_task, emit, existing_thread_mut, now_ns, stats_mut, timed},
    maps::EXIT_GROUP_DEAD_OFFSET,
};

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    timed(ProgramId::ProcessExit, || {
        let task = current();
        let tgid = task.tgid;
        // Only tracked processes matter; thread exits are far more frequent than process exits.
        if stats_mut(tgid).is_none() {
            return 0;
        }
        if let Some(th) = existing_thread_mut(current_task()) {
            th.flags |= THREAD_EXITING;
        }
        let pid = task.tid;
        if !group_dead(&ctx, tgid, pid) {
            return 0;
        }
        let event = ProcEvent {
            kind: EventKind::Exit as u32,
            tgid,
            pid,
            reserved: 0,
            ktime_ns: now_ns(),
        };
        emit(&ctx, &event);
        0
    })
}

/// Whether this exit ends the whole thread group. Kernels with the `group_dead` field say so
/// exactly; older ones only let us approximate with the leader's exit (user space confirms
/// through procfs either way).
fn group_dead(ctx: &TracePointContext, tgid: u32, pid: u32) -> bool {
    let offset = EXIT_GROUP_DEAD_OFFSET.load() as usize;
    if offset == 0 {
        return tgid == pid;
    }
    // SAFETY: the loader set `offset` from this tracepoint's format; the helper bounds the read.
    match unsafe { ctx.read_at::<u8>(offset) } {
        Ok(v) => v != 0,
        Err(e) => {
            // Rare (process exits only) and a sign of a wrong layout: worth a diagnostic.
            warn!(
                ctx,
                "sched_process_exit: group_dead unreadable at {}: {}", offset, e
            );
            tgid == pid
        }
    }
}
