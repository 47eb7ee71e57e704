//! The goroutine census: every g in `runtime.allgs`, counted by status, wait reason and start
//! function, read from outside the process.
//!
//! The read follows the runtime's own rule for racy readers (`atomicAllG`): `allglen` first,
//! then the slice's array, so every index below the length read is initialized. The array is
//! read in chunks, then one span of each g (status, wait reason, goid, start PC) in batches of
//! many iovecs. A g that cannot be read (an array freed by a concurrent `append`) is counted as
//! unreadable, never guessed.
use std::collections::{BTreeMap, HashMap};

use gocpu_gobin::offsets::{StructOffsets, names::RuntimeNames};

use super::{
    error::{ReadError, Unavailable},
    layout::{RuntimeLayout, Var},
    memory::{ProcessMemory, plausible_range, read_u64},
    record::Span,
};

/// Most gs read (10 M goroutines would hold at least 20 GiB of stacks).
pub const MAX_ALLGLEN: u64 = 10_000_000;

/// Gs read per batch (pointers, then their spans).
const CHUNK: usize = 4096;

/// Largest gap between two gs still read as one range: gs sit next to each other in heap
/// spans, and one large copy is much cheaper than many small ones (page pinning per iovec).
const MAX_GAP: u64 = 1024;

/// Largest coalesced range.
const MAX_RANGE: u64 = 256 << 10;

/// Distinct (status, wait reason, start PC) groups kept; further start PCs are counted under 0.
const MAX_GROUPS: usize = 65_536;

/// The wait reason the runtime prints for an index past its table.
pub const UNKNOWN_WAIT_REASON: &str = "unknown wait reason";

/// The goroutine census of one process at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Census {
    /// `runtime.allglen`: gs ever created and not freed (dead ones included).
    pub allglen: u64,
    /// Gs read and decoded.
    pub read: u64,
    /// Gs whose pointer or struct could not be read.
    pub unreadable: u64,
    /// Largest goroutine id seen.
    pub max_goid: u64,
    /// Every g read by raw `(atomicstatus, waitreason)`: counts by index, with or without names.
    pub by_raw: BTreeMap<(u32, u8), u64>,
    /// Counts by name; unavailable when the Go release has no name table.
    pub named: Result<NamedCensus, Unavailable>,
}

/// The census in the runtime's own terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamedCensus {
    /// Goroutines that exist: not in a `_Gdead*` status.
    pub live: u64,
    /// Live goroutines the runtime counts in `runtime.NumGoroutine()` (not system goroutines).
    pub user: u64,
    /// Live system goroutines (started in a `runtime.*` function other than `runtime.main`).
    pub system: u64,
    /// Live goroutines with the `_Gscan` bit set (the GC is scanning their stack).
    pub scanning: u64,
    /// Gs whose status the release does not define (garbage or a concurrent update).
    pub unknown_status: u64,
    /// Live goroutines by status name ("running", "waiting", ...; scan bit ignored).
    pub by_status: BTreeMap<&'static str, u64>,
    /// Waiting goroutines by wait reason ("chan receive", ...).
    pub by_wait_reason: BTreeMap<&'static str, u64>,
    /// Live goroutines by start function (link-time entry PC; symbolize with the binary).
    pub by_start: BTreeMap<u64, u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Group {
    status: u32,
    reason: u8,
    start: u64,
}

