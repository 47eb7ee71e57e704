//! `sched:sched_process_exec`: a process runs a new image; user space decides whether it is Go.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use gocpu_common::{EventKind, ProcEvent, ProgramId};

use crate::accounting::{current, emit, now_ns, timed};

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    timed(ProgramId::ProcessExec, || {
        // After exec the calling task is the thread-group leader: tgid == pid.
        let task = current();
        let event = ProcEvent {
            kind: EventKind::Exec as u32,
            tgid: task.tgid,
            pid: task.tid,
            reserved: 0,
            ktime_ns: now_ns(),
        };
        emit(&ctx, &event);
        0
    })
}
