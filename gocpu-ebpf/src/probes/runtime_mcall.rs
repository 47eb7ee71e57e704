//! Uprobe at the entry of `runtime.mcall`: a goroutine switching to g0 to park, yield or exit.
use aya_ebpf::{macros::uprobe, programs::ProbeContext};

use crate::accounting::count_runtime_call;

#[uprobe]
pub fn runtime_mcall(_ctx: ProbeContext) -> u32 {
    let _ = count_runtime_call(|s| &mut s.mcall_calls);
    0
}
