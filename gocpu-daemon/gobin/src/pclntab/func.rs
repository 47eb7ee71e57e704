//! One `_func` record of the pclntab (runtime/runtime2.go `_func`, per format).
use super::{Format, Pclntab, pcvalue};
use crate::bytes::usize_of;

/// `PCDATA_InlTreeIndex` (internal/abi): the PC-value table giving the inline tree index.
pub(crate) const PCDATA_INL_TREE_INDEX: u32 = 2;
/// `FUNCDATA_InlTree` (internal/abi): the funcdata slot holding the inline tree.
pub(crate) const FUNCDATA_INL_TREE: u32 = 3;

/// A view of one function's record.
#[derive(Clone, Copy, Debug)]
pub struct FuncInfo<'a> {
    tab: &'a Pclntab,
    off: usize,
    entry: u64,
    end: u64,
}

impl<'a> FuncInfo<'a> {
    pub(super) fn new(tab: &'a Pclntab, off: usize, entry: u64, end: u64) -> Option<Self> {
        let f = FuncInfo {
            tab,
            off,
            entry,
            end,
        };
        // The fixed part must be inside the table; variable parts are checked when read.
        tab.data().get(off..off.checked_add(f.fixed_size())?)?;
        Some(f)
    }

    /// Size of the fixed part of `_func` before the pcdata offsets.
    fn fixed_size(&self) -> usize {
        let ps = usize::from(self.tab.ptr_size());
        match self.tab.format() {
            // entry, nameoff, args, deferreturn, pcsp, pcfile, pcln, npcdata, 4 bytes
            // (funcID, 2 pad, nfuncdata).
            Format::Go12 => ps + 32,
            // ... plus cuOffset.
            Format::Go116 => ps + 36,
            // 32-bit entryOff instead of a pointer.
            Format::Go118 => 40,
            // ... plus startLine.
            Format::Go120 => 44,
        }
    }

    /// The n-th 32-bit field after the entry (1 = nameoff, 5 = pcfile, ...), as debug/gosym.
    fn field(&self, n: usize) -> Option<u32> {
        let first = match self.tab.format() {
            Format::Go118 | Format::Go120 => 4,
            _ => usize::from(self.tab.ptr_size()),
        };
        let at = self.off.checked_add(first + (n.checked_sub(1)?) * 4)?;
        self.tab.d().u32(at)
    }

    /// Entry PC.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// End PC (the next function's entry).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Whether the function is named exactly `name`.
    pub fn name_is(&self, name: &[u8]) -> bool {
        self.field(1).is_some_and(|off| self.tab.name_is(off, name))
    }

    /// Name as the pclntab spells it.
    pub fn name(&self) -> Option<&'a [u8]> {
        self.tab.name_at(self.field(1)?)
    }

    /// The `_func` entry field (1.2-1.17 hold the absolute entry PC here as well).
    pub fn recorded_entry(&self) -> Option<u64> {
        match self.tab.format() {
            Format::Go118 | Format::Go120 => {
                let off = self.tab.d().u32(self.off)?;
                Some(self.tab.text_start().wrapping_add(off.into()))
            }
            _ => self.tab.d().word(self.off, self.tab.ptr_size()),
        }
    }

    fn pcfile(&self) -> Option<u32> {
        self.field(5)
    }

    fn pcln(&self) -> Option<u32> {
        self.field(6)
    }

    fn npcdata(&self) -> Option<u32> {
        self.field(7)
    }

    fn cu_offset(&self) -> u32 {
        match self.tab.format() {
            Format::Go12 => 0,
            _ => self.field(8).unwrap_or(0),
        }
    }

    /// Line of the `func` keyword (Go 1.20+).
    pub fn start_line(&self) -> Option<i32> {
        match self.tab.format() {
            Format::Go120 => self.field(9).map(|v| v as i32),
            _ => None,
        }
    }

    fn nfuncdata(&self) -> Option<u8> {
        self.tab
            .d()
            .u8(self.off.checked_add(self.fixed_size() - 1)?)
    }

    /// The value of a PC-value table at `pc`.
    pub(crate) fn pcvalue(&self, table: u32, pc: u64) -> Option<i32> {
        if pc < self.entry || pc >= self.end {
            return None;
        }
        let t = self.tab.pctab_at(table)?;
        pcvalue::lookup(t, self.entry, pc, self.tab.quantum())
    }

    /// File and line at `pc` (the innermost position when code was inlined).
    pub fn file_line(&self, pc: u64) -> Option<(&'a [u8], i32)> {
        let fno = self.pcvalue(self.pcfile()?, pc)?;
        let line = self.pcvalue(self.pcln()?, pc)?;
        Some((self.tab.file_name(self.cu_offset(), fno)?, line))
    }

    /// Value of pcdata table `i` at `pc`.
    pub(crate) fn pcdata(&self, i: u32, pc: u64) -> Option<i32> {
        if i >= self.npcdata()? {
            return None;
        }
        let at = self
            .off
            .checked_add(self.fixed_size())?
            .checked_add(usize_of(u64::from(i) * 4)?)?;
        let table = self.tab.d().u32(at)?;
        self.pcvalue(table, pc)
    }

    /// Funcdata slot `i`: for 1.18+ an offset from `go:func.*` (`Relative`), before that an
    /// absolute address (`Absolute`).
    pub(crate) fn funcdata(&self, i: u32) -> Option<FuncData> {
        if i >= u32::from(self.nfuncdata()?) {
            return None;
        }
        let npc = usize_of(self.npcdata()?.into())?;
        let base = self
            .off
            .checked_add(self.fixed_size())?
            .checked_add(npc.checked_mul(4)?)?;
        let d = self.tab.d();
        match self.tab.format() {
            Format::Go118 | Format::Go120 => {
                let v = d.u32(base.checked_add(usize_of(u64::from(i) * 4)?)?)?;
                (v != u32::MAX).then_some(FuncData::Relative(v))
            }
            _ => {
                let ps = self.tab.ptr_size();
                // The runtime aligns the pointer array by the absolute address.
                let mut at = base;
                if ps == 8 && (self.tab.vaddr().wrapping_add(at as u64)) & 4 != 0 {
                    at = at.checked_add(4)?;
                }
                let at = at.checked_add(usize_of(u64::from(i) * u64::from(ps))?)?;
                let v = d.word(at, ps)?;
                (v != 0).then_some(FuncData::Absolute(v))
            }
        }
    }
}

/// Where a funcdata blob lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FuncData {
    /// Offset from moduledata.gofunc (`go:func.*`), Go 1.18+.
    Relative(u32),
    /// Virtual address, before Go 1.18.
    Absolute(u64),
}
