//! Where a CPU sample's time goes: one [`CpuClass`] per sample, from its symbolized user stack,
//! the CPU mode and whether the thread is one the Go runtime runs.
//!
//! The definitions (also in ARCHITECTURE.md, "CPU classes") are rules over function names,
//! checked in this order — the first that matches decides:
//!
//! 1. **native**: the thread is not a Go M and the sample is outside Go code (a thread started
//!    by C code that the Go runtime does not know).
//! 2. **cgo**: a Go M outside Go code, or any `runtime.cgocall` / `runtime.asmcgocall` frame
//!    (time in C called through cgo). A Go M outside Go code that the runtime's M list never
//!    showed calling C is **scheduler** instead: the runtime's own libc calls (starting Ms);
//!    decided by the profile, which knows the thread (`model::profile`). So is a stack whose
//!    `asmcgocall` the runtime's `newm1` made, with no `runtime.cgocall` (starting an M: a
//!    `malloc`, then `pthread_create`).
//! 3. **gc**: any frame of the garbage collector's marking (background mark workers, mark
//!    assists, root marking) or of a stop-the-world pause — what Go's own
//!    `/cpu/classes/gc/total` counts. Allocation, write-barrier buffer flushes, sweeping and
//!    scavenging stay with the code they run on behalf of (**user**), as Go counts them.
//! 4. By the innermost runtime syscall wrapper: `runtime.futex` (and futexsleep/futexwakeup)
//!    is **futex**; `runtime.usleep`, `runtime.osyield`, `runtime.epollwait` are **scheduler**
//!    (its spinning and polling); any other syscall entry (`syscall.Syscall*`, the runtime's
//!    internal `Syscall6`, `runtime.read`/`write`, ...) is **syscall**.
//! 5. **locks**: the slow paths of `sync` primitives — mutex spinning, semaphore acquire and
//!    release (time the program spends contending, not working).
//! 6. **scheduler**: the scheduler (`schedule`, `findRunnable`, `stealWork`, `runqgrab`,
//!    `park_m`, `execute`, `wakep`, `startm`, `stopm`, `sysmon`, ...), goroutine switching
//!    (`mcall`, `gogo`, `gopark`, `goready`), and channel and select machinery — runtime
//!    overhead even when a user goroutine's channel operation is what called it. The runtime's
//!    internal lock spinning (`lock2`, `unlock2`, `procyield`) belongs to whoever took the lock:
//!    scheduler under a channel operation, user under the allocator, gc under the collector.
//! 7. **user**: everything else — the program's own code and the libraries it calls.
//!
//! Before the rules, [`attributed_frames`] decides what a stack can say at all:
//!
//! - Code the kernel maps into every process (`[vdso]`, `[vsyscall]`, `[uprobes]`) runs on behalf
//!   of its caller: `runtime.nanotime1` / `walltime` read the clock through the vDSO on the
//!   system stack, a uprobe's out-of-line step runs in `[uprobes]`. Such leaf frames are skipped,
//!   so a clock read belongs to the Go code that asked for the time (the scheduler's timer
//!   checks, `time.Now` in the program), as Go's own profiler counts it.
//! - A signal return trampoline (libc's `__restore_rt`, where a handler installed through libc
//!   returns: every cgo-linked Go program's handlers are) runs for the code the signal
//!   interrupted, whose frames follow it. Skipped too, so that the runtime's preemption signals
//!   in a cgo-linked program read as they do in a pure-Go one (there the trampoline is the
//!   runtime's own Go code). Debian's prometheus, linked with cgo and making no cgo call, showed
//!   a sample of cgo now and then: rt_sigreturn, over runtime.lock2.
//! - A sample with no stack, or only kernel-provided frames, is **unattributed**: it gets no
//!   class, and each poll's on-CPU time is split by the samples that have one. The kernel
//!   gives no stack when `bpf_get_stackid` fails — mostly a bucket collision in the stack map
//!   (`-EEXIST`: a new stack hashing to a bucket another stack of the same poll holds), about
//!   1 sample in 100 on a program with many distinct stacks. Such samples used to fall under
//!   "a Go M outside Go code" and showed programs built with `CGO_ENABLED=0` (a compiler, the
//!   pingpong workload) at 0.3-1.2% cgo; nothing in them says C ran.
pub mod rules;

use serde::Serialize;

use crate::symbolize::{SymFrame, native::SIGNAL_RETURN};

