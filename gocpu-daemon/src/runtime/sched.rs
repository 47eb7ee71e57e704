//! Scheduler gauges, what `GODEBUG=schedtrace` prints, read from outside without restarting.
//!
//! `runtime.sched` is read in one span (a consistent-enough snapshot of its counters; the
//! runtime itself reads them without its lock for schedtrace), `runtime.gomaxprocs` as is, and
//! each P of `runtime.allp` for its local run queue. Every gauge is its own `Result`: one that
//! cannot be read is unavailable with the reason, never zero.
use gocpu_gobin::offsets::FieldKind;

use super::{
    error::ReadError,
    layout::{RuntimeLayout, Var},
    memory::{MemError, ProcessMemory, plausible_range},
    record::Span,
};

/// Most Ps accepted (the runtime has no hard limit; machines have at most a few thousand CPUs).
pub const MAX_PROCS: u64 = 1 << 16;

/// Most Ms accepted in counters (the runtime's default limit is 10,000).
pub const MAX_MS: u64 = 1 << 20;

/// Capacity of a P's local run queue (`len(p.runq)`, 256 in every supported release).
const RUNQ_CAP: u32 = 256;

/// The scheduler's state at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedGauges {
    /// `runtime.gomaxprocs`.
    pub gomaxprocs: Result<i64, ReadError>,
    /// `sched.npidle`: idle Ps (schedtrace's `idleprocs`).
    pub idle_ps: Result<i64, ReadError>,
    /// `sched.nmspinning`: Ms spinning for work (`spinningthreads`).
    pub spinning_ms: Result<i64, ReadError>,
    /// `sched.nmidle`: Ms parked waiting for work (`idlethreads`).
    pub idle_ms: Result<i64, ReadError>,
    /// `sched.nmsys`: system Ms not counted for deadlock detection (sysmon, templateThread).
    pub system_ms: Result<i64, ReadError>,
    /// `sched.mnext - sched.nmfreed`: live Ms (`threads`).
    pub threads: Result<i64, ReadError>,
    /// `sched.runqsize` (`sched.runq.size` since Go 1.25): the global run queue (`runqueue`).
    pub global_runq: Result<i64, ReadError>,
    /// `sched.goidgen`: goroutine ids handed out so far.
    pub goidgen: Result<u64, ReadError>,
    /// Each P's local run queue length, in `allp` order (schedtrace's bracketed list).
    pub local_runqs: Result<Vec<u32>, ReadError>,
    /// Goroutine switches out of running so far, as the runtime counts them ([`read_switches`]).
    pub switches: Result<u64, ReadError>,
}

/// One in how many of a goroutine's switches out of running the runtime tracks
/// (`gTrackingPeriod`, 8 in every release since the histogram came in Go 1.17).
const SWITCH_TRACKING_PERIOD: u64 = 8;

/// Largest scheduling-latency histogram accepted, bytes (Go 1.19 has 5 768).
const MAX_HISTOGRAM: u32 = 1 << 16;

/// Reads the scheduler gauges of a process whose load bias is `bias`. Errs only when the
/// process as a whole cannot be read (gone, denied); otherwise each gauge says for itself.
pub fn read_sched(
    mem: &dyn ProcessMemory,
    layout: &RuntimeLayout,
    bias: u64,
) -> Result<SchedGauges, ReadError> {
    let gomaxprocs = read_gomaxprocs(mem, layout, bias);
    let local_runqs = read_local_runqs(mem, layout, bias);
    let g = SchedCounters::read(mem, layout, bias);
    let out = SchedGauges {
        gomaxprocs,
        idle_ps: g.int(|o| o.sched_npidle, MAX_PROCS, "sched.npidle"),
        spinning_ms: g.int(|o| o.sched_nmspinning, MAX_PROCS, "sched.nmspinning"),
        idle_ms: g.int(|o| o.sched_nmidle, MAX_MS, "sched.nmidle"),
        system_ms: g.int(|o| o.sched_nmsys, MAX_MS, "sched.nmsys"),
        threads: g.threads(),
        global_runq: g.int(|o| o.sched_runqsize, i64::MAX as u64, "sched.runqsize"),
        goidgen: g
            .int(|o| o.sched_goidgen, i64::MAX as u64, "sched.goidgen")
            .map(|v| v as u64),
        local_runqs,
        switches: read_switches(mem, layout, bias),
    };
    for e in [&out.gomaxprocs, &out.idle_ps, &out.threads]
        .into_iter()
        .filter_map(|r| r.as_ref().err())
    {
        if e.is_fatal() {
            return Err(e.clone());
        }
    }
    Ok(out)
}

