//! Raw tracepoint `sched_wakeup`: a blocked thread of a tracked process became runnable; its
//! runnable wait starts now (closed by sched_switch when it gets a CPU). Raw for the reason
//! given in `sched_switch`: its argument is the woken task's pointer, the `THREADS` key.
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use gocpu_common::ProgramId;

use crate::accounting::{existing_thread_mut, now_ns, orphaned_thread, stats_mut, timed};

#[raw_tracepoint(tracepoint = "sched_wakeup")]
pub fn sched_wakeup(ctx: RawTracePointContext) -> u32 {
    timed(ProgramId::SchedWakeup, || {
        // TP_PROTO(struct task_struct *p)
        let task: u64 = ctx.arg(0);
        let Some(th) = existing_thread_mut(task) else {
            return 0;
        };
        if th.off_since_ns != 0 {
            th.woken_ns = now_ns();
        }
        match stats_mut(th.tgid) {
            Some(stats) => stats.wakeups = stats.wakeups.wrapping_add(1),
            // Made while its process was tracked; the process has left `PROCS` since.
            None => orphaned_thread(task),
        }
        0
    })
}
