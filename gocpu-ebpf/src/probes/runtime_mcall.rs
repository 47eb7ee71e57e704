//! Uprobe at the entry of `runtime.mcall`: a goroutine switching to g0 to park, yield or exit.
use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use gocpu_common::ProgramId;

use crate::accounting::{count_runtime_call, timed};

#[uprobe]
pub fn runtime_mcall(_ctx: ProbeContext) -> u32 {
    timed(ProgramId::RuntimeMcall, || {
        let _ = count_runtime_call(|s| &mut s.mcall_calls);
        0
    })
}
