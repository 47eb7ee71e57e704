//! Uprobe at the entry of `runtime.usleep`: spinning Ms backing off (runqgrab, sysmon), the scheduler's spin signature.
use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use gocpu_common::ProgramId;

use crate::accounting::{count_runtime_call, timed};

#[uprobe]
pub fn runtime_usleep(_ctx: ProbeContext) -> u32 {
    timed(ProgramId::RuntimeUsleep, || {
        let _ = count_runtime_call(|s| &mut s.usleep_calls);
        0
    })
}
