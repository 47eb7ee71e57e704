//! Uprobe at the entry of `runtime.futex`: every futex wait and wake the Go runtime makes (Ms parking and waking).
use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use gocpu_common::ProgramId;

use crate::accounting::{count_runtime_call, timed};

#[uprobe]
pub fn runtime_futex(_ctx: ProbeContext) -> u32 {
    timed(ProgramId::RuntimeFutex, || {
        let _ = count_runtime_call(|s| &mut s.futex_calls);
        0
    })
}
