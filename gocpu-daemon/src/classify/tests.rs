//! Classification of stacks as they appear in real Go programs (function names from Go 1.19 to
//! 1.27 binaries, innermost first).
use std::sync::Arc;

use super::{CpuClass, SampleView, attributed_frames, classify, classify_frames};
use crate::symbolize::SymFrame;

fn class(frames: &[&str]) -> CpuClass {
    let f: Vec<Option<&str>> = frames
        .iter()
        .map(|s| if *s == "?" { None } else { Some(*s) })
        .collect();
    classify(&SampleView {
        frames: &f,
        go_thread: true,
    })
}

#[test]
fn own_code_and_libraries_are_user() {
    assert_eq!(
        class(&["main.hashLoop", "main.worker", "runtime.goexit"]),
        CpuClass::User
    );
    assert_eq!(
        class(&[
            "crypto/sha256.block",
            "crypto/sha256.(*digest).Write",
            "main.work"
        ]),
        CpuClass::User
    );
    // Allocation and the sweeping it does are the allocating code's, as Go counts them.
    assert_eq!(
        class(&[
            "runtime.sweepone",
            "runtime.deductSweepCredit",
            "runtime.mallocgc",
            "main.alloc"
        ]),
        CpuClass::User
    );
}

#[test]
fn scheduler_storm_frames_are_scheduler() {
    for stack in [
        &[
            "runtime.procyield",
            "runtime.lock2",
            "runtime.selectgo",
            "main.ping",
        ][..],
        &[
            "runtime.runqgrab",
            "runtime.runqsteal",
            "runtime.stealWork",
            "runtime.findRunnable",
            "runtime.schedule",
            "runtime.park_m",
            "runtime.mcall",
        ],
        &[
            "runtime.findrunnable",
            "runtime.schedule",
            "runtime.goschedImpl",
        ],
        &[
            "runtime.usleep",
            "runtime.runqgrab",
            "runtime.stealWork",
            "runtime.findRunnable",
        ],
        &[
            "runtime.mcall",
            "runtime.gopark",
            "runtime.chanrecv",
            "main.pong",
        ],
        &[
            "runtime.epollwait",
            "runtime.netpoll",
            "runtime.findRunnable",
        ],
        &[
            "runtime.sysmon",
            "runtime.mstart1",
            "runtime.mstart0",
            "runtime.mstart",
        ],
    ] {
        assert_eq!(class(stack), CpuClass::Scheduler, "{stack:?}");
    }
}

#[test]
fn runtime_locks_belong_to_their_taker() {
    assert_eq!(
        class(&[
            "runtime.procyield",
            "runtime.lock2",
            "runtime.chansend",
            "main.ping"
        ]),
        CpuClass::Scheduler
    );
    assert_eq!(
        class(&[
            "runtime.lock2",
            "runtime.(*mheap).alloc",
            "runtime.(*mcentral).grow",
            "runtime.mallocgc",
            "main.alloc"
        ]),
        CpuClass::User
    );
    assert_eq!(
        class(&[
            "runtime.unlock2",
            "runtime.gcDrain",
            "runtime.gcBgMarkWorker"
        ]),
        CpuClass::Gc
    );
}

#[test]
fn futex_time_is_futex_even_under_the_scheduler() {
    assert_eq!(
        class(&[
            "runtime.futex",
            "runtime.futexwakeup",
            "runtime.notewakeup",
            "runtime.startm",
            "runtime.wakep",
            "runtime.ready",
            "runtime.chansend",
            "main.ping"
        ]),
        CpuClass::Futex
    );
    assert_eq!(
        class(&[
            "runtime.futex",
            "runtime.notesleep",
            "runtime.mPark",
            "runtime.stopm",
            "runtime.findRunnable"
        ]),
        CpuClass::Futex
    );
}

#[test]
fn syscalls_by_wrapper() {
    for stack in [
        &[
            "syscall.Syscall",
            "syscall.read",
            "os.(*File).Read",
            "main.loop",
        ][..],
        &[
            "internal/runtime/syscall.Syscall6",
            "syscall.Syscall",
            "syscall.write",
        ],
        &[
            "runtime/internal/syscall.Syscall6",
            "syscall.RawSyscall6",
            "syscall.Syscall",
        ],
        &["syscall.RawSyscall6", "syscall.RawSyscall"],
        &["runtime.write1", "runtime.write", "runtime.netpollBreak2"],
    ] {
        assert_eq!(class(stack), CpuClass::Syscall, "{stack:?}");
    }
}