/// Reads the census of a process whose load bias is `bias`.
pub fn read_census(
    mem: &dyn ProcessMemory,
    layout: &RuntimeLayout,
    bias: u64,
) -> Result<Census, ReadError> {
    let o = layout.offsets();
    let allglen_addr = layout.addr(Var::Allglen, bias)?;
    let allgs_addr = layout.addr(Var::Allgs, bias)?;
    let allglen = read_u64(mem, allglen_addr).map_err(ReadError::memory("runtime.allglen"))?;
    if allglen == 0 {
        return Err(ReadError::Implausible {
            what: "runtime.allglen",
            value: 0,
        });
    }
    if allglen > MAX_ALLGLEN {
        return Err(ReadError::TooMany {
            what: "runtime.allgs",
            limit: MAX_ALLGLEN,
        });
    }
    let header = Span::of(&[o.allgs_array, o.allgs_len]).ok_or(ReadError::Implausible {
        what: "allgs slice layout",
        value: 0,
    })?;
    let mut hdr = vec![0u8; header.size()];
    let hdr_addr = header.addr(allgs_addr).unwrap_or(0);
    mem.read(hdr_addr, &mut hdr)
        .map_err(ReadError::memory("runtime.allgs"))?;
    let array = header.get(&hdr, o.allgs_array).unwrap_or(0);
    let len = header.get(&hdr, o.allgs_len).unwrap_or(0);
    if len < allglen || !plausible_range(array, (allglen * 8) as usize) {
        return Err(ReadError::Implausible {
            what: "runtime.allgs",
            value: array,
        });
    }
    let span = Span::of(&[o.g_atomicstatus, o.g_waitreason, o.g_goid, o.g_startpc]).ok_or(
        ReadError::Implausible {
            what: "g layout",
            value: 0,
        },
    )?;
    let mut tally = Tally {
        span,
        offsets: *o,
        bias,
        groups: HashMap::new(),
        read: 0,
        unreadable: 0,
        max_goid: 0,
    };
    let mut ptr_bytes = vec![0u8; CHUNK * 8];
    let mut reader = Coalescer::default();
    let mut done = 0u64;
    while done < allglen {
        let n = (allglen - done).min(CHUNK as u64) as usize;
        let chunk = ptr_bytes.get_mut(..n * 8).unwrap_or_default();
        mem.read(array + done * 8, chunk)
            .map_err(ReadError::memory("the allgs array"))?;
        let addrs = chunk.chunks_exact(8).map(|w| {
            let g = w.try_into().map(u64::from_le_bytes).unwrap_or(0);
            // A misaligned pointer is not a g.
            (g % 8 == 0).then(|| span.addr(g)).flatten()
        });
        reader.read(mem, addrs, span.size(), |rec| tally.add(rec))?;
        done += n as u64;
    }
    let Tally {
        groups,
        read,
        unreadable,
        max_goid,
        ..
    } = tally;
    if read == 0 {
        return Err(ReadError::Implausible {
            what: "every g pointer",
            value: unreadable,
        });
    }
    let mut by_raw = BTreeMap::new();
    for (g, n) in &groups {
        *by_raw.entry((g.status, g.reason)).or_default() += n;
    }
    let named = layout
        .names()
        .map(|names| name_groups(&groups, names, layout));
    if let Ok(nc) = &named
        && nc.unknown_status > read / 10 + 2
    {
        // Most gs with statuses the release does not have: the offsets do not fit this process.
        return Err(ReadError::Implausible {
            what: "g.atomicstatus (unknown values)",
            value: nc.unknown_status,
        });
    }
    Ok(Census {
        allglen,
        read,
        unreadable,
        max_goid,
        by_raw,
        named,
    })
}

fn name_groups(
    groups: &HashMap<Group, u64>,
    names: &'static RuntimeNames,
    layout: &RuntimeLayout,
) -> NamedCensus {
    let waiting = names
        .statuses
        .iter()
        .find(|s| s.constant == "_Gwaiting")
        .map(|s| s.value);
    let mut c = NamedCensus::default();
    for (g, &n) in groups {
        let Some(st) = names.status(g.status) else {
            c.unknown_status += n;
            continue;
        };
        if st.dead {
            continue;
        }
        c.live += n;
        *c.by_status.entry(st.name).or_default() += n;
        if g.status & names.scan_bit != 0 {
            c.scanning += n;
        }
        if Some(st.value) == waiting {
            let reason = names.wait_reason(g.reason).unwrap_or(UNKNOWN_WAIT_REASON);
            *c.by_wait_reason.entry(reason).or_default() += n;
        }
        if layout.is_system_start(g.start) {
            c.system += n;
        } else {
            c.user += n;
        }
        *c.by_start.entry(g.start).or_default() += n;
    }
    c
}

