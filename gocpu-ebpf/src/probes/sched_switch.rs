//! Raw tracepoint `sched_switch`: charges the outgoing task's slice, counts its switch, records
//! where and why it left the CPU; for the incoming task, closes its off-CPU interval (blocked
//! time by blocking stack, runnable wait).
//!
//! Raw rather than the classic `sched:sched_switch`: it fires on every context switch of the
//! machine, and the classic tracepoint first builds a ~64-byte record (comm copies included) that
//! costs more than this program's own work. The raw arguments are the task pointers, which key
//! `THREADS`, so nothing of `task_struct` is read.
//!
//! Two entry points for the tracepoint's two signatures; the loader attaches the one the kernel
//! has. The verifier checks a raw tracepoint program's argument reads against the tracepoint's
//! argument count at attach, so one program cannot read `prev_state` only where it exists.
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use gocpu_common::{ProgramId, THREAD_EXITING};

use crate::{
    accounting::{
        close_slice, current, existing_thread_mut, forget_thread, now_ns, orphaned_thread,
        set_slice_owner, stats_mut, thread_mut, timed, update_keyed, user_frames,
    },
    maps::OFFCPU,
};

/// `TASK_DEAD`: the task's final switch; its `task_struct` may be reused for a new task.
const TASK_DEAD: u64 = 0x80;

/// The outgoing task's state is not passed (kernels before 5.18). A sentinel, not an `Option`:
/// BPF calls take at most five register arguments, and an `Option` takes two.
const STATE_UNKNOWN: u64 = u64::MAX;

/// Linux 5.18 and later: `TP_PROTO(bool preempt, struct task_struct *prev,
/// struct task_struct *next, unsigned int prev_state)`.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn sched_switch(ctx: RawTracePointContext) -> u32 {
    timed(ProgramId::SchedSwitch, || {
        let prev_state: u64 = ctx.arg(3);
        switch(&ctx, prev_state & 0xffff_ffff);
        0
    })
}

/// Before Linux 5.18 the tracepoint has no `prev_state`: a switch that is not a preemption
/// counts as blocking (so a `sched_yield`'s wait for the CPU counts as blocked time, not as
/// runnable wait), and a thread's last switch is the first after `sched_process_exit` marked it.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn sched_switch_pre_5_18(ctx: RawTracePointContext) -> u32 {
    timed(ProgramId::SchedSwitchPre518, || {
        switch(&ctx, STATE_UNKNOWN);
        0
    })
}

/// One switch from `prev` to `next`; `state` is the outgoing task's state, or
/// [`STATE_UNKNOWN`].
fn switch(ctx: &RawTracePointContext, state: u64) {
    let preempt: u64 = ctx.arg(0);
    let prev: u64 = ctx.arg(1);
    let next: u64 = ctx.arg(2);
    let now = now_ns();
    switch_out(ctx, now, prev, preempt & 1 != 0, state);
    set_slice_owner(switch_in(next, now));
}

fn switch_out(ctx: &RawTracePointContext, now: u64, prev: u64, preempt: bool, state: u64) {
    // At this tracepoint `current` is still the outgoing task: its ids without task_struct reads.
    let slice = close_slice(now);
    let task = current();
    let dead = state != STATE_UNKNOWN && state & TASK_DEAD != 0;
    if dead {
        // Its last switch: the entry must go before the task_struct is reused, whether or not
        // its process is still tracked (rare next to switches: one delete per thread exit).
        forget_thread(prev);
    }
    let Some(stats) = stats_mut(task.tgid) else {
        return;
    };
    stats.oncpu_ns = stats.oncpu_ns.wrapping_add(slice);
    // Preempted, or yielding with its state still TASK_RUNNING (0): runnable, not blocked.
    let blocked = !preempt && state != 0;
    if blocked {
        stats.voluntary_switches = stats.voluntary_switches.wrapping_add(1);
    } else {
        stats.involuntary_switches = stats.involuntary_switches.wrapping_add(1);
    }
    if dead {
        return;
    }
    let Some(th) = thread_mut(prev, task) else {
        return;
    };
    if th.flags & THREAD_EXITING != 0 {
        // Past sched_process_exit: without the task's state, its last switch as far as can be
        // told; the entry goes before the task_struct is reused.
        forget_thread(prev);
        return;
    }
    th.oncpu_ns = th.oncpu_ns.wrapping_add(slice);
    th.off_since_ns = now;
    th.woken_ns = 0;
    th.blocked = u32::from(blocked);
    if blocked {
        th.voluntary_switches = th.voluntary_switches.wrapping_add(1);
        // Where it blocked: the innermost user frame is the runtime's syscall wrapper
        // (runtime.futex, runtime.usleep, runtime.epollwait, syscall.Syscall6, ...), which names
        // the reason. A few frames suffice: a full stack walk would cost a microsecond per switch.
        th.off_depth = user_frames(ctx, &mut th.off_ips);
    } else {
        th.involuntary_switches = th.involuntary_switches.wrapping_add(1);
    }
}

/// Closes the incoming task's off-CPU interval; returns its process (0: not a known thread of a
/// tracked process), the owner of the slice it starts.
fn switch_in(next: u64, now: u64) -> u32 {
    let Some(th) = existing_thread_mut(next) else {
        return 0;
    };
    let tgid = th.tgid;
    let since = th.off_since_ns;
    if since == 0 || now <= since {
        return tgid;
    }
    th.off_since_ns = 0;
    let off = now - since;
    let (blocked, waiting) = if th.blocked != 0 {
        // Blocked until woken, then runnable until now.
        let woken = th.woken_ns;
        let waiting = if woken > since && woken < now {
            now - woken
        } else {
            0
        };
        (off - waiting, waiting)
    } else {
        (0, off)
    };
    th.blocked_ns = th.blocked_ns.wrapping_add(blocked);
    th.runq_wait_ns = th.runq_wait_ns.wrapping_add(waiting);
    let Some(stats) = stats_mut(tgid) else {
        // The entry was made while its process was tracked; user space removed the process
        // meanwhile (untracked, or exited) before deleting the entry.
        orphaned_thread(next);
        return 0;
    };
    stats.blocked_ns = stats.blocked_ns.wrapping_add(blocked);
    stats.runq_wait_ns = stats.runq_wait_ns.wrapping_add(waiting);
    if blocked > 0 {
        let key = gocpu_common::OffCpuKey {
            tgid,
            depth: th.off_depth,
            ips: th.off_ips,
        };
        update_keyed(&OFFCPU, &key, |v| {
            v.blocked_ns = v.blocked_ns.wrapping_add(blocked);
            v.count = v.count.wrapping_add(1);
        });
    }
    tgid
}
