//! The function-name rules behind [`super::classify`]. Names as `.gopclntab` spells them;
//! covering Go 1.19 to 1.27 (e.g. `findrunnable` became `findRunnable` in 1.19, the runtime's
//! internal syscall package moved from `runtime/internal/syscall` to `internal/runtime/syscall`).
use super::CpuClass;

/// Exact runtime function names of the garbage collector, as Go's own `/cpu/classes/gc/total`
/// counts it: mark workers, mark assists, and stop-the-world pauses. Write-barrier buffer
/// flushes (the mutator's), sweeping and scavenging are not in it.
const GC_EXACT: &[&str] = &[
    "runtime.gcBgMarkWorker",
    "runtime.gcAssistAlloc",
    "runtime.gcAssistAlloc1",
    "runtime.gcMarkDone",
    "runtime.gcMarkTermination",
    "runtime.gcStart",
    "runtime.gcStopTheWorldWithSema",
    "runtime.stopTheWorldWithSema",
    "runtime.startTheWorldWithSema",
    "runtime.gcFlushBgCredit",
    "runtime.scanobject",
    "runtime.scanblock",
    "runtime.scanstack",
    "runtime.scanframeworker",
];

/// Prefixes of garbage collector functions (families with many variants).
const GC_PREFIX: &[&str] = &[
    "runtime.gcDrain",
    "runtime.markroot",
    "runtime.gcMark",
    "runtime.gcSweep",
    "runtime.gcResetMarkState",
    "runtime.gcBgMarkWorker.",
];

/// cgo call machinery.
const CGO: &[&str] = &[
    "runtime.cgocall",
    "runtime.asmcgocall",
    "runtime.asmcgocall_no_g",
    "runtime.cgocallbackg",
    "runtime.cgocallback",
];

/// Runtime functions that call C through `asmcgocall` for the runtime itself, not for the
/// program: a cgo-linked runtime starts every M with `_cgo_thread_start` (libc's
/// `pthread_create`, and a `malloc` first).
const RUNTIME_C_CALLERS: &[&str] = &["runtime.newm1", "runtime.newm"];

/// Whether `frames` (function names, innermost first; `None` outside Go code) are the runtime
/// calling C for itself: the Go frame after the innermost `asmcgocall` is one of
/// `RUNTIME_C_CALLERS`, and no `runtime.cgocall` is on the stack.
pub fn runtime_c_call(frames: &[Option<&str>]) -> bool {
    let mut names = frames.iter().flatten().copied();
    if frames.iter().flatten().any(|f| *f == "runtime.cgocall") {
        return false;
    }
    names.any(|f| f == "runtime.asmcgocall" || f == "runtime.asmcgocall_no_g")
        && names
            .next()
            .is_some_and(|caller| RUNTIME_C_CALLERS.contains(&caller))
}

/// Slow paths of sync primitives.
const LOCKS: &[&str] = &[
    "sync.(*Mutex).lockSlow",
    "sync.(*Mutex).unlockSlow",
    "internal/sync.(*Mutex).lockSlow",
    "internal/sync.(*Mutex).unlockSlow",
    "sync.(*RWMutex).RLock",
    "sync.(*RWMutex).Lock",
    "sync.runtime_doSpin",
    "internal/sync.runtime_doSpin",
    "sync.runtime_SemacquireMutex",
    "internal/sync.runtime_SemacquireMutex",
    "sync.runtime_SemacquireRWMutex",
    "sync.runtime_SemacquireRWMutexR",
    "sync.runtime_Semrelease",
    "internal/sync.runtime_Semrelease",
    "runtime.semacquire1",
    "runtime.semrelease1",
    "runtime.sync_runtime_doSpin",
    "runtime.internal_sync_runtime_doSpin",
];

