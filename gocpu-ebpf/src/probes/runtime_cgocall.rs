//! Uprobe at the entry of `runtime.cgocall`: every call from Go into C. Also proves the calling
//! thread is a Go M (so its time in C is cgo, not a native thread's), and records the Go stack
//! making the call: C code is usually built without frame pointers, so samples inside it cannot
//! be unwound back to Go; user space appends this stack beneath them.
use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use gocpu_common::ProgramId;

use crate::{
    accounting::{count_runtime_call, generation, timed, user_stack},
    maps::{STACKS_OFF_0, STACKS_OFF_1},
};

#[uprobe]
pub fn runtime_cgocall(ctx: ProbeContext) -> u32 {
    timed(ProgramId::RuntimeCgocall, || {
        if let Some(th) = count_runtime_call(|s| &mut s.cgocall_calls) {
            // The id is only meaningful with its generation: user space resolves it to frames
            // when that generation is drained, before its stack map is emptied.
            let generation = generation();
            let stack = if generation & 1 != 0 {
                user_stack(&ctx, &STACKS_OFF_1)
            } else {
                user_stack(&ctx, &STACKS_OFF_0)
            };
            // Generation first: a reader that catches the entry between the two stores sees
            // the new generation with the old id, which it leaves for a later drain, never an
            // id paired with the wrong generation's map.
            // SAFETY: both point into the thread's entry, valid for the program's duration.
            unsafe {
                core::ptr::write_volatile(&mut th.cgo_gen, generation);
                core::ptr::write_volatile(&mut th.cgo_stack, stack);
            }
        }
        0
    })
}