/// The `runtime.sched` span, read once.
struct SchedCounters<'a> {
    layout: &'a RuntimeLayout,
    span: Span,
    bytes: Result<Vec<u8>, ReadError>,
}

impl<'a> SchedCounters<'a> {
    fn read(mem: &dyn ProcessMemory, layout: &'a RuntimeLayout, bias: u64) -> Self {
        let o = layout.offsets();
        let span = Span::of(&[
            o.sched_goidgen,
            o.sched_mnext,
            o.sched_nmfreed,
            o.sched_nmidle,
            o.sched_nmsys,
            o.sched_npidle,
            o.sched_nmspinning,
            o.sched_runqsize,
        ])
        .unwrap_or(Span { start: 0, len: 0 });
        let bytes = (|| {
            let base = layout.addr(Var::Sched, bias)?;
            if span.len == 0 {
                return Err(ReadError::Implausible {
                    what: "schedt layout",
                    value: 0,
                });
            }
            let mut b = vec![0u8; span.size()];
            mem.read(span.addr(base).unwrap_or(0), &mut b)
                .map_err(ReadError::memory("runtime.sched"))?;
            Ok(b)
        })();
        SchedCounters {
            layout,
            span,
            bytes,
        }
    }

    /// A signed counter within `[0, max]`.
    fn int(
        &self,
        field: impl Fn(&gocpu_gobin::offsets::StructOffsets) -> gocpu_gobin::offsets::Field,
        max: u64,
        what: &'static str,
    ) -> Result<i64, ReadError> {
        let b = self.bytes.as_ref().map_err(Clone::clone)?;
        let v = self
            .span
            .get_i64(b, field(self.layout.offsets()))
            .ok_or(ReadError::Implausible { what, value: 0 })?;
        if v < 0 || v as u64 > max {
            return Err(ReadError::Implausible {
                what,
                value: v as u64,
            });
        }
        Ok(v)
    }

    fn threads(&self) -> Result<i64, ReadError> {
        let next = self.int(|o| o.sched_mnext, i64::MAX as u64, "sched.mnext")?;
        let freed = self.int(|o| o.sched_nmfreed, i64::MAX as u64, "sched.nmfreed")?;
        let live = next - freed;
        if live < 1 || live as u64 > MAX_MS {
            return Err(ReadError::Implausible {
                what: "sched.mnext - sched.nmfreed",
                value: live as u64,
            });
        }
        Ok(live)
    }
}

/// Goroutine switches out of running so far: the sum of `sched.timeToRun`'s buckets and
/// underflow times [`SWITCH_TRACKING_PERIOD`]. Each goroutine's every 8th switch out of running
/// (to waiting, runnable or dead; not into a syscall since Go 1.22) is counted once it runs
/// again, so the count follows the goroutine switches runtime.mcall makes without a breakpoint
/// in the program.
pub fn read_switches(
    mem: &dyn ProcessMemory,
    layout: &RuntimeLayout,
    bias: u64,
) -> Result<u64, ReadError> {
    let o = layout.offsets();
    let (counts, underflow) = (o.sched_timetorun_counts, o.sched_timetorun_underflow);
    let end = underflow.offset.checked_add(8);
    if counts.kind != FieldKind::Counters
        || counts.size > MAX_HISTOGRAM
        || end
            != counts
                .offset
                .checked_add(counts.size)
                .and_then(|e| e.checked_add(8))
    {
        return Err(ReadError::Implausible {
            what: "sched.timeToRun layout",
            value: u64::from(counts.size),
        });
    }
    let base = layout.addr(Var::Sched, bias)?;
    let mut b = vec![0u8; counts.size as usize + 8];
    mem.read(base.wrapping_add(u64::from(counts.offset)), &mut b)
        .map_err(ReadError::memory("sched.timeToRun"))?;
    let tracked = b
        .chunks_exact(8)
        .map(|w| w.try_into().map(u64::from_le_bytes).unwrap_or(0))
        .fold(0u64, u64::wrapping_add);
    Ok(tracked.wrapping_mul(SWITCH_TRACKING_PERIOD))
}

