//! What the Go runtime's own memory says about a process, read from outside each poll: the
//! goroutine census, the scheduler gauges, the Ms and their threads, goroutine growth. Every
//! value that could not be read keeps its reason.
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;

use super::window::Window;
use crate::runtime::{Census, GrowthWindow, MInfo, RuntimeLayout, SchedGauges};

/// Runtime state of one process.
#[derive(Debug)]
pub struct RuntimeState {
    /// The binary's runtime layout, or why there is none.
    pub layout: Result<Arc<RuntimeLayout>, String>,
    /// The process's load bias, or why it is unknown.
    pub bias: Result<u64, String>,
    /// Latest census.
    pub census: Option<Result<Census, String>>,
    /// Latest scheduler gauges.
    pub sched: Option<Result<SchedGauges, String>>,
    /// Latest Ms.
    pub ms: Option<Result<Vec<MInfo>, String>>,
    /// Goroutine counts over the window.
    pub growth: GrowthWindow,
    /// The runtime's count of goroutine switches over the window.
    switches: Window<u64>,
    /// When the latest read happened.
    pub read_at: Option<Instant>,
    /// Monotonic origin of `growth`'s time axis.
    origin: Instant,
}

impl RuntimeState {
    /// State for a process whose binary has `layout` and whose load bias is `bias`, keeping
    /// `window_seconds` of goroutine counts.
    pub fn new(
        layout: Result<Arc<RuntimeLayout>, String>,
        bias: Result<u64, String>,
        window_seconds: f64,
    ) -> Self {
        Self {
            layout,
            bias,
            census: None,
            sched: None,
            ms: None,
            growth: GrowthWindow::new(window_seconds),
            switches: Window::new(Duration::from_secs_f64(window_seconds.max(0.0))),
            read_at: None,
            origin: Instant::now(),
        }
    }

    /// Records one read taken at `at`.
    pub fn record(
        &mut self,
        at: Instant,
        census: Result<Census, String>,
        sched: Result<SchedGauges, String>,
        ms: Result<Vec<MInfo>, String>,
    ) {
        if let Some(user) = census
            .as_ref()
            .ok()
            .and_then(|c| c.named.as_ref().ok())
            .map(|n| n.user)
        {
            self.growth.push(
                at.saturating_duration_since(self.origin).as_secs_f64(),
                user,
            );
        }
        if let Some(&n) = sched.as_ref().ok().and_then(|s| s.switches.as_ref().ok()) {
            self.switches.push(at, n);
        }
        self.census = Some(census);
        self.sched = Some(sched);
        self.ms = Some(ms);
        self.read_at = Some(at);
    }

    /// The goroutine count (as `runtime.NumGoroutine` counts) now and at the window's start.
    pub fn goroutine_growth(&self) -> Option<(u64, u64)> {
        let g = self.growth.growth()?;
        let now = self.user_goroutines()?;
        let before = i64::try_from(now).ok()?.saturating_sub(g.delta).max(0) as u64;
        Some((before, now))
    }

    /// Goroutine switches out of running since the process started, at the latest read.
    pub fn switches_total(&self) -> Option<u64> {
        self.switches.latest().map(|(_, n)| *n)
    }

    /// Goroutine switches out of running per second over the window ending at the latest
    /// read, once two reads of the count are in it.
    pub fn switch_rate(&self) -> Option<f64> {
        let d = self.switches.latest_delta();
        (d.seconds > 0.0).then(|| d.stats as f64 / d.seconds)
    }

    fn user_goroutines(&self) -> Option<u64> {
        let c = self.census.as_ref()?.as_ref().ok()?;
        Some(c.named.as_ref().ok()?.user)
    }

    /// `f` of the last `reading`, or why there is none: no layout, not read yet (and why), or
    /// the read failed.
    fn value_of<T, U>(
        &self,
        reading: &Option<Result<T, String>>,
        f: impl FnOnce(&T) -> Value<U>,
    ) -> Value<U> {
        let unavailable = |unavailable| Value::Unavailable { unavailable };
        if let Err(reason) = &self.layout {
            return unavailable(reason.clone());
        }
        match reading {
            None => unavailable(
                self.bias
                    .as_ref()
                    .err()
                    .cloned()
                    .unwrap_or_else(|| "not read yet".into()),
            ),
            Some(Err(e)) => unavailable(e.clone()),
            Some(Ok(r)) => f(r),
        }
    }