/// The scheduler, goroutine switching and channels. The runtime's internal locks (`lock2`,
/// `unlock2`, `procyield`) are deliberately absent: they protect the scheduler, channels, the heap
/// and more, so their time belongs to whoever took the lock (scheduler for a channel operation,
/// the allocating code for the heap lock, GC for the GC's).
const SCHEDULER: &[&str] = &[
    "runtime.schedule",
    "runtime.findRunnable",
    "runtime.findrunnable",
    "runtime.stealWork",
    "runtime.runqgrab",
    "runtime.runqsteal",
    "runtime.park_m",
    "runtime.gosched_m",
    "runtime.goschedImpl",
    "runtime.goexit0",
    "runtime.goexit1",
    "runtime.mcall",
    "runtime.gogo",
    "runtime.gopark",
    "runtime.goready",
    "runtime.ready",
    "runtime.execute",
    "runtime.wakep",
    "runtime.startm",
    "runtime.stopm",
    "runtime.mPark",
    "runtime.handoffp",
    "runtime.checkTimers",
    "runtime.runtimer",
    "runtime.netpoll",
    "runtime.sysmon",
    "runtime.retake",
    "runtime.notesleep",
    "runtime.notewakeup",
    "runtime.notetsleep",
    "runtime.notetsleepg",
    "runtime.selectgo",
    "runtime.selparkcommit",
    "runtime.chansend",
    "runtime.chansend1",
    "runtime.chanrecv",
    "runtime.chanrecv1",
    "runtime.chanrecv2",
    "runtime.closechan",
    "runtime.send",
    "runtime.recv",
    "runtime.selectnbsend",
    "runtime.selectnbrecv",
    "runtime.newproc",
    "runtime.newproc1",
    "runtime.mstart",
    "runtime.mstart0",
    "runtime.mstart1",
    "runtime.mspinning",
    "runtime.resetspinning",
    "runtime.injectglist",
    "runtime.globrunqget",
    "runtime.runqget",
    "runtime.runqput",
    "runtime.gfget",
    "runtime.gfput",
    "runtime.casgstatus",
];

/// Whether `f` is cgo call machinery.
pub fn is_cgo(f: &str) -> bool {
    CGO.contains(&f)
}

/// Whether `f` belongs to the garbage collector.
pub fn is_gc(f: &str) -> bool {
    GC_EXACT.contains(&f) || GC_PREFIX.iter().any(|p| f.starts_with(p))
}

/// Whether `f` is a sync primitive's slow path.
pub fn is_locks(f: &str) -> bool {
    LOCKS.contains(&f)
}

/// Whether `f` is scheduler, switching, channel or runtime-lock machinery.
pub fn is_scheduler(f: &str) -> bool {
    SCHEDULER.contains(&f)
        || f.starts_with("runtime.findRunnable.")
        || f.starts_with("runtime.schedule.")
}

/// The class a syscall-issuing function assigns to the time spent in and around its syscall, or
/// `None` when `f` does not make syscalls itself.
pub fn syscall_wrapper(f: &str) -> Option<CpuClass> {
    match f {
        "runtime.futex" | "runtime.futexsleep" | "runtime.futexwakeup" => Some(CpuClass::Futex),
        "runtime.usleep"
        | "runtime.usleep_no_g"
        | "runtime.osyield"
        | "runtime.osyield_no_g"
        | "runtime.epollwait"
        | "runtime.netpollBreak" => Some(CpuClass::Scheduler),
        "runtime.read"
        | "runtime.write"
        | "runtime.write1"
        | "runtime.open"
        | "runtime.closefd"
        | "runtime.madvise"
        | "runtime.mmap"
        | "runtime.munmap"
        | "runtime.sysMmap"
        | "runtime.sysMunmap"
        | "runtime.clone"
        | "runtime.tgkill"
        | "runtime.exitThread"
        | "runtime.entersyscall"
        | "runtime.exitsyscall"
        | "runtime.entersyscallblock" => Some(CpuClass::Syscall),
        _ => {
            let generic = f.starts_with("syscall.Syscall")
                || f.starts_with("syscall.RawSyscall")
                || f.starts_with("syscall.rawSyscall")
                || f.starts_with("syscall.rawVforkSyscall")
                || f.starts_with("golang.org/x/sys/unix.Syscall")
                || f.starts_with("golang.org/x/sys/unix.RawSyscall")
                || ((f.starts_with("runtime/internal/syscall.")
                    || f.starts_with("internal/runtime/syscall."))
                    && f.contains("Syscall"));
            generic.then_some(CpuClass::Syscall)
        }
    }
}
