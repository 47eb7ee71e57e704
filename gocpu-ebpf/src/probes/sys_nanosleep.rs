//! `syscalls:sys_enter_nanosleep`: Go's runtime.usleep (spinning Ms backing off, sysmon) counted
//! from a tracepoint, at a fraction of a uprobe's cost.
use aya_ebpf::programs::TracePointContext;
use gocpu_common::ProgramId;

use crate::accounting::{classic_tracepoint, count_syscall};

// Not aya's #[tracepoint]: its entry returns 0 whatever the body says, and 0 hides the
// event from the tracepoint's perf consumers (see `classic_tracepoint`).
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint")]
pub fn sys_enter_nanosleep(raw: *mut core::ffi::c_void) -> u32 {
    let _ctx = TracePointContext::new(raw);
    classic_tracepoint(ProgramId::SysNanosleep, || {
        count_syscall(|s| &mut s.nanosleep_syscalls);
    })
}