    /// The API view.
    pub fn view(&self) -> RuntimeView {
        let goroutines = self.value_of(&self.census, |c| match &c.named {
            Ok(n) => Value::Known(GoroutinesView {
                total: n.user,
                live: n.live,
                system: n.system,
                by_status: n.by_status.clone(),
                by_wait_reason: n.by_wait_reason.clone(),
                growth_per_second: self.growth.growth().map(|g| g.per_second),
                unreadable: c.unreadable,
            }),
            Err(e) => Value::Unavailable {
                unavailable: e.to_string(),
            },
        });
        let gauge = |f: &dyn Fn(&SchedGauges) -> Result<i64, String>| -> Value<i64> {
            self.value_of(&self.sched, |s| match f(s) {
                Ok(v) => Value::Known(v),
                Err(e) => Value::Unavailable { unavailable: e },
            })
        };
        let s = |r: &Result<i64, crate::runtime::ReadError>| r.clone().map_err(|e| e.to_string());
        RuntimeView {
            goroutines,
            scheduler: SchedulerView {
                gomaxprocs: gauge(&|g| s(&g.gomaxprocs)),
                idle_procs: gauge(&|g| s(&g.idle_ps)),
                spinning_threads: gauge(&|g| s(&g.spinning_ms)),
                idle_threads: gauge(&|g| s(&g.idle_ms)),
                threads: gauge(&|g| s(&g.threads)),
                runqueue: gauge(&|g| s(&g.global_runq)),
                switches_per_second: self.value_of(&self.sched, |g| {
                    match (&g.switches, self.switch_rate()) {
                        (Err(e), _) => Value::Unavailable {
                            unavailable: e.to_string(),
                        },
                        (Ok(_), Some(r)) => Value::Known(r),
                        (Ok(_), None) => Value::Unavailable {
                            unavailable: "fewer than two reads yet".into(),
                        },
                    }
                }),
            },
        }
    }
}

/// A value, or why it is unavailable (never a silent zero).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value<T> {
    /// Known.
    Known(T),
    /// Unavailable, with the reason.
    Unavailable {
        /// Why.
        unavailable: String,
    },
}

impl<T: Copy> Value<T> {
    /// The value, if known.
    pub fn known(&self) -> Option<T> {
        match self {
            Value::Known(v) => Some(*v),
            Value::Unavailable { .. } => None,
        }
    }
}

/// The goroutine census, as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GoroutinesView {
    /// Goroutines as `runtime.NumGoroutine` counts them.
    pub total: u64,
    /// All live goroutines, system ones included.
    pub live: u64,
    /// Live system goroutines.
    pub system: u64,
    /// By status name.
    pub by_status: BTreeMap<&'static str, u64>,
    /// Waiting goroutines by wait reason.
    pub by_wait_reason: BTreeMap<&'static str, u64>,
    /// Growth over the window, goroutines per second (least squares).
    pub growth_per_second: Option<f64>,
    /// Goroutine structs that could not be read.
    pub unreadable: u64,
}

/// What `GODEBUG=schedtrace` prints, read from outside.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SchedulerView {
    /// GOMAXPROCS.
    pub gomaxprocs: Value<i64>,
    /// Idle Ps (`idleprocs`).
    pub idle_procs: Value<i64>,
    /// Spinning Ms (`spinningthreads`).
    pub spinning_threads: Value<i64>,
    /// Idle Ms (`idlethreads`).
    pub idle_threads: Value<i64>,
    /// Live Ms (`threads`).
    pub threads: Value<i64>,
    /// Global run queue length (`runqueue`).
    pub runqueue: Value<i64>,
    /// Goroutine switches out of running per second over the window, as the runtime's own
    /// scheduling-latency histogram counts them (every 8th per goroutine, times 8): the
    /// switch rate without a breakpoint in the program.
    pub switches_per_second: Value<f64>,
}

/// The runtime section of the API.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuntimeView {
    /// The goroutine census.
    pub goroutines: Value<GoroutinesView>,
    /// Scheduler gauges.
    pub scheduler: SchedulerView,
}
