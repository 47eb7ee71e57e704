//! Thread roles: what each thread of a Go process is doing, inferred from its samples (classes
//! and functions) and from where it blocks.
use std::sync::Arc;

use serde::Serialize;

use crate::{
    classify::CpuClass,
    model::profile::{CLASSES, Stack},
    symbolize::SymFrame,
};

/// What a thread is, as far as its samples and blocking points tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadRole {
    /// The runtime's system monitor (runtime.sysmon).
    Sysmon,
    /// Mostly running the garbage collector (mark workers, assists).
    GcWorker,
    /// An M spinning in the scheduler looking for work (findRunnable, stealWork).
    SpinningM,
    /// An M parked on a futex with nothing to run.
    IdleM,
    /// An M running the program's Go code.
    RunningGo,
    /// An M in C code called through cgo (or locked to such a thread).
    Cgo,
    /// Blocked in a system call most of the time.
    Syscall,
    /// A thread the Go runtime does not know (started by C code).
    Native,
    /// Not enough evidence yet.
    Unknown,
}

/// Evidence about one thread.
#[derive(Clone, Debug, Default)]
pub struct ThreadEvidence {
    /// Samples per class over the window.
    pub classes: [u64; CLASSES],
    /// Whether the thread is known to be a Go M.
    pub go_thread: bool,
    /// Where it last blocked (innermost frames), if it did.
    pub blocked_at: Option<Arc<Stack>>,
    /// Whether the samples show runtime.sysmon.
    pub saw_sysmon: bool,
    /// Whether the samples show the scheduler looking for work (findRunnable and below).
    pub saw_find_runnable: bool,
    /// What the runtime's own M list says about this thread, when readable.
    pub m: Option<MState>,
}

/// The runtime's view of a thread, from its M list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MState {
    /// Not in the runtime's M list (read successfully): a thread started by C code.
    NotAnM,
    /// An M.
    M {
        /// Spinning for work.
        spinning: bool,
        /// Inside a cgo call.
        incgo: bool,
        /// Parked with neither a P nor a goroutine.
        idle: bool,
    },
}

fn innermost_go(stack: &Stack) -> Option<&str> {
    stack.frames.iter().find_map(SymFrame::go_function)
}

