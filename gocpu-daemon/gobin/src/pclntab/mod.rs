//! `.gopclntab`: Go's own function table, PC -> file/line tables and (via funcdata) inline trees.
//!
//! Four formats exist (runtime/symtab.go, debug/gosym), told apart by the magic:
//! Go 1.2-1.15 (`0xfffffffb`), 1.16-1.17 (`0xfffffffa`), 1.18-1.19 (`0xfffffff0`) and 1.20+
//! (`0xfffffff1`). The function table is sorted by entry PC, so it is the lookup index itself:
//! nothing is copied out of the table, and memory stays at the table's own size.
mod func;
mod inline;
mod pcvalue;
pub(crate) mod scan;

pub(crate) use func::FuncData;
pub use func::FuncInfo;
pub(crate) use inline::{InlineLayout, RawFrame, TreeBytes};

use crate::{
    bytes::{Data, Endian, usize_of},
    error::GobinError,
    limits,
};

/// The pclntab format, named after the first Go release that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// Go 1.2 to 1.15: absolute entry PCs, names and tables addressed from the table start.
    Go12,
    /// Go 1.16 and 1.17: separate name, CU, file and PC tables.
    Go116,
    /// Go 1.18 and 1.19: 32-bit entry offsets from the text start; funcdata relative to go:func.*.
    Go118,
    /// Go 1.20 and later: as 1.18, plus a start line per function and a new inline tree entry.
    Go120,
}

impl Format {
    fn from_magic(magic: u32) -> Option<Format> {
        match magic {
            0xffff_fffb => Some(Format::Go12),
            0xffff_fffa => Some(Format::Go116),
            0xffff_fff0 => Some(Format::Go118),
            0xffff_fff1 => Some(Format::Go120),
            _ => None,
        }
    }
}

/// A parsed `.gopclntab`.
#[derive(Clone, Debug)]
pub struct Pclntab {
    data: Vec<u8>,
    vaddr: u64,
    format: Format,
    endian: Endian,
    quantum: u8,
    ptr_size: u8,
    nfunc: usize,
    header_text_start: u64,
    text_start: u64,
    funcnametab: usize,
    cutab: usize,
    filetab: usize,
    nfiletab: u32,
    pctab: usize,
    funcbase: usize,
    functab: usize,
}

const fn malformed(what: &'static str) -> GobinError {
    GobinError::MalformedPclntab { what }
}

/// The fixed header fields, enough to validate a candidate found by scanning.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub format: Format,
    pub endian: Endian,
    pub quantum: u8,
    pub ptr_size: u8,
    pub nfunc: u64,
    /// Offsets from the table start of funcnametab, cutab, filetab, pctab and the func area
    /// (1.16+); zeros for Go12.
    pub offsets: [u64; 5],
    pub text_start: u64,
}

impl Header {
    /// Parses the header at the start of `b` (which may hold more than the header).
    pub fn parse(b: &[u8]) -> Result<Header, GobinError> {
        let head: [u8; 8] = b
            .get(..8)
            .and_then(|h| h.try_into().ok())
            .ok_or(malformed("shorter than its header"))?;
        let le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let be = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let (format, endian) = match (Format::from_magic(le), Format::from_magic(be)) {
            (Some(f), _) => (f, Endian::Little),
            (None, Some(f)) => (f, Endian::Big),
            (None, None) => return Err(malformed("unknown magic")),
        };
        let (quantum, ptr_size) = (head[6], head[7]);
        if head[4] != 0 || head[5] != 0 {
            return Err(malformed("header padding is not zero"));
        }
        if !matches!(quantum, 1 | 2 | 4) {
            return Err(malformed("instruction quantum"));
        }
        if !matches!(ptr_size, 4 | 8) {
            return Err(malformed("pointer size"));
        }
        let d = Data::new(b, endian);
        let ps = usize::from(ptr_size);
        let word = |i: usize| {
            d.word(8 + i * ps, ptr_size)
                .ok_or(malformed("truncated header"))
        };
        let nfunc = word(0)?;
        if nfunc > limits::MAX_FUNCS {
            return Err(GobinError::TooLarge {
                what: "function count",
                size: nfunc,
                limit: limits::MAX_FUNCS,
            });
        }
        let (offsets, text_start) = match format {
            Format::Go12 => ([0; 5], 0),
            Format::Go116 => ([word(2)?, word(3)?, word(4)?, word(5)?, word(6)?], 0),
            Format::Go118 | Format::Go120 => {
                ([word(3)?, word(4)?, word(5)?, word(6)?, word(7)?], word(2)?)
            }
        };
        if format != Format::Go12 && offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(malformed("table offsets out of order"));
        }
        Ok(Header {
            format,
            endian,
            quantum,
            ptr_size,
            nfunc,
            offsets,
            text_start,
        })
    }
}

