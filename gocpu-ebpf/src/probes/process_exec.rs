//! `sched:sched_process_exec`: a process runs a new image; user space decides whether it is Go.
use aya_ebpf::programs::TracePointContext;
use gocpu_common::{EventKind, ProcEvent, ProgramId};

use crate::accounting::{classic_tracepoint, current, emit, now_ns};

// Not aya's #[tracepoint]: its entry returns 0 whatever the body says, and 0 hides the
// event from the tracepoint's perf consumers (see `classic_tracepoint`).
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint")]
pub fn sched_process_exec(raw: *mut core::ffi::c_void) -> u32 {
    let ctx = TracePointContext::new(raw);
    classic_tracepoint(ProgramId::ProcessExec, || {
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
    })
}
