//! Where a CPU sample's time goes: one [`CpuClass`] per sample, from its symbolized user stack,
//! the CPU mode and whether the thread is one the Go runtime runs.
//!
//! The definitions (also in ARCHITECTURE.md, "CPU classes") are rules over function names,
//! checked in this order — the first that matches decides:
//!
//! 1. **native**: the thread is not a Go M and the sample is outside Go code (a thread started
//!    by C code that the Go runtime does not know).
//! 2. **cgo**: a Go M outside Go code, or any `runtime.cgocall` / `runtime.asmcgocall` frame
//!    (time in C called through cgo).
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
pub mod rules;

use serde::Serialize;

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

/// Classifies one sample.
pub fn classify(s: &SampleView<'_>) -> CpuClass {
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
