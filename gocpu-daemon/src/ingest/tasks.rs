//! The async loops that drive [`Ingest`]: lifecycle events, periodic rescans, counter polling.
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::{ingest::Ingest, probes::events::Lifecycle};

/// Consumes lifecycle events until shutdown. Each event's procfs and binary work runs on the
/// blocking pool, one at a time, so bursts of exec stay bounded.
pub async fn lifecycle(
    ingest: Ingest,
    mut events: mpsc::Receiver<Lifecycle>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = shutdown.changed() => return,
        };
        let Some(ev) = ev else { return };
        let ing = ingest.clone();
        let res = tokio::task::spawn_blocking(move || match ev {
            Lifecycle::Exec { tgid } => ing.observe(tgid),
            Lifecycle::Exit { tgid } => ing.exited(tgid),
        })
        .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "lifecycle handler panicked");
        }
    }
}

/// Runs the governors until shutdown, on the calling (blocking) thread: again when the earliest
/// governor is due (a hook far over budget is cut 2 ms into a measurement period,
/// not at the next fixed tick), when a process is newly tracked (its hooks start governed at
/// once), and at least every `max_period`. A thread of its own rather than an async task: each
/// run is then one wake-up, not a hand-off through the async workers and the blocking pool,
/// and every wake-up lands on the observed program's CPUs.
pub fn govern(ingest: Ingest, max_period: Duration, shutdown: watch::Receiver<bool>) {
    // No governor asks for less (a hook's shortest measurement period).
    use crate::probes::budget::MIN_PERIOD;
    request_short_slice();
    let mut inputs = super::GovernInputs::default();
    while !*shutdown.borrow() {
        let run = || ingest.govern(&mut inputs);
        let due = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(due) => due,
            Err(_) => {
                tracing::error!("governor panicked");
                None
            }
        };
        let now = std::time::Instant::now();
        let wait = due
            .map_or(max_period, |d| d.saturating_duration_since(now))
            .clamp(MIN_PERIOD, max_period);
        ingest.shared.govern_now.wait(wait);
    }
}

/// Ends a thread's timed sleep early: [`Wakeup::notify`] ends the current sleep, or the next
/// one if nobody sleeps.
#[derive(Debug, Default)]
pub struct Wakeup {
    pending: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
}

impl Wakeup {
    /// Wakes the sleeper now (or makes its next sleep return at once).
    pub fn notify(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_one();
    }

    /// Sleeps until notified or `timeout` has passed.
    pub fn wait(&self, timeout: Duration) {
        let g = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (mut g, _) = self
            .cv
            .wait_timeout_while(g, timeout, |pending| !*pending)
            .unwrap_or_else(|p| p.into_inner());
        *g = false;
    }
}

/// Runs `f` on the blocking pool every `period` until shutdown.
pub async fn every(
    period: Duration,
    ingest: Ingest,
    f: fn(&Ingest),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // The first tick completes immediately; the caller already ran `f` once.
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let ing = ingest.clone();
        let started = std::time::Instant::now();
        if let Err(e) = tokio::task::spawn_blocking(move || f(&ing)).await {
            tracing::error!(error = %e, "periodic task panicked");
        }
        let took = started.elapsed();
        if took > period {
            tracing::debug!(
                ?took,
                ?period,
                "periodic task overran its period (machine overloaded?)"
            );
        }
    }
}

/// Asks the scheduler for a short slice for the calling thread (Linux 6.12+, unprivileged: a
/// SCHED_OTHER thread's `sched_runtime` is the slice it asks for). The governors end a period
/// by detaching its hook, and a period is a millisecond or two; with the default slice the
/// thread woke up to 10 ms late while a storm kept every CPU busy, and the storm paid for the
/// lateness (the period's cost, hence the detached time that pays for it, ten times what was
/// planned). Older kernels refuse the attribute and nothing changes.
fn request_short_slice() {
    /// `struct sched_attr` (include/uapi/linux/sched/types.h), its first version.
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
    }
    const _: () = assert!(std::mem::size_of::<SchedAttr>() == 48);
    /// The shortest slice the kernel grants, nanoseconds.
    const SLICE_NS: u64 = 100_000;
    const SIZE: u32 = std::mem::size_of::<SchedAttr>() as u32;
    let mut attr = SchedAttr {
        size: SIZE,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: 0,
        sched_priority: 0,
        sched_runtime: 0,
        sched_deadline: 0,
        sched_period: 0,
    };
    // The thread's own policy and nice value are kept (a lower nice would need CAP_SYS_NICE).
    // SAFETY: sched_getattr(2) writes at most `SIZE` bytes into `attr` for the calling thread.
    let got = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attr as *mut SchedAttr,
            SIZE,
            0,
        )
    };
    let rc = if got == 0 && attr.sched_policy == libc::SCHED_OTHER as u32 {
        attr.size = SIZE;
        attr.sched_runtime = SLICE_NS;
        // SAFETY: sched_setattr(2) reads `attr` (its size in its first field) for the calling
        // thread (pid 0); nothing is written.
        unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) }
    } else {
        got
    };
    if rc != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "no short scheduler slice for the governors"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::Arc,
        time::{Duration, Instant},
    };

    use super::{Wakeup, request_short_slice};

    #[test]
    fn the_governors_thread_asks_the_scheduler_for_a_short_slice() {
        let slice = std::thread::spawn(|| {
            request_short_slice();
            let sched = std::fs::read_to_string("/proc/thread-self/sched").unwrap_or_default();
            sched
                .lines()
                .find(|l| l.starts_with("se.slice"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .join()
        .ok()
        .flatten();
        assert_eq!(
            slice,
            Some(100_000),
            "no se.slice of 0.1 ms in /proc/thread-self/sched: the kernel lacks custom slices \
             for SCHED_OTHER (sched_attr.sched_runtime, Linux 6.12+)"
        );
    }

    #[test]
    fn a_notify_ends_the_current_or_the_next_sleep_once() {
        let w = Wakeup::default();
        w.notify();
        let t = Instant::now();
        w.wait(Duration::from_secs(10));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "a pending notify was lost"
        );
        // Consumed: the next sleep runs its course.
        let t = Instant::now();
        w.wait(Duration::from_millis(50));
        assert!(t.elapsed() >= Duration::from_millis(50));

        let w = Arc::new(Wakeup::default());
        let sleeper = {
            let w = Arc::clone(&w);
            std::thread::spawn(move || {
                let t = Instant::now();
                w.wait(Duration::from_secs(10));
                t.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        w.notify();
        let slept = sleeper.join().unwrap_or(Duration::MAX);
        assert!(slept < Duration::from_secs(5), "the sleeper was not woken");
    }
}