#[test]
fn gc_wins_over_what_it_calls_and_what_calls_it() {
    assert_eq!(
        class(&[
            "runtime.scanobject",
            "runtime.gcDrainMarkWorkerDedicated",
            "runtime.gcBgMarkWorker.func2",
            "runtime.systemstack",
            "runtime.gcBgMarkWorker"
        ]),
        CpuClass::Gc
    );
    // A mark assist inside an allocation is GC, not the allocating code.
    assert_eq!(
        class(&[
            "runtime.greyobject",
            "runtime.scanobject",
            "runtime.gcDrainN",
            "runtime.gcAssistAlloc1",
            "runtime.gcAssistAlloc",
            "runtime.mallocgc",
            "main.alloc"
        ]),
        CpuClass::Gc
    );
    // GC workers taking runtime locks and futexes still count as GC.
    assert_eq!(
        class(&["runtime.futex", "runtime.futexwakeup", "runtime.gcMarkDone"]),
        CpuClass::Gc
    );
    assert_eq!(
        class(&["runtime.markroot", "runtime.gcDrain"]),
        CpuClass::Gc
    );
    // What Go itself does not count as GC: the mutator's write-barrier flush, sweeping.
    assert_eq!(
        class(&[
            "runtime.greyobject",
            "runtime.wbBufFlush1",
            "runtime.wbBufFlush",
            "main.link"
        ]),
        CpuClass::User
    );
    assert_eq!(
        class(&["runtime.sweepone", "runtime.bgsweep"]),
        CpuClass::User
    );
}

#[test]
fn cgo_and_native() {
    assert_eq!(
        class(&[
            "?",
            "?",
            "runtime.asmcgocall",
            "runtime.cgocall",
            "main._Cfunc_spin"
        ]),
        CpuClass::Cgo
    );
    assert_eq!(
        class(&["runtime.asmcgocall", "runtime.cgocall"]),
        CpuClass::Cgo
    );
    // The runtime starting an M through libc (a malloc under _cgo_thread_start): not a cgo call.
    assert_eq!(
        class(&[
            "?",
            "?",
            "runtime.asmcgocall",
            "runtime.newm1",
            "runtime.newm",
            "runtime.startm"
        ]),
        CpuClass::Scheduler
    );
    assert_eq!(
        class(&["runtime.asmcgocall", "runtime.newm", "runtime.startm"]),
        CpuClass::Scheduler
    );
    // The program's cgo call, even one an M start is somewhere below: cgo.
    assert_eq!(
        class(&[
            "?",
            "runtime.asmcgocall",
            "runtime.cgocall",
            "runtime.newm1"
        ]),
        CpuClass::Cgo
    );
    assert_eq!(
        class(&[
            "?",
            "runtime.asmcgocall",
            "main._Cfunc_spin",
            "runtime.newm1"
        ]),
        CpuClass::Cgo
    );
    // Outside Go code on a Go M, with a broken frame chain: still cgo.
    assert_eq!(class(&["?"]), CpuClass::Cgo);
    let f = [None, None];
    assert_eq!(
        classify(&SampleView {
            frames: &f,
            go_thread: false
        }),
        CpuClass::Native
    );
    assert_eq!(
        classify(&SampleView {
            frames: &[],
            go_thread: false
        }),
        CpuClass::Native
    );
}

#[test]
fn sync_contention_is_locks() {
    assert_eq!(
        class(&[
            "runtime.procyield",
            "sync.runtime_doSpin",
            "sync.(*Mutex).lockSlow",
            "sync.(*Mutex).Lock",
            "main.worker"
        ]),
        CpuClass::Locks
    );
    assert_eq!(
        class(&[
            "runtime.procyield",
            "internal/sync.runtime_doSpin",
            "internal/sync.(*Mutex).lockSlow",
            "sync.(*Mutex).Lock"
        ]),
        CpuClass::Locks
    );
    assert_eq!(
        class(&[
            "runtime.lock2",
            "runtime.semacquire1",
            "sync.runtime_SemacquireMutex",
            "sync.(*Mutex).lockSlow"
        ]),
        CpuClass::Locks
    );
}

#[test]
fn labels_are_stable_and_indexed() {
    for (i, c) in CpuClass::ALL.iter().enumerate() {
        assert_eq!(c.index(), i);
    }
    assert_eq!(CpuClass::Gc.as_str(), "gc");
}

/// Symbolized frames, innermost first: `[obj]+off` names a native frame in object `obj` (no
/// symbol), `obj!sym` one with an ELF symbol, anything else a Go function.
fn sym(frames: &[&str]) -> Vec<SymFrame> {
    frames
        .iter()
        .map(|f| {
            if let Some((object, symbol)) = f.split_once('!') {
                SymFrame::Native {
                    object: Some(Arc::from(object)),
                    offset: 0x1000,
                    symbol: Some(Arc::from(symbol)),
                }
            } else if let Some((object, _)) = f.split_once('+') {
                SymFrame::Native {
                    object: Some(Arc::from(object)),
                    offset: 0xb66,
                    symbol: None,
                }
            } else {
                SymFrame::Go {
                    function: Arc::from(*f),
                    file: Arc::from("x.go"),
                    line: 1,
                    inlined: false,
                }
            }
        })
        .collect()
}

