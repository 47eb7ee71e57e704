//! `syscalls:sys_enter_sched_yield`: Go's runtime.osyield (lock spinning giving up its slice).
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use gocpu_common::ProgramId;

use crate::accounting::{count_call, timed};

#[tracepoint]
pub fn sys_enter_sched_yield(_ctx: TracePointContext) -> u32 {
    timed(ProgramId::SysSchedYield, || {
        count_call(|s| &mut s.sched_yield_syscalls);
        0
    })
}