impl Pclntab {
    /// Parses a whole `.gopclntab` whose first byte is at virtual address `vaddr`.
    ///
    /// For 1.18+ the text start comes from the header; Go 1.26+ writes 0 there, and a PIE's
    /// header may be unrelocated: callers then supply it with [`Pclntab::set_text_start`].
    pub fn parse(data: Vec<u8>, vaddr: u64) -> Result<Pclntab, GobinError> {
        let h = Header::parse(&data)?;
        let d = Data::new(&data, h.endian);
        let ps = usize::from(h.ptr_size);
        let nfunc = usize_of(h.nfunc).ok_or(malformed("function count"))?;
        let off = |v: u64| {
            usize_of(v)
                .filter(|&o| o <= data.len())
                .ok_or(malformed("table offset beyond end"))
        };
        let field = match h.format {
            Format::Go118 | Format::Go120 => 4,
            _ => ps,
        };
        let functab_len = nfunc
            .checked_mul(2)
            .and_then(|n| n.checked_add(1))
            .and_then(|n| n.checked_mul(field))
            .ok_or(malformed("function table size"))?;
        let mut t = Pclntab {
            data: Vec::new(),
            vaddr,
            format: h.format,
            endian: h.endian,
            quantum: h.quantum,
            ptr_size: h.ptr_size,
            nfunc,
            header_text_start: h.text_start,
            text_start: h.text_start,
            funcnametab: 0,
            cutab: 0,
            filetab: 0,
            nfiletab: 0,
            pctab: 0,
            funcbase: 0,
            functab: 0,
        };
        match h.format {
            Format::Go12 => {
                t.functab = 8 + ps;
                let fileoff_at = t
                    .functab
                    .checked_add(functab_len)
                    .ok_or(malformed("function table size"))?;
                let fileoff = d.u32(fileoff_at).ok_or(malformed("file table offset"))?;
                t.filetab = off(fileoff.into())?;
                t.nfiletab = d.u32(t.filetab).ok_or(malformed("file table"))?;
            }
            _ => {
                let [names, cus, files, pcs, funcs] = h.offsets;
                t.funcnametab = off(names)?;
                t.cutab = off(cus)?;
                t.filetab = off(files)?;
                t.pctab = off(pcs)?;
                t.funcbase = off(funcs)?;
                t.functab = t.funcbase;
            }
        }
        let end = t
            .functab
            .checked_add(functab_len)
            .ok_or(malformed("function table size"))?;
        if end > data.len() {
            return Err(malformed("function table beyond end"));
        }
        t.data = data;
        t.check_sorted()?;
        Ok(t)
    }

    /// Binary search needs a sorted table; a hostile one is rejected here, once.
    fn check_sorted(&self) -> Result<(), GobinError> {
        let mut prev = 0u64;
        for i in 0..=self.nfunc {
            let e = self.raw_entry(i).ok_or(malformed("function table"))?;
            if e < prev {
                return Err(malformed("function table not sorted"));
            }
            prev = e;
        }
        Ok(())
    }

