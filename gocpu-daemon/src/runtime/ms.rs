//! The runtime's Ms (OS threads it created or adopted), walked from `runtime.allm`.
//!
//! `m.procid` is the thread id, so this is how the daemon tells Go Ms from native threads
//! started by C code, and which Ms spin, sleep on a note, or run cgo. The list is walked with a
//! visited set and a length bound: a loop or garbage link is an error, never a hang.
use std::collections::HashSet;

use super::{
    error::ReadError,
    layout::{RuntimeLayout, Var},
    memory::{ProcessMemory, plausible_range, read_u64},
    record::Span,
};

/// Most Ms walked (the runtime's default limit is 10,000 and exceeding it is fatal).
pub const MAX_MS: usize = 100_000;

/// Largest thread id (`PID_MAX_LIMIT` on 64-bit Linux is 2^22).
const MAX_TID: u64 = 1 << 22;

/// One M.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MInfo {
    /// Address of the `m` struct.
    pub addr: u64,
    /// `m.id`: the runtime's M number (0 is m0, the main thread).
    pub id: i64,
    /// `m.procid`: the thread id; 0 while the thread has not started (or an unused extra M).
    pub tid: u32,
    /// `m.spinning`: out of work and looking for some.
    pub spinning: bool,
    /// `m.blocked`: parked on a note (futex sleep).
    pub blocked: bool,
    /// `m.incgo`: inside a cgo call.
    pub incgo: bool,
    /// `m.ncgocall`: cgo calls made by this M.
    pub ncgocalls: u64,
    /// `m.curg != nil`: the M runs (or is in a syscall or cgo call for) a user goroutine.
    pub has_curg: bool,
    /// `m.curg.goid` (None when there is no curg or it could not be read).
    pub curg_goid: Option<u64>,
    /// `m.p != 0`: the M holds a P (idle Ms, sysmon and Ms in syscalls or cgo calls do not).
    pub has_p: bool,
    /// `m.p.id` (None when there is no P or it could not be read).
    pub p_id: Option<i32>,
}

/// Reads every M of a process whose load bias is `bias`, in `allm` order (newest first).
pub fn read_ms(
    mem: &dyn ProcessMemory,
    layout: &RuntimeLayout,
    bias: u64,
) -> Result<Vec<MInfo>, ReadError> {
    let o = layout.offsets();
    let head = layout.addr(Var::Allm, bias)?;
    let span = Span::of(&[
        o.m_procid,
        o.m_id,
        o.m_curg,
        o.m_p,
        o.m_spinning,
        o.m_blocked,
        o.m_incgo,
        o.m_ncgocall,
        o.m_alllink,
    ])
    .ok_or(ReadError::Implausible {
        what: "m layout",
        value: 0,
    })?;
    let mut next = read_u64(mem, head).map_err(ReadError::memory("runtime.allm"))?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut rec = vec![0u8; span.size()];
    while next != 0 {
        if out.len() >= MAX_MS {
            return Err(ReadError::TooMany {
                what: "runtime.allm",
                limit: MAX_MS as u64,
            });
        }
        if !seen.insert(next) {
            return Err(ReadError::Cycle {
                what: "runtime.allm",
            });
        }
        let addr = next;
        if addr % 8 != 0 || !plausible_range(addr, span.size()) {
            return Err(ReadError::Implausible {
                what: "an m pointer",
                value: addr,
            });
        }
        mem.read(span.addr(addr).unwrap_or(0), &mut rec)
            .map_err(ReadError::memory("an m"))?;
        let get = |f| span.get(&rec, f).unwrap_or(0);
        let flag = |f| span.get_bool(&rec, f).unwrap_or(false);
        let id = span.get_i64(&rec, o.m_id).unwrap_or(-1);
        let procid = get(o.m_procid);
        if !(0..=i64::from(i32::MAX)).contains(&id) || procid >= MAX_TID {
            return Err(ReadError::Implausible {
                what: if procid >= MAX_TID {
                    "m.procid"
                } else {
                    "m.id"
                },
                value: if procid >= MAX_TID { procid } else { id as u64 },
            });
        }
        let curg = get(o.m_curg);
        let p = get(o.m_p);
        out.push(MInfo {
            addr,
            id,
            tid: procid as u32,
            spinning: flag(o.m_spinning),
            blocked: flag(o.m_blocked),
            incgo: flag(o.m_incgo),
            ncgocalls: get(o.m_ncgocall),
            has_curg: curg != 0,
            curg_goid: deref(mem, curg, o.g_goid),
            has_p: p != 0,
            p_id: deref(mem, p, o.p_id).map(|v| v as i32),
        });
        next = get(o.m_alllink);
    }
    Ok(out)
}

/// The field `f` of the struct at `base` (None for nil or unreadable pointers: a g or p that
/// changes under the reader is not an error of the whole walk).
fn deref(mem: &dyn ProcessMemory, base: u64, f: gocpu_gobin::offsets::Field) -> Option<u64> {
    if base == 0 {
        return None;
    }
    let span = Span::of(&[f])?;
    let mut b = [0u8; 8];
    let buf = b.get_mut(..span.size())?;
    mem.read(span.addr(base)?, buf).ok()?;
    span.get(buf, f)
}