fn read_gomaxprocs(
    mem: &dyn ProcessMemory,
    layout: &RuntimeLayout,
    bias: u64,
) -> Result<i64, ReadError> {
    let addr = layout.addr(Var::Gomaxprocs, bias)?;
    let mut b = [0u8; 4];
    mem.read(addr, &mut b)
        .map_err(ReadError::memory("runtime.gomaxprocs"))?;
    let v = i32::from_le_bytes(b);
    if v < 1 || v as u64 > MAX_PROCS {
        return Err(ReadError::Implausible {
            what: "runtime.gomaxprocs",
            value: v as u64,
        });
    }
    Ok(i64::from(v))
}

/// Each P's `runqtail - runqhead`; every `allp[i].id` must be `i`.
fn read_local_runqs(
    mem: &dyn ProcessMemory,
    layout: &RuntimeLayout,
    bias: u64,
) -> Result<Vec<u32>, ReadError> {
    let o = layout.offsets();
    let allp = layout.addr(Var::Allp, bias)?;
    // allp is a []*p like allgs: the same slice header layout.
    let header = Span::of(&[o.allgs_array, o.allgs_len]).ok_or(ReadError::Implausible {
        what: "slice header layout",
        value: 0,
    })?;
    let mut hdr = vec![0u8; header.size()];
    mem.read(header.addr(allp).unwrap_or(0), &mut hdr)
        .map_err(ReadError::memory("runtime.allp"))?;
    let array = header.get(&hdr, o.allgs_array).unwrap_or(0);
    let len = header.get(&hdr, o.allgs_len).unwrap_or(0);
    if len == 0 || len > MAX_PROCS || !plausible_range(array, (len * 8) as usize) {
        return Err(ReadError::Implausible {
            what: "len(runtime.allp)",
            value: len,
        });
    }
    let mut ptrs = vec![0u8; len as usize * 8];
    mem.read(array, &mut ptrs)
        .map_err(ReadError::memory("the allp array"))?;
    let span = Span::of(&[o.p_id, o.p_runqhead, o.p_runqtail]).ok_or(ReadError::Implausible {
        what: "p layout",
        value: 0,
    })?;
    let addrs: Vec<u64> = ptrs
        .chunks_exact(8)
        .map(|w| {
            let p = w.try_into().map(u64::from_le_bytes).unwrap_or(0);
            span.addr(p).unwrap_or(0)
        })
        .collect();
    let reqs: Vec<(u64, usize)> = addrs.iter().map(|&a| (a, span.size())).collect();
    let mut recs = vec![0u8; addrs.len() * span.size()];
    let mut ok = vec![false; addrs.len()];
    mem.read_vectored(&reqs, &mut recs, &mut ok)
        .map_err(ReadError::memory("a p"))?;
    let mut out = Vec::with_capacity(addrs.len());
    for (i, (rec, &good)) in recs.chunks_exact(span.size()).zip(&ok).enumerate() {
        if !good {
            return Err(ReadError::Memory {
                what: "a p",
                source: MemError::Unreadable {
                    addr: addrs.get(i).copied().unwrap_or(0),
                    len: span.size(),
                },
            });
        }
        let id = span.get_i64(rec, o.p_id).unwrap_or(-1);
        if id != i as i64 {
            return Err(ReadError::Implausible {
                what: "allp[i].id != i",
                value: id as u64,
            });
        }
        let head = span.get(rec, o.p_runqhead).unwrap_or(0) as u32;
        let tail = span.get(rec, o.p_runqtail).unwrap_or(0) as u32;
        // Both words come from one copy, but a consumer may bump head between the owner's
        // stores: head past tail means the queue just drained.
        let n = tail.wrapping_sub(head);
        out.push(if n > RUNQ_CAP { 0 } else { n });
    }
    Ok(out)
}
