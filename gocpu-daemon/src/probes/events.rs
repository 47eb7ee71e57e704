//! Reads the per-CPU lifecycle perf buffers and forwards decoded events to ingest.
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use aya::{
    maps::{
        MapData, PerfEventArray,
        perf::{PerfEvent, PerfEventArrayBuffer},
    },
    util::online_cpus,
};
use gocpu_common::{EventKind, ProcEvent};
use tokio::{io::unix::AsyncFd, sync::mpsc};

use crate::probes::ProbeError;

/// A lifecycle event, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// `tgid` exec'd a new image.
    Exec {
        /// Process id.
        tgid: u32,
    },
    /// Tracked process `tgid` exited.
    Exit {
        /// Process id.
        tgid: u32,
    },
}

impl Lifecycle {
    /// Decodes a perf sample; `None` for short or unknown records.
    pub fn decode(bytes: &[u8]) -> Option<Lifecycle> {
        let ev = ProcEvent::from_bytes(bytes)?;
        match EventKind::from_u32(ev.kind)? {
            EventKind::Exec => Some(Lifecycle::Exec { tgid: ev.tgid }),
            EventKind::Exit => Some(Lifecycle::Exit { tgid: ev.tgid }),
        }
    }
}

/// Counters of events that did not reach ingest.
#[derive(Debug, Default)]
pub struct EventLoss {
    /// Samples the kernel reported lost (perf buffer full).
    pub perf_lost: AtomicU64,
    /// Samples that could not be decoded.
    pub malformed: AtomicU64,
    /// Events dropped because ingest's queue was full.
    pub queue_full: AtomicU64,
}

/// Spawns one reader task per online CPU; returns the receiving end of the event queue.
pub fn spawn_readers(
    mut array: PerfEventArray<MapData>,
    pages: usize,
    loss: Arc<EventLoss>,
    queue: usize,
) -> Result<mpsc::Receiver<Lifecycle>, ProbeError> {
    let (tx, rx) = mpsc::channel(queue);
    for cpu in online_cpus().map_err(|(_, e)| ProbeError::Cpus(e))? {
        let buf = array.open(cpu, Some(pages))?;
        // SAFETY: the buffer owns its perf fd, never replaces it and keeps it open until dropped
        // together with the AsyncFd.
        let fd = unsafe { AsyncFd::register_with_interest(buf, tokio::io::Interest::READABLE) }
            .map_err(|e| ProbeError::Cpus(e.into()))?;
        tokio::spawn(read_cpu(fd, tx.clone(), Arc::clone(&loss)));
    }
    // The buffers keep the map alive through their own handle; dropping `array` is safe.
    Ok(rx)
}

async fn read_cpu(
    mut fd: AsyncFd<PerfEventArrayBuffer<MapData>>,
    tx: mpsc::Sender<Lifecycle>,
    loss: Arc<EventLoss>,
) {
    loop {
        let mut guard = match fd.readable_mut().await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "perf buffer poll failed; lifecycle events from one CPU stop");
                return;
            }
        };
        let mut batch = Vec::new();
        guard.get_inner_mut().for_each(|event| match event {
            PerfEvent::Sample { head, tail } => {
                let decoded = if tail.is_empty() {
                    Lifecycle::decode(head)
                } else {
                    let mut joined = head.to_vec();
                    joined.extend_from_slice(tail);
                    Lifecycle::decode(&joined)
                };
                match decoded {
                    Some(ev) => batch.push(ev),
                    None => {
                        loss.malformed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            PerfEvent::Lost { count } => {
                loss.perf_lost.fetch_add(count, Ordering::Relaxed);
            }
        });
        guard.clear_ready();
        for ev in batch {
            // Never block the reader on a slow consumer: the periodic rescan recovers lost events.
            match tx.try_send(ev) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    loss.queue_full.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_known_kinds_and_rejects_others() {
        let mut raw = [0u8; 24];
        raw[0] = 2;
        raw[4] = 7;
        assert_eq!(Lifecycle::decode(&raw), Some(Lifecycle::Exit { tgid: 7 }));
        raw[0] = 1;
        assert_eq!(Lifecycle::decode(&raw), Some(Lifecycle::Exec { tgid: 7 }));
        raw[0] = 9;
        assert_eq!(Lifecycle::decode(&raw), None);
        assert_eq!(Lifecycle::decode(&raw[..10]), None);
    }
}
