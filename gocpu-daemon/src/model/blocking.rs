//! Where a process's threads wait: blocked time by reason (from the stack each thread blocked
//! at) and futex calls by the runtime function that made them, both cumulative with windows.
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use gocpu_common::FutexOp;
use serde::Serialize;

use crate::{
    classify::{CpuClass, rules},
    model::window::{Delta, Window},
    symbolize::SymFrame,
};

/// Why a thread was off CPU (runnable-but-waiting time is accounted separately).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OffReason {
    /// Parked on a futex: an idle M (stopm / notesleep) or a runtime lock wait.
    FutexPark,
    /// Blocked in a system call (file or socket I/O, wait, ...).
    Syscall,
    /// Sleeping in nanosleep (runtime.usleep: sysmon, spinning Ms backing off).
    Sleep,
    /// Waiting in the network poller (epoll_wait).
    Netpoll,
    /// Blocked inside C code called through cgo, or in a thread the runtime does not know.
    Native,
    /// Anything else (page faults, unknown stacks).
    Other,
}

impl OffReason {
    /// Every reason, in a stable order.
    pub const ALL: [OffReason; 6] = [
        OffReason::FutexPark,
        OffReason::Syscall,
        OffReason::Sleep,
        OffReason::Netpoll,
        OffReason::Native,
        OffReason::Other,
    ];

    /// Stable snake_case name (metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            OffReason::FutexPark => "futex_park",
            OffReason::Syscall => "syscall",
            OffReason::Sleep => "sleep",
            OffReason::Netpoll => "netpoll",
            OffReason::Native => "native",
            OffReason::Other => "other",
        }
    }

    /// The reason a thread blocked at `frames` (innermost first).
    pub fn of(frames: &[SymFrame]) -> OffReason {
        let mut names = frames.iter().filter_map(SymFrame::go_function);
        if frames.first().is_some_and(|f| f.go_function().is_none()) {
            return OffReason::Native;
        }
        match names.next() {
            None => OffReason::Other,
            Some(leaf) => match leaf {
                "runtime.futex" | "runtime.futexsleep" => OffReason::FutexPark,
                "runtime.usleep" | "runtime.usleep_no_g" => OffReason::Sleep,
                "runtime.epollwait" => OffReason::Netpoll,
                other => match rules::syscall_wrapper(other) {
                    Some(CpuClass::Syscall) => OffReason::Syscall,
                    _ => OffReason::Other,
                },
            },
        }
    }
}

/// Runtime functions that only relay a futex call; the caller reported is the first frame
/// beyond them.
const FUTEX_RELAYS: &[&str] = &[
    "runtime.futex",
    "runtime.futexsleep",
    "runtime.futexwakeup",
    "runtime.notesleep",
    "runtime.notetsleep",
    "runtime.notetsleep_internal",
    "runtime.notetsleepg",
    "runtime.notewakeup",
    "runtime.semasleep",
    "runtime.semawakeup",
    "runtime.mPark",
];

/// The function that made a futex call whose stack is `frames`.
pub fn futex_caller(frames: &[SymFrame]) -> Arc<str> {
    frames
        .iter()
        .filter_map(|f| match f {
            SymFrame::Go { function, .. } => Some(function),
            SymFrame::Native { .. } => None,
        })
        .find(|f| !FUTEX_RELAYS.contains(&f.as_ref()))
        .cloned()
        .unwrap_or_else(|| Arc::from("unknown"))
}

/// Key of futex-call counts: (calling function, operation).
pub type FutexCaller = (Arc<str>, FutexOpLabel);

/// A futex operation as an API/metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FutexOpLabel {
    /// Wait.
    Wait,
    /// Wake.
    Wake,
    /// Other.
    Other,
}

impl From<FutexOp> for FutexOpLabel {
    fn from(op: FutexOp) -> Self {
        match op {
            FutexOp::Wait => FutexOpLabel::Wait,
            FutexOp::Wake => FutexOpLabel::Wake,
            FutexOp::Other => FutexOpLabel::Other,
        }
    }
}

/// Blocking and futex statistics of one process.
#[derive(Debug)]
pub struct Blocking {
    /// Cumulative blocked nanoseconds per reason.
    by_reason: Window<HashMap<OffReason, u64>>,
    /// Cumulative futex calls (estimated from samples) per caller and op.
    futex: Window<HashMap<FutexCaller, u64>>,
}

impl Blocking {
    /// Empty statistics windowed over `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            by_reason: Window::new(window),
            futex: Window::new(window),
        }
    }

    /// Records the cumulative totals read at `at`.
    pub fn record(
        &mut self,
        at: Instant,
        by_reason: HashMap<OffReason, u64>,
        futex: HashMap<FutexCaller, u64>,
    ) {
        self.by_reason.push(at, by_reason);
        self.futex.push(at, futex);
    }

    /// Cumulative blocked nanoseconds per reason (latest read).
    pub fn cumulative_reasons(&self) -> HashMap<OffReason, u64> {
        self.by_reason
            .latest()
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Blocked nanoseconds per reason over the window.
    pub fn reasons(&self) -> Delta<HashMap<OffReason, u64>> {
        self.by_reason.latest_delta()
    }

    /// Futex calls per (caller, op) over the window.
    pub fn futex_callers(&self) -> Delta<HashMap<FutexCaller, u64>> {
        self.futex.latest_delta()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(names: &[&str]) -> Vec<SymFrame> {
        names
            .iter()
            .map(|n| SymFrame::Go {
                function: Arc::from(*n),
                file: Arc::from("f.go"),
                line: 1,
                inlined: false,
            })
            .collect()
    }

    #[test]
    fn reasons_follow_the_blocking_wrapper() {
        assert_eq!(
            OffReason::of(&go(&[
                "runtime.futex",
                "runtime.notesleep",
                "runtime.stopm"
            ])),
            OffReason::FutexPark
        );
        assert_eq!(
            OffReason::of(&go(&["runtime.usleep", "runtime.sysmon"])),
            OffReason::Sleep
        );
        assert_eq!(
            OffReason::of(&go(&["runtime.epollwait", "runtime.netpoll"])),
            OffReason::Netpoll
        );
        assert_eq!(
            OffReason::of(&go(&[
                "internal/runtime/syscall.Syscall6",
                "syscall.Syscall",
                "syscall.read"
            ])),
            OffReason::Syscall
        );
        assert_eq!(OffReason::of(&go(&["main.f"])), OffReason::Other);
        assert_eq!(OffReason::of(&[]), OffReason::Other);
        let native = vec![SymFrame::Native {
            object: None,
            offset: 1,
            symbol: None,
        }];
        assert_eq!(OffReason::of(&native), OffReason::Native);
    }

    #[test]
    fn futex_caller_skips_relays() {
        let f = go(&[
            "runtime.futex",
            "runtime.futexwakeup",
            "runtime.notewakeup",
            "runtime.startm",
            "runtime.wakep",
        ]);
        assert_eq!(&*futex_caller(&f), "runtime.startm");
        assert_eq!(&*futex_caller(&go(&["runtime.futex"])), "unknown");
    }
}
