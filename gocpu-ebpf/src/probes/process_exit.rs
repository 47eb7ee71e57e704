//! `sched:sched_process_exit`: a thread of a tracked process is exiting (its `THREADS` entry is
//! marked, to be dropped at its last switch); the last one ends the process.
use aya_ebpf::programs::TracePointContext;
use aya_log_ebpf::warn;
use gocpu_common::{EventKind, ProcEvent, ProgramId, THREAD_EXITING};

use crate::{
    accounting::{
        classic_tracepoint, current, current_task, emit, existing_thread_mut, now_ns, stats_mut,
    },
    maps::EXIT_GROUP_DEAD_OFFSET,
};

// Not aya's #[tracepoint]: its entry returns 0 whatever the body says, and 0 hides the
// event from the tracepoint's perf consumers (see `classic_tracepoint`).
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint")]
pub fn sched_process_exit(raw: *mut core::ffi::c_void) -> u32 {
    let ctx = TracePointContext::new(raw);
    classic_tracepoint(ProgramId::ProcessExit, || {
        let task = current();
        let tgid = task.tgid;
        // Only tracked processes matter; thread exits are far more frequent than process exits.
        if stats_mut(tgid).is_none() {
            return;
        }
        if let Some(th) = existing_thread_mut(current_task()) {
            th.flags |= THREAD_EXITING;
        }
        let pid = task.tid;
        if !group_dead(&ctx, tgid, pid) {
            return;
        }
        let event = ProcEvent {
            kind: EventKind::Exit as u32,
            tgid,
            pid,
            reserved: 0,
            ktime_ns: now_ns(),
        };
        emit(&ctx, &event);
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
