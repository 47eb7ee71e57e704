//! Bytes of funcdata blobs (inline trees) for 1.18+ binaries: `go:func.*` lies inside the
//! pclntab since Go 1.26 and in `.rodata` before; the latter region is loaded once, lazily.
use std::sync::OnceLock;

use crate::{
    elf::Elf,
    limits,
    pclntab::{FuncData, Pclntab, TreeBytes},
    source::{ByteSource, read_vec},
};

/// A copy of the file bytes at [vaddr, vaddr + bytes.len()).
#[derive(Debug)]
struct Region {
    vaddr: u64,
    bytes: Vec<u8>,
}

impl Region {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(rel) = addr.checked_sub(self.vaddr) else {
            return false;
        };
        let Ok(rel) = usize::try_from(rel) else {
            return false;
        };
        match rel
            .checked_add(buf.len())
            .and_then(|end| self.bytes.get(rel..end))
        {
            Some(s) => {
                buf.copy_from_slice(s);
                true
            }
            None => false,
        }
    }
}

/// Resolves funcdata references to bytes.
#[derive(Debug, Default)]
pub(crate) struct FuncDataBytes {
    gofunc: Option<u64>,
    region: OnceLock<Option<Region>>,
}

impl FuncDataBytes {
    pub fn new(gofunc: Option<u64>) -> Self {
        FuncDataBytes {
            gofunc,
            region: OnceLock::new(),
        }
    }

    /// `go:func.*` up to the end of its segment's file bytes, or up to the pclntab when that
    /// follows it (the pclntab is already in memory). Not loaded when larger than the pclntab,
    /// so a parse never holds more than twice the pclntab: entries are then read with `pread`.
    fn load(&self, elf: &Elf, src: &dyn ByteSource, tab: &Pclntab) -> Option<Region> {
        let g = self.gofunc?;
        let seg = elf.load_containing(g)?;
        let mut end = seg.vaddr.checked_add(seg.filesz)?;
        if tab.vaddr() > g && tab.vaddr() < end {
            end = tab.vaddr();
        }
        let len = (end - g).min(limits::MAX_GOFUNC);
        if len > tab.size() as u64 {
            return None;
        }
        let off = elf.file_offset(g)?;
        let bytes = read_vec(src, off, len, limits::MAX_GOFUNC).ok()?;
        Some(Region { vaddr: g, bytes })
    }
}

/// [`TreeBytes`] over a binary: pclntab first, then the lazily loaded region, then `pread`.
pub(crate) struct Resolver<'a> {
    pub fdb: &'a FuncDataBytes,
    pub elf: &'a Elf,
    pub src: &'a dyn ByteSource,
    pub tab: &'a Pclntab,
}

impl TreeBytes for Resolver<'_> {
    fn read(&self, at: FuncData, offset: u64, buf: &mut [u8]) -> bool {
        let base = match at {
            FuncData::Relative(off) => match self.fdb.gofunc {
                Some(g) => g.checked_add(off.into()),
                None => None,
            },
            FuncData::Absolute(addr) => Some(addr),
        };
        let Some(addr) = base.and_then(|b| b.checked_add(offset)) else {
            return false;
        };
        // Inside the pclntab (Go 1.26+): no copy needed.
        if let Some(rel) = addr.checked_sub(self.tab.vaddr())
            && let Ok(rel) = usize::try_from(rel)
            && let Some(s) = rel
                .checked_add(buf.len())
                .and_then(|end| self.tab.data().get(rel..end))
        {
            buf.copy_from_slice(s);
            return true;
        }
        if matches!(at, FuncData::Relative(_)) {
            let region = self
                .fdb
                .region
                .get_or_init(|| self.fdb.load(self.elf, self.src, self.tab));
            if let Some(r) = region
                && r.read(addr, buf)
            {
                return true;
            }
        }
        let len = buf.len() as u64;
        match self.elf.file_range(addr, len) {
            Some(off) => self.src.read_at(off, buf).is_ok(),
            None => false,
        }
    }
}
