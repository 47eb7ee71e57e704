//! Uprobe at the entry of `runtime.cgocall`: every call from Go into C; also proves the calling
//! thread is a Go M (so its time in C is cgo, not a native thread's).
use aya_ebpf::{macros::uprobe, programs::ProbeContext};

use crate::accounting::count_runtime_call;

#[uprobe]
pub fn runtime_cgocall(_ctx: ProbeContext) -> u32 {
    count_runtime_call(|s| &mut s.cgocall_calls);
    0
}
