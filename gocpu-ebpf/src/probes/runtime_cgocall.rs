//! Uprobe at the entry of `runtime.cgocall`: every call from Go into C. Also proves the calling
//! thread is a Go M (so its time in C is cgo, not a native thread's), and records the Go stack
//! making the call: C code is usually built without frame pointers, so samples inside it cannot
//! be unwound back to Go; user space appends this stack beneath them.
use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use gocpu_common::ProgramId;

use crate::{
    accounting::{count_runtime_call, timed, user_stack},
    maps::STACKS_OFF,
};

#[uprobe]
pub fn runtime_cgocall(ctx: ProbeContext) -> u32 {
    timed(ProgramId::RuntimeCgocall, || {
        if let Some(th) = count_runtime_call(|s| &mut s.cgocall_calls) {
            th.cgo_stack = user_stack(&ctx, &STACKS_OFF);
        }
        0
    })
}