/// Where a unit of CPU time went. Discriminants are stable (metric labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuClass {
    /// The program's own code and the libraries it calls.
    User,
    /// The Go scheduler, goroutine switching, channel machinery, runtime lock spinning.
    Scheduler,
    /// futex(2) traffic: Ms parking and waking.
    Futex,
    /// Other system calls.
    Syscall,
    /// Contention in sync primitives (mutex spinning, semaphores).
    Locks,
    /// The garbage collector (marking, assists, pauses, background sweeping).
    Gc,
    /// C code called through cgo.
    Cgo,
    /// Threads the Go runtime does not know (started by C code).
    Native,
}

impl CpuClass {
    /// Every class, in a stable order.
    pub const ALL: [CpuClass; 8] = [
        CpuClass::User,
        CpuClass::Scheduler,
        CpuClass::Futex,
        CpuClass::Syscall,
        CpuClass::Locks,
        CpuClass::Gc,
        CpuClass::Cgo,
        CpuClass::Native,
    ];

    /// Stable snake_case name (the `class` metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            CpuClass::User => "user",
            CpuClass::Scheduler => "scheduler",
            CpuClass::Futex => "futex",
            CpuClass::Syscall => "syscall",
            CpuClass::Locks => "locks",
            CpuClass::Gc => "gc",
            CpuClass::Cgo => "cgo",
            CpuClass::Native => "native",
        }
    }

    /// Index in [`CpuClass::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What is known about one sample, for classification.
#[derive(Clone, Copy, Debug)]
pub struct SampleView<'a> {
    /// Function names of the user stack, innermost first (inlined frames included, innermost
    /// first within each physical frame); `None` where a frame is outside Go code.
    pub frames: &'a [Option<&'a str>],
    /// Whether the thread is an M of the Go runtime.
    pub go_thread: bool,
}

/// Whether `frame` is code the kernel maps into the process (`[vdso]`, `[vsyscall]`,
/// `[uprobes]`): it runs for its caller and says nothing about the thread's class itself.
pub fn kernel_provided(frame: &SymFrame) -> bool {
    matches!(frame, SymFrame::Native { object: Some(o), .. } if o.starts_with('['))
}

/// Whether `frame` is a signal return trampoline: it runs for the interrupted code below it.
fn signal_return(frame: &SymFrame) -> bool {
    matches!(frame, SymFrame::Native { symbol: Some(s), .. } if &**s == SIGNAL_RETURN)
}

/// The frames a sample is classified by: `frames` (innermost first) without its leading
/// kernel-provided frames and signal return trampoline, or `None` when nothing else is left —
/// the sample is unattributed (see the module docs): no stack was captured, or the walk ended in
/// the vDSO.
pub fn attributed_frames(frames: &[SymFrame]) -> Option<&[SymFrame]> {
    let skip = frames
        .iter()
        .take_while(|f| kernel_provided(f) || signal_return(f))
        .count();
    let rest = &frames[skip..];
    (!rest.is_empty()).then_some(rest)
}

/// The class of a sample with symbolized `frames` (innermost first) on a Go M; `None` when it
/// depends on the thread (no Go frame at all: cgo on an M, native elsewhere) or when the stack
/// is unattributed. Kernel-provided leaf frames ([vdso] clock reads, [uprobes] steps) run on
/// behalf of the Go function that called them.
pub fn classify_frames(frames: &[SymFrame]) -> Option<CpuClass> {
    let rest = attributed_frames(frames)?;
    let names: Vec<Option<&str>> = rest.iter().map(SymFrame::go_function).collect();
    // Whether the thread is a Go M only matters when the stack shows no Go code at all.
    names.iter().any(Option::is_some).then(|| {
        classify(&SampleView {
            frames: &names,
            go_thread: true,
        })
    })
}

/// Classifies one sample.
pub fn classify(s: &SampleView<'_>) -> CpuClass {
    // The runtime starting an M through libc, in or around C: the scheduler's, not a cgo call.
    if rules::runtime_c_call(s.frames) {
        return CpuClass::Scheduler;
    }
    let leaf_in_go = matches!(s.frames.first(), Some(Some(_)));
    if !leaf_in_go {
        let any_go = s.frames.iter().any(Option::is_some);
        return if s.go_thread || any_go {
            CpuClass::Cgo
        } else {
            CpuClass::Native
        };
    }
    let names = || s.frames.iter().flatten().copied();
    if names().any(rules::is_cgo) {
        return CpuClass::Cgo;
    }
    if names().any(rules::is_gc) {
        return CpuClass::Gc;
    }
    if let Some(class) = names().find_map(rules::syscall_wrapper) {
        return class;
    }
    if names().any(rules::is_locks) {
        return CpuClass::Locks;
    }
    if names().any(rules::is_scheduler) {
        return CpuClass::Scheduler;
    }
    CpuClass::User
}

#[cfg(test)]
mod tests;