/// Infers the role of a thread from `e`: the runtime's own M list first, then samples and the
/// place it blocks.
pub fn role(e: &ThreadEvidence) -> ThreadRole {
    // Sampled in runtime.sysmon, or blocked under it (in usleep between checks, or in a futex
    // while the world is stopped): the sampler seldom catches sysmon on CPU.
    let blocked_in_sysmon = e.blocked_at.as_deref().is_some_and(|s| {
        s.frames
            .iter()
            .filter_map(SymFrame::go_function)
            .any(|f| f == "runtime.sysmon")
    });
    if e.saw_sysmon || blocked_in_sysmon {
        return ThreadRole::Sysmon;
    }
    match e.m {
        Some(MState::NotAnM) => return ThreadRole::Native,
        Some(MState::M { incgo: true, .. }) => return ThreadRole::Cgo,
        Some(MState::M { spinning: true, .. }) => return ThreadRole::SpinningM,
        Some(MState::M { idle: true, .. }) if e.classes.iter().sum::<u64>() == 0 => {
            return ThreadRole::IdleM;
        }
        _ => {}
    }
    let total: u64 = e.classes.iter().sum();
    if total == 0 {
        // Never on CPU in the window: judge by where it sleeps.
        let Some(stack) = &e.blocked_at else {
            // Neither sampled nor seen blocking since tracking began (e.g. asleep throughout).
            return ThreadRole::Unknown;
        };
        return match innermost_go(stack) {
            Some("runtime.futex" | "runtime.futexsleep") => ThreadRole::IdleM,
            Some("runtime.usleep") => ThreadRole::Sysmon,
            Some(f) if crate::classify::rules::syscall_wrapper(f) == Some(CpuClass::Syscall) => {
                ThreadRole::Syscall
            }
            Some(_) => ThreadRole::IdleM,
            None if e.go_thread => ThreadRole::Cgo,
            None => ThreadRole::Native,
        };
    }
    let top = CpuClass::ALL
        .iter()
        .copied()
        .max_by_key(|c| e.classes[c.index()])
        .unwrap_or(CpuClass::User);
    match top {
        CpuClass::Native => ThreadRole::Native,
        CpuClass::Cgo => ThreadRole::Cgo,
        CpuClass::Gc => ThreadRole::GcWorker,
        CpuClass::Syscall => ThreadRole::Syscall,
        CpuClass::Scheduler | CpuClass::Futex if e.saw_find_runnable => ThreadRole::SpinningM,
        CpuClass::Futex => ThreadRole::IdleM,
        _ => ThreadRole::RunningGo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(names: &[&str]) -> Arc<Stack> {
        Stack::go_for_test(names, None)
    }

    fn with(class: CpuClass, n: u64) -> ThreadEvidence {
        let mut e = ThreadEvidence {
            go_thread: true,
            ..ThreadEvidence::default()
        };
        e.classes[class.index()] = n;
        e
    }

    #[test]
    fn roles_follow_the_evidence() {
        assert_eq!(role(&with(CpuClass::User, 10)), ThreadRole::RunningGo);
        assert_eq!(role(&with(CpuClass::Gc, 10)), ThreadRole::GcWorker);
        assert_eq!(role(&with(CpuClass::Cgo, 10)), ThreadRole::Cgo);
        assert_eq!(role(&with(CpuClass::Native, 10)), ThreadRole::Native);
        let mut spin = with(CpuClass::Scheduler, 10);
        spin.saw_find_runnable = true;
        assert_eq!(role(&spin), ThreadRole::SpinningM);
        let mut sysmon = with(CpuClass::Scheduler, 1);
        sysmon.saw_sysmon = true;
        assert_eq!(role(&sysmon), ThreadRole::Sysmon);
        let idle = ThreadEvidence {
            go_thread: true,
            blocked_at: Some(stack(&[
                "runtime.futex",
                "runtime.notesleep",
                "runtime.stopm",
            ])),
            ..ThreadEvidence::default()
        };
        assert_eq!(role(&idle), ThreadRole::IdleM);
        let blocked = ThreadEvidence {
            go_thread: true,
            blocked_at: Some(stack(&["syscall.Syscall", "syscall.read"])),
            ..ThreadEvidence::default()
        };
        assert_eq!(role(&blocked), ThreadRole::Syscall);
        assert_eq!(role(&ThreadEvidence::default()), ThreadRole::Unknown);
        let not_m = ThreadEvidence {
            m: Some(MState::NotAnM),
            ..with(CpuClass::User, 10)
        };
        assert_eq!(role(&not_m), ThreadRole::Native);
        let in_cgo = ThreadEvidence {
            m: Some(MState::M {
                spinning: false,
                incgo: true,
                idle: false,
            }),
            ..ThreadEvidence::default()
        };
        assert_eq!(role(&in_cgo), ThreadRole::Cgo);
        // An M with neither P nor goroutine, never on CPU: idle in futexsleep, sysmon in usleep.
        let no_p = Some(MState::M {
            spinning: false,
            incgo: false,
            idle: true,
        });
        let parked = ThreadEvidence {
            m: no_p,
            ..idle.clone()
        };
        assert_eq!(role(&parked), ThreadRole::IdleM);
        let sysmon_asleep = ThreadEvidence {
            m: no_p,
            blocked_at: Some(stack(&["runtime.usleep", "runtime.sysmon"])),
            ..ThreadEvidence::default()
        };
        assert_eq!(role(&sysmon_asleep), ThreadRole::Sysmon);
        // Sysmon waiting out a stop-the-world in a futex, sampled once in its own checks.
        let sysmon_parked = ThreadEvidence {
            m: no_p,
            blocked_at: Some(stack(&[
                "runtime.futex",
                "runtime.futexsleep",
                "runtime.notetsleep",
                "runtime.sysmon",
            ])),
            ..with(CpuClass::Scheduler, 2)
        };
        assert_eq!(role(&sysmon_parked), ThreadRole::Sysmon);
        let c_blocked = ThreadEvidence {
            blocked_at: Some(Arc::new(Stack {
                frames: vec![SymFrame::Native {
                    object: None,
                    offset: 1,
                    symbol: None,
                }],
                class: None,
            })),
            ..ThreadEvidence::default()
        };
        assert_eq!(role(&c_blocked), ThreadRole::Native);
    }
}
