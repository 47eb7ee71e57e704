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

/// Runs the uprobe governors until shutdown: again when the earliest governor is due (a hook far
/// over budget is cut a tenth into its measurement period, ~10 ms, not at the next fixed tick),
/// and at least every `max_period` (new binaries' hooks start governed at once).
pub async fn govern(ingest: Ingest, max_period: Duration, mut shutdown: watch::Receiver<bool>) {
    // Below this, ticks would cost more than the attached time they save.
    const MIN_PERIOD: Duration = Duration::from_millis(2);
    loop {
        let ing = ingest.clone();
        let due = match tokio::task::spawn_blocking(move || ing.govern()).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "uprobe governor panicked");
                None
            }
        };
        let now = std::time::Instant::now();
        let wait = due
            .map_or(max_period, |d| d.saturating_duration_since(now))
            .clamp(MIN_PERIOD, max_period);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
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
