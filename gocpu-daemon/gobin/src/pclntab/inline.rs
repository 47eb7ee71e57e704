//! Inline trees: `FUNCDATA_InlTree` holds one entry per inlined call, `PCDATA_InlTreeIndex`
//! gives the innermost entry at a PC, and each entry's `parentPc` is a PC in the outer
//! function whose own index leads one level out (the runtime's inline unwinder).
use super::{
    FuncInfo, Pclntab,
    func::{FUNCDATA_INL_TREE, FuncData, PCDATA_INL_TREE_INDEX},
};
use crate::{bytes::Data, limits};

/// Layout of one inline tree entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InlineLayout {
    /// Go 1.12-1.19 `inlinedCall`: parent int16, funcID, pad, file, line, func_ (name offset),
    /// parentPc; 20 bytes.
    Go112,
    /// Go 1.20+: funcID, 3 pad, nameOff, parentPc, startLine; 16 bytes.
    Go120,
}

impl InlineLayout {
    /// Size of one entry in bytes.
    pub fn size(self) -> usize {
        match self {
            InlineLayout::Go112 => 20,
            InlineLayout::Go120 => 16,
        }
    }

    /// (name offset, parentPc) of an entry.
    fn fields(self, e: &Data<'_>) -> Option<(u32, i32)> {
        match self {
            InlineLayout::Go112 => Some((e.u32(12)?, e.u32(16)? as i32)),
            InlineLayout::Go120 => Some((e.u32(4)?, e.u32(8)? as i32)),
        }
    }
}

/// Gives the bytes of inline tree entries, which live outside the pclntab before Go 1.26.
pub(crate) trait TreeBytes {
    /// `buf.len()` bytes at `offset` from the tree at `at`.
    fn read(&self, at: FuncData, offset: u64, buf: &mut [u8]) -> bool;
}

/// One symbolized frame, borrowing names from the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawFrame<'a> {
    pub function: &'a [u8],
    pub file: &'a [u8],
    pub line: i32,
    pub inlined: bool,
}

impl Pclntab {
    /// Frames at `pc` in function `f`, innermost first. Without an inline tree (or layout)
    /// there is exactly one frame; a corrupt tree ends the chain where it breaks.
    pub(crate) fn frames<'a>(
        &'a self,
        f: &FuncInfo<'a>,
        pc: u64,
        layout: Option<InlineLayout>,
        tree: &dyn TreeBytes,
        out: &mut Vec<RawFrame<'a>>,
    ) {
        let outer = f.name().unwrap_or_default();
        let tree_at = layout.and_then(|l| Some((l, f.funcdata(FUNCDATA_INL_TREE)?)));
        let mut cur = pc;
        for _ in 0..limits::MAX_INLINE_DEPTH {
            let (file, line) = f.file_line(cur).unwrap_or_default();
            let inlined = tree_at.and_then(|(l, at)| {
                let ix = f.pcdata(PCDATA_INL_TREE_INDEX, cur)?;
                let ix = u64::try_from(ix).ok()?;
                let mut buf = [0u8; 20];
                let entry = buf.get_mut(..l.size())?;
                tree.read(at, ix.checked_mul(l.size() as u64)?, entry)
                    .then_some(())?;
                let (name_off, parent_pc) = l.fields(&Data::new(entry, self.endian))?;
                let name = self.name_at(name_off)?;
                let parent = f.entry().checked_add_signed(parent_pc.into())?;
                Some((name, parent))
            });
            match inlined {
                Some((function, parent)) if parent >= f.entry() && parent < f.end() => {
                    out.push(RawFrame {
                        function,
                        file,
                        line,
                        inlined: true,
                    });
                    cur = parent;
                }
                _ => {
                    out.push(RawFrame {
                        function: outer,
                        file,
                        line,
                        inlined: false,
                    });
                    return;
                }
            }
        }
        // Depth limit reached on a (hostile) cyclic tree: still name the real function.
        let (file, line) = f.file_line(cur).unwrap_or_default();
        out.push(RawFrame {
            function: outer,
            file,
            line,
            inlined: false,
        });
    }
}
