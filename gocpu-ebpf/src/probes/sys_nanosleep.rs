//! `syscalls:sys_enter_nanosleep`: Go's runtime.usleep (spinning Ms backing off, sysmon) counted
//! from a tracepoint, at a fraction of a uprobe's cost.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use gocpu_common::ProgramId;

use crate::accounting::{count_call, timed};

#[tracepoint]
pub fn sys_enter_nanosleep(_ctx: TracePointContext) -> u32 {
    timed(ProgramId::SysNanosleep, || {
        count_call(|s| &mut s.nanosleep_syscalls);
        0
    })
}