/// Counts gs into groups.
struct Tally {
    span: Span,
    offsets: StructOffsets,
    bias: u64,
    groups: HashMap<Group, u64>,
    read: u64,
    unreadable: u64,
    max_goid: u64,
}

impl Tally {
    fn add(&mut self, rec: Option<&[u8]>) {
        let Some(rec) = rec else {
            self.unreadable += 1;
            return;
        };
        self.read += 1;
        let (span, o) = (self.span, &self.offsets);
        let field = |f| span.get(rec, f).unwrap_or(0);
        self.max_goid = self.max_goid.max(field(o.g_goid));
        let mut key = Group {
            status: field(o.g_atomicstatus) as u32,
            reason: field(o.g_waitreason) as u8,
            start: field(o.g_startpc).wrapping_sub(self.bias),
        };
        if self.groups.len() >= MAX_GROUPS && !self.groups.contains_key(&key) {
            key.start = 0;
        }
        *self.groups.entry(key).or_default() += 1;
    }
}

/// Reads many same-sized records, merging records close in memory into one range each.
#[derive(Default)]
struct Coalescer {
    order: Vec<(u64, usize)>,
    ranges: Vec<(u64, usize)>,
    members: Vec<(usize, usize)>,
    buf: Vec<u8>,
    ok: Vec<bool>,
    single: Vec<u8>,
}

impl Coalescer {
    /// Calls `each` once per address, in address order, with the record or None when it
    /// could not be read (`None` addresses count as unreadable).
    fn read(
        &mut self,
        mem: &dyn ProcessMemory,
        addrs: impl Iterator<Item = Option<u64>>,
        len: usize,
        mut each: impl FnMut(Option<&[u8]>),
    ) -> Result<(), ReadError> {
        self.order.clear();
        for (i, a) in addrs.enumerate() {
            match a {
                Some(a) => self.order.push((a, i)),
                None => each(None),
            }
        }
        self.order.sort_unstable();
        // ranges[k] = (start, len); members[k] = [first, last) indexes into `order`.
        self.ranges.clear();
        self.members.clear();
        for (j, &(a, _)) in self.order.iter().enumerate() {
            let end = a.saturating_add(len as u64);
            if let (Some(r), Some(m)) = (self.ranges.last_mut(), self.members.last_mut()) {
                let r_end = r.0 + r.1 as u64;
                if a >= r.0 && a <= r_end.saturating_add(MAX_GAP) && end - r.0 <= MAX_RANGE {
                    r.1 = (end.max(r_end) - r.0) as usize;
                    m.1 = j + 1;
                    continue;
                }
            }
            self.ranges.push((a, len));
            self.members.push((j, j + 1));
        }
        let total: usize = self.ranges.iter().map(|r| r.1).sum();
        self.buf.resize(total, 0);
        self.ok.clear();
        self.ok.resize(self.ranges.len(), false);
        mem.read_vectored(&self.ranges, &mut self.buf, &mut self.ok)
            .map_err(ReadError::memory("a g"))?;
        self.single.resize(len, 0);
        let mut at = 0usize;
        for ((&(start, rlen), &(first, last)), &ok) in
            self.ranges.iter().zip(&self.members).zip(&self.ok)
        {
            for &(a, _) in self.order.get(first..last).unwrap_or_default() {
                let off = at + (a - start) as usize;
                if ok {
                    each(self.buf.get(off..off + len));
                } else {
                    // Something in the range (a gap) is unmapped: read this record alone.
                    match mem.read(a, &mut self.single) {
                        Ok(()) => each(Some(&self.single)),
                        Err(e) if e.is_fatal() => return Err(ReadError::memory("a g")(e)),
                        Err(_) => each(None),
                    }
                }
            }
            at += rlen;
        }
        Ok(())
    }
}
