//! `runtime.firstmoduledata`, found without symbols: the one word-aligned place in writable
//! data whose first words point at the pclntab and its sub-tables (Go 1.16+ layout).
//!
//! It gives the text start (the pclntab header has none in Go 1.26+), `go:func.*` (where 1.18+
//! funcdata offsets start) and the data/bss ranges.
use crate::{
    bytes::Data,
    elf::{Elf, PF_W},
    error::GobinError,
    limits,
    pclntab::{Format, Pclntab},
    source::{ByteSource, SourceError},
    version::GoVersion,
};

/// The moduledata fields this crate uses (virtual addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleData {
    /// Address of the moduledata itself.
    pub vaddr: u64,
    /// `runtime.text`: the base of 1.18+ entry offsets.
    pub text: u64,
    /// `runtime.etext`.
    pub etext: u64,
    /// [start, end) of noptrdata, data, bss and noptrbss.
    pub data_ranges: [(u64, u64); 4],
    /// `go:func.*` (Go 1.18+).
    pub gofunc: Option<u64>,
}

impl ModuleData {
    /// Whether `addr` lies in the module's data or bss.
    pub fn holds_data(&self, addr: u64) -> bool {
        self.data_ranges
            .iter()
            .any(|&(start, end)| addr >= start && addr < end)
    }
}

/// Word index of `gofunc`, by layout: 1.18-1.19 have no coverage counters, 1.20-1.26 do, 1.27
/// adds typedesclen, itaboffset and itabsize before it.
fn gofunc_index(tab: &Pclntab, version: Option<GoVersion>, words: &[u64]) -> Option<usize> {
    match tab.format() {
        Format::Go116 | Format::Go12 => None,
        Format::Go118 => Some(38),
        Format::Go120 => match version {
            Some(v) if v.minor >= 27 => Some(43),
            Some(_) => Some(40),
            // Unknown version: in 1.20-1.26 word 38 is etypes (>= types, word 37); in 1.27+ it
            // is typedesclen, a length far below the address of types.
            None => Some(if words.get(38)? >= words.get(37)? {
                40
            } else {
                43
            }),
        },
    }
}

const WORDS: usize = 46;

/// Searches writable segments for the moduledata that points at `tab`.
pub(crate) fn find(
    elf: &Elf,
    src: &dyn ByteSource,
    tab: &Pclntab,
    version: Option<GoVersion>,
) -> Result<Option<ModuleData>, GobinError> {
    if matches!(tab.format(), Format::Go12) {
        return Ok(None);
    }
    let ps = u64::from(tab.ptr_size());
    let needle = tab.vaddr();
    let mut budget = limits::MAX_MODULEDATA_SCAN;
    // Sized to the largest chunk actually read: small segments cost small buffers.
    let mut buf: Vec<u8> = Vec::new();
    for seg in elf.loads().filter(|s| s.flags & PF_W != 0) {
        let size = seg.filesz.min(src.len().saturating_sub(seg.offset));
        let mut pos = 0u64;
        while pos < size && budget > 0 {
            let n = (size - pos).min(limits::CHUNK).min(budget);
            budget -= n;
            buf.resize(buf.len().max(n as usize), 0);
            let chunk = buf.get_mut(..n as usize).unwrap_or_default();
            match src.read_at(seg.offset + pos, chunk) {
                Ok(()) => {}
                Err(SourceError::OutOfBounds { .. }) => break,
                Err(e) => return Err(e.into()),
            }
            let d = Data::new(chunk, tab.endian());
            let mut i = 0usize;
            // Segment offsets and addresses agree modulo the page size, so aligning the
            // offset aligns the address.
            while (i as u64) + ps <= n {
                if d.word(i, tab.ptr_size()) == Some(needle)
                    && let Some(md) = candidate(elf, src, tab, version, seg.vaddr + pos + i as u64)?
                {
                    return Ok(Some(md));
                }
                i += ps as usize;
            }
            pos += n;
        }
    }
    Ok(None)
}

/// Reads and validates a moduledata candidate at `addr`.
fn candidate(
    elf: &Elf,
    src: &dyn ByteSource,
    tab: &Pclntab,
    version: Option<GoVersion>,
    addr: u64,
) -> Result<Option<ModuleData>, GobinError> {
    let ps = usize::from(tab.ptr_size());
    let len = (WORDS * ps) as u64;
    let Some(off) = elf.file_range(addr, len) else {
        return Ok(None);
    };
    let mut raw = vec![0u8; WORDS * ps];
    src.read_at(off, &mut raw)?;
    let d = Data::new(&raw, tab.endian());
    let words: Vec<u64> = (0..WORDS)
        .map_while(|i| d.word(i * ps, tab.ptr_size()))
        .collect();
    let w = |i: usize| words.get(i).copied();
    let base = tab.vaddr();
    // funcnametab, cutab, filetab, pctab, pclntable slices start at the header's offsets.
    let [names, cus, files, pcs, funcs] = tab.table_offsets();
    let expect = [
        (1, names),
        (4, cus),
        (7, files),
        (10, pcs),
        (13, funcs),
        (16, funcs),
    ];
    for (i, rel) in expect {
        if w(i) != base.checked_add(rel) {
            return Ok(None);
        }
    }
    if w(17) != Some(tab.count() as u64 + 1) {
        return Ok(None);
    }
    let (Some(text), Some(etext)) = (w(22), w(23)) else {
        return Ok(None);
    };
    if text > etext {
        return Ok(None);
    }
    let range = |i: usize| Some((w(i)?, w(i + 1)?));
    let (Some(a), Some(b), Some(c), Some(e)) = (range(24), range(26), range(28), range(30)) else {
        return Ok(None);
    };
    let gofunc = gofunc_index(tab, version, &words)
        .and_then(w)
        .filter(|&g| g != 0 && elf.file_offset(g).is_some());
    Ok(Some(ModuleData {
        vaddr: addr,
        text,
        etext,
        data_ranges: [a, b, c, e],
        gofunc,
    }))
}
