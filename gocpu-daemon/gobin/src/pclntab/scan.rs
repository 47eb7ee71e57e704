//! Finding `.gopclntab`: by section name, else by scanning loadable segments for a magic whose
//! header validates (binaries whose section headers were removed).
use super::Header;
use crate::{
    elf::{Elf, PF_W, PF_X, Segment},
    error::GobinError,
    limits,
    source::{ByteSource, SourceError},
};

/// How the table was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// Through the `.gopclntab` (or `.data.rel.ro.gopclntab`) section header.
    Section,
    /// By scanning segment bytes for the magic.
    MagicScan,
}

/// Where the table lies: virtual address, file offset, size (to the end of its section or, when
/// scanned, of its segment's file bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub vaddr: u64,
    pub offset: u64,
    pub size: u64,
    pub found: Found,
}

/// Candidates whose header validates but whose full parse fails are skipped; past this many
/// the scan gives up (a hostile file full of fake headers must not cost a parse each).
const MAX_CANDIDATES: usize = 16;

/// Finds the table: the section when there is one, else the first scanned candidate that
/// `accept` takes (it parses the whole table; a false positive is skipped).
pub(crate) fn locate<T>(
    elf: &Elf,
    src: &dyn ByteSource,
    mut accept: impl FnMut(Location) -> Result<Option<T>, GobinError>,
) -> Result<Option<T>, GobinError> {
    for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
        if let Some(s) = elf.section(name)
            && let Some((offset, size)) = s.file_range()
        {
            return accept(Location {
                vaddr: s.addr,
                offset,
                size,
                found: Found::Section,
            });
        }
    }
    // Read-only data first (where Go's linkers put it), then relro, then the rest.
    let rank = |s: &Segment| match (s.flags & PF_W != 0, s.flags & PF_X != 0) {
        (false, false) => 0,
        (true, false) => 1,
        _ => 2,
    };
    let mut loads: Vec<&Segment> = elf.loads().collect();
    loads.sort_by_key(|s| rank(s));
    let mut tried = 0usize;
    for seg in loads {
        let mut from = 0u64;
        while let Some(loc) = scan_segment(src, seg, from)? {
            if let Some(found) = accept(loc)? {
                return Ok(Some(found));
            }
            tried += 1;
            if tried >= MAX_CANDIDATES {
                return Ok(None);
            }
            from = loc.offset - seg.offset + 4;
        }
    }
    Ok(None)
}

fn is_candidate(w: &[u8]) -> bool {
    let magic_le = matches!(
        w.get(..4),
        Some([0xfb | 0xfa | 0xf0 | 0xf1, 0xff, 0xff, 0xff])
    );
    let magic_be = matches!(
        w.get(..4),
        Some([0xff, 0xff, 0xff, 0xfb | 0xfa | 0xf0 | 0xf1])
    );
    (magic_le || magic_be) && matches!(w.get(4..8), Some([0, 0, 1 | 2 | 4, 4 | 8]))
}

/// Scans one segment's file bytes from segment offset `from` in chunks at 4-byte alignment
/// (the table is pointer-aligned).
fn scan_segment(
    src: &dyn ByteSource,
    seg: &Segment,
    from: u64,
) -> Result<Option<Location>, GobinError> {
    let size = seg.filesz.min(src.len().saturating_sub(seg.offset));
    // Sized to the largest chunk actually read: small segments cost small buffers.
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = from;
    while pos < size {
        let n = (size - pos).min(limits::CHUNK);
        buf.resize(buf.len().max(n as usize), 0);
        let chunk = buf.get_mut(..n as usize).unwrap_or_default();
        match src.read_at(seg.offset + pos, chunk) {
            Ok(()) => {}
            Err(SourceError::OutOfBounds { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let mut i = 0usize;
        while i + 8 <= chunk.len() {
            if let Some(w) = chunk.get(i..i + 8)
                && is_candidate(w)
            {
                let at = pos + i as u64;
                if let Some(loc) = validate(src, seg, at, size)? {
                    return Ok(Some(loc));
                }
            }
            i += 4;
        }
        // Overlap so a header straddling two chunks is seen whole next time.
        pos += if n == limits::CHUNK { n - 8 } else { n };
    }
    Ok(None)
}

/// Checks the header at segment offset `at`: it must parse and its tables must fit the segment.
fn validate(
    src: &dyn ByteSource,
    seg: &Segment,
    at: u64,
    seg_size: u64,
) -> Result<Option<Location>, GobinError> {
    let mut head = [0u8; 72];
    let avail = (seg_size - at).min(72) as usize;
    let h = head.get_mut(..avail).unwrap_or_default();
    src.read_at(seg.offset + at, h)?;
    let Ok(header) = Header::parse(h) else {
        return Ok(None);
    };
    let rest = seg_size - at;
    if header.offsets.iter().any(|&o| o >= rest) || header.nfunc == 0 {
        return Ok(None);
    }
    Ok(Some(Location {
        vaddr: seg.vaddr + at,
        offset: seg.offset + at,
        size: rest,
        found: Found::MagicScan,
    }))
}
