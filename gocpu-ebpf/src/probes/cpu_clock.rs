//! perf_event on the CPU clock of every CPU: closes the running slice (so a thread that never
//! leaves its CPU is charged within one period) and, for tracked processes, takes a sample: the
//! user stack and whether the CPU was in kernel mode, aggregated in kernel.
use aya_ebpf::{EbpfContext, macros::perf_event, programs::PerfEventContext};
use gocpu_common::{ProgramId, SAMPLE_KERNEL, SampleKey};

use crate::{
    accounting::{
        close_slice, current, current_task, existing_thread_mut, generation, now_ns, stats_mut,
        timed, update_keyed, user_stack,
    },
    maps::{CPU_SAMPLES_0, CPU_SAMPLES_1, SAMPLE_STACKS, STACKS_CPU_0, STACKS_CPU_1},
};

/// Index of `cs` in x86-64 `struct pt_regs` (the start of `bpf_perf_event_data`).
const PT_REGS_CS: usize = 17;

#[perf_event]
pub fn cpu_clock(ctx: PerfEventContext) -> u32 {
    timed(ProgramId::CpuClock, || {
        let slice = close_slice(now_ns());
        let task = current();
        let Some(stats) = stats_mut(task.tgid) else {
            return 0;
        };
        stats.oncpu_ns = stats.oncpu_ns.wrapping_add(slice);
        stats.samples = stats.samples.wrapping_add(1);
        // SAFETY: perf_event programs may read their context's registers; `cs` is within it.
        let cs = unsafe { *ctx.as_ptr().cast::<u64>().add(PT_REGS_CS) };
        let kernel = cs & 3 != 3;
        if kernel {
            stats.samples_kernel = stats.samples_kernel.wrapping_add(1);
        }
        if let Some(th) = existing_thread_mut(current_task()) {
            th.oncpu_ns = th.oncpu_ns.wrapping_add(slice);
        }
        // Stack and sample go to the same generation's maps: user space empties both together.
        let odd = generation() & 1 != 0;
        let stack = if SAMPLE_STACKS.load() == 0 {
            gocpu_common::NO_STACK
        } else if odd {
            // With the CPU in kernel mode the user stack is still what the thread was doing: the
            // runtime's syscall wrapper at its leaf names the syscall.
            user_stack(&ctx, &STACKS_CPU_1)
        } else {
            user_stack(&ctx, &STACKS_CPU_0)
        };
        let key = SampleKey {
            tgid: task.tgid,
            tid: task.tid,
            stack,
            flags: if kernel { SAMPLE_KERNEL } else { 0 },
        };
        if odd {
            update_keyed(&CPU_SAMPLES_1, &key, |n| *n = n.wrapping_add(1));
        } else {
            update_keyed(&CPU_SAMPLES_0, &key, |n| *n = n.wrapping_add(1));
        }
        0
    })
}
