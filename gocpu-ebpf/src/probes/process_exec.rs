//! `sched:sched_process_exec`: a process runs a new image; user space decides whether it is Go.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use gocpu_common::{EventKind, ProcEvent};

use crate::accounting::{current_pid, current_tgid, emit, now_ns};

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    // After exec the calling task is the thread-group leader: tgid == pid.
    let event = ProcEvent {
        kind: EventKind::Exec as u32,
        tgid: current_tgid(),
        pid: current_pid(),
        reserved: 0,
        ktime_ns: now_ns(),
    };
    emit(&ctx, &event);
    0
}