    fn d(&self) -> Data<'_> {
        Data::new(&self.data, self.endian)
    }

    /// Entry i of the function table before adding the text start (1.18+ offsets).
    fn raw_entry(&self, i: usize) -> Option<u64> {
        let d = self.d();
        match self.format {
            Format::Go118 | Format::Go120 => d.u32(self.functab + i.checked_mul(8)?).map(u64::from),
            _ => {
                let ps = usize::from(self.ptr_size);
                d.word(self.functab + i.checked_mul(2 * ps)?, self.ptr_size)
            }
        }
    }

    /// Entry PC of function i (i == count() gives the end of the last function).
    pub(crate) fn entry(&self, i: usize) -> Option<u64> {
        let raw = self.raw_entry(i)?;
        Some(match self.format {
            Format::Go118 | Format::Go120 => self.text_start.wrapping_add(raw),
            _ => raw,
        })
    }

    /// Offset into the data of function i's `_func` struct.
    fn func_offset(&self, i: usize) -> Option<usize> {
        let d = self.d();
        let v = match self.format {
            Format::Go118 | Format::Go120 => d
                .u32(self.functab + i.checked_mul(8)?.checked_add(4)?)?
                .into(),
            _ => {
                let ps = usize::from(self.ptr_size);
                d.word(
                    self.functab + i.checked_mul(2 * ps)?.checked_add(ps)?,
                    self.ptr_size,
                )?
            }
        };
        self.funcbase.checked_add(usize_of(v)?)
    }

    /// The format of this table.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Number of functions.
    pub fn count(&self) -> usize {
        self.nfunc
    }

    /// Pointer size recorded in the header.
    pub fn ptr_size(&self) -> u8 {
        self.ptr_size
    }

    /// Byte order of the table.
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// Virtual address of the table's first byte.
    pub fn vaddr(&self) -> u64 {
        self.vaddr
    }

    /// Size of the table in bytes (as loaded).
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// The raw table bytes.
    pub(crate) fn data(&self) -> &[u8] {
        &self.data
    }

    /// Header offsets of the sub-tables (1.16+), for validating moduledata candidates.
    pub(crate) fn table_offsets(&self) -> [u64; 5] {
        [
            self.funcnametab as u64,
            self.cutab as u64,
            self.filetab as u64,
            self.pctab as u64,
            self.funcbase as u64,
        ]
    }

    /// Whether entry PCs are offsets from a text start (1.18+).
    pub fn uses_text_start(&self) -> bool {
        matches!(self.format, Format::Go118 | Format::Go120)
    }

    /// The text start written in the header (0 in Go 1.26+ and before 1.18).
    pub fn header_text_start(&self) -> u64 {
        self.header_text_start
    }

    /// The text start in use.
    pub fn text_start(&self) -> u64 {
        self.text_start
    }

    /// Sets the text start entry offsets are relative to (1.18+; ignored before).
    pub fn set_text_start(&mut self, text_start: u64) {
        if self.uses_text_start() {
            self.text_start = text_start;
        }
    }

    /// Function i.
    pub fn func(&self, i: usize) -> Option<FuncInfo<'_>> {
        if i >= self.nfunc {
            return None;
        }
        let off = self.func_offset(i)?;
        let entry = self.entry(i)?;
        let end = self.entry(i + 1)?;
        FuncInfo::new(self, off, entry, end)
    }

    /// Index of the function whose [entry, next entry) holds `pc`.
    pub fn find(&self, pc: u64) -> Option<usize> {
        let (first, last) = (self.entry(0)?, self.entry(self.nfunc)?);
        if self.nfunc == 0 || pc < first || pc >= last {
            return None;
        }
        // Largest i with entry(i) <= pc; entries are sorted (checked at parse time).
        let (mut lo, mut hi) = (0usize, self.nfunc);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid)? <= pc {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }

    /// Whether the name at `nameoff` is exactly `name` (without scanning the whole name).
    pub(crate) fn name_is(&self, nameoff: u32, name: &[u8]) -> bool {
        let base = match self.format {
            Format::Go12 => 0,
            _ => self.funcnametab,
        };
        let Some(start) = usize_of(nameoff.into()).and_then(|o| base.checked_add(o)) else {
            return false;
        };
        let Some(end) = start.checked_add(name.len()) else {
            return false;
        };
        self.data.get(start..end) == Some(name) && self.data.get(end) == Some(&0)
    }

    /// A function name by its name offset.
    pub(crate) fn name_at(&self, nameoff: u32) -> Option<&[u8]> {
        let base = match self.format {
            Format::Go12 => 0,
            _ => self.funcnametab,
        };
        let off = base.checked_add(usize_of(nameoff.into())?)?;
        self.d().cstr(off, limits::MAX_NAME)
    }

    /// The file name for file number `fno` of a function in compilation unit `cu`.
    pub(crate) fn file_name(&self, cu: u32, fno: i32) -> Option<&[u8]> {
        let fno = u32::try_from(fno).ok()?;
        let d = self.d();
        match self.format {
            Format::Go12 => {
                if fno == 0 || fno >= self.nfiletab {
                    return None;
                }
                let at = self.filetab.checked_add(usize_of(u64::from(fno) * 4)?)?;
                let name_off = d.u32(at)?;
                d.cstr(usize_of(name_off.into())?, limits::MAX_NAME)
            }
            _ => {
                let idx = u64::from(cu).checked_add(fno.into())?;
                let at = self.cutab.checked_add(usize_of(idx.checked_mul(4)?)?)?;
                let file_off = d.u32(at)?;
                if file_off == u32::MAX {
                    return None;
                }
                let at = self.filetab.checked_add(usize_of(file_off.into())?)?;
                d.cstr(at, limits::MAX_NAME)
            }
        }
    }

    /// The start of the PC-value table at `off` (0 means "no table").
    pub(crate) fn pctab_at(&self, off: u32) -> Option<&[u8]> {
        if off == 0 {
            return None;
        }
        let base = match self.format {
            Format::Go12 => 0,
            _ => self.pctab,
        };
        self.data.get(base.checked_add(usize_of(off.into())?)?..)
    }

    /// Instruction size quantum PC deltas are multiplied by.
    pub(crate) fn quantum(&self) -> u8 {
        self.quantum
    }
}