/// What a pure-Go program's samples looked like where the cgo class used to show 0.3-1.2%:
/// the stack capture failed (no frames) in about 1 sample in 100.
#[test]
fn a_sample_without_a_stack_is_unattributed_not_cgo() {
    assert_eq!(attributed_frames(&[]), None);
    assert_eq!(classify_frames(&[]), None);
    // A walk that ended in the vDSO says nothing about its caller either.
    let vdso = sym(&["[vdso]+0xb66"]);
    assert!(attributed_frames(&vdso).is_none());
    assert_eq!(classify_frames(&vdso), None);
}

/// Clock reads through the vDSO (runtime.nanotime1 / walltime switch to the system stack and call
/// `clock_gettime` there) take the class of the Go code reading the clock, as Go counts them.
#[test]
fn clock_reads_in_the_vdso_belong_to_their_go_caller() {
    // Frames as the daemon symbolized them from pingpong (Go 1.25, CGO_ENABLED=0).
    assert_eq!(
        classify_frames(&sym(&[
            "[vdso]+0xb1f",
            "runtime.nanotime1",
            "runtime.nanotime",
            "runtime.(*timers).check",
            "runtime.findRunnable",
            "runtime.schedule",
            "runtime.park_m",
            "runtime.mcall",
        ])),
        Some(CpuClass::Scheduler)
    );
    assert_eq!(
        classify_frames(&sym(&[
            "[vdso]+0xbb4",
            "runtime.nanotime1",
            "runtime.nanotime",
            "runtime.casgstatus",
            "runtime.execute",
        ])),
        Some(CpuClass::Scheduler)
    );
    // time.Now in the program's own loop is the program's.
    assert_eq!(
        classify_frames(&sym(&[
            "[vdso]+0xa40",
            "runtime.walltime",
            "time.now",
            "time.Now",
            "main.hashLoop",
        ])),
        Some(CpuClass::User)
    );
    // A uprobe's out-of-line step runs for the probed function.
    assert_eq!(
        classify_frames(&sym(&[
            "[uprobes]+0x0",
            "runtime.futex",
            "runtime.futexsleep"
        ])),
        Some(CpuClass::Futex)
    );
}

/// A cgo-linked program's signal handlers return through libc's `__restore_rt`; a thread sampled
/// in rt_sigreturn is still running the code the signal interrupted. Frames as the daemon
/// symbolized them from a cgo-linked Go 1.19 program that makes no cgo call.
#[test]
fn a_signal_return_belongs_to_the_interrupted_code() {
    let interrupted = |leaf: &str| {
        classify_frames(&sym(&[
            leaf,
            "runtime.lock2",
            "runtime.lockWithRank",
            "runtime.lock",
            "runtime.(*scavengerState).sleep",
            "runtime.bgscavenge",
        ]))
    };
    assert_eq!(interrupted("libc.so.6!__restore_rt"), Some(CpuClass::User));
    // Any other C leaf over Go frames is C called from Go.
    assert_eq!(
        interrupted("libc.so.6!pthread_sigmask"),
        Some(CpuClass::Cgo)
    );
    // In the program's own code, it is the program's.
    assert_eq!(
        classify_frames(&sym(&["libc.so.6!__restore_rt", "main.hashLoop"])),
        Some(CpuClass::User)
    );
    // Nothing below it: nothing to attribute.
    assert_eq!(classify_frames(&sym(&["libc.so.6!__restore_rt"])), None);
}

/// Real C keeps its classes: the stack's class is left to the thread (cgo on a Go M, native on a
/// C thread) and the ingest appends the Go stack of the thread's last cgo call when it has one.
#[test]
fn c_frames_are_still_cgo_or_native() {
    let spin = sym(&[
        "cgospin!gocpu_cgo_spin",
        "cgospin!_cgo_1a2b_Cfunc_gocpu_cgo_spin",
    ]);
    assert!(attributed_frames(&spin).is_some());
    assert_eq!(classify_frames(&spin), None);
    // Broken walk out of C, then the appended cgocall stack.
    assert_eq!(
        classify_frames(&sym(&[
            "cgospin!gocpu_cgo_spin",
            "runtime.asmcgocall",
            "runtime.cgocall",
            "main._Cfunc_gocpu_cgo_spin",
            "main.spinner",
        ])),
        Some(CpuClass::Cgo)
    );
    // A C thread's own clock read is C's, whatever the vDSO frame.
    let native = sym(&[
        "[vdso]+0xb1f",
        "libc.so.6!clock_gettime",
        "nativespin!gocpu_native_spin",
    ]);
    assert_eq!(attributed_frames(&native).map(<[_]>::len), Some(2));
    assert_eq!(classify_frames(&native), None);
}
