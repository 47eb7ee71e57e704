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
    while !*shutdown.borrow() {
        let due = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ingest.govern())) {
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

#[cfg(test)]
mod tests {
    use std::{
        sync::Arc,
        time::{Duration, Instant},
    };

    use super::Wakeup;

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
