//! Entry points for the cargo-fuzz targets in `fuzz/` (not a stable API).
//!
//! Each runs one parser on arbitrary bytes and exercises what the daemon would call on the
//! result; the fuzzer looks for panics, hangs and huge allocations.
use crate::{
    binary::GoBinary,
    buildinfo,
    bytes::Endian,
    elf::{Elf, PF_W, PT_LOAD, Segment},
    identify::identify,
    modinfo::parse_modinfo,
    pclntab::{FuncData, InlineLayout, Pclntab, TreeBytes},
};

/// Functions and PCs visited per input, so one input stays fast.
const VISIT: usize = 512;

/// The whole front end on a file image: identification, full parse and every query.
pub fn elf_file(data: &[u8]) {
    let _ = identify(&data);
    let Ok(bin) = GoBinary::parse(data.to_vec()) else {
        return;
    };
    let _ = (bin.go_version(), bin.build_info(), bin.identity());
    let _ = (bin.stripped(), bin.has_dwarf(), bin.is_pie());
    let funcs: Vec<_> = bin.functions().take(VISIT).collect();
    for f in &funcs {
        let _ = bin.symbolize(f.entry);
        let _ = bin.symbolize(f.entry.wrapping_add(f.end.wrapping_sub(f.entry) / 2));
        let _ = bin.file_offset(f.entry);
        let mut buf = [0u8; 16];
        let _ = bin.read_vaddr(f.entry, &mut buf);
    }
    let _ = bin.function("runtime.futex");
    for name in ["runtime.sched", "runtime.allglen", "runtime.allgs"] {
        let _ = bin.data_symbol(name);
    }
}

/// A data-only ELF view: one writable PT_LOAD mapping the input at `VADDR`.
const VADDR: u64 = 0x10000;

fn flat_elf(len: u64) -> Elf {
    Elf {
        is_64: true,
        endian: Endian::Little,
        e_type: 2,
        machine: 62,
        segments: vec![Segment {
            kind: PT_LOAD,
            flags: PF_W | 4,
            offset: 0,
            vaddr: VADDR,
            filesz: len,
            memsz: len,
            align: 0x1000,
        }],
        sections: Vec::new(),
    }
}

/// `.go.buildinfo` (both encodings; pointers resolve inside the input) and module info text.
pub fn build_info(data: &[u8]) {
    let _ = parse_modinfo(data);
    let elf = flat_elf(data.len() as u64);
    if let Ok(Some(loc)) = buildinfo::locate(&elf, &data) {
        let _ = buildinfo::read(&elf, &data, loc);
    }
}

fn exercise(tab: &Pclntab, layout: Option<InlineLayout>, tree: &dyn TreeBytes) {
    let n = tab.count();
    let step = (n / VISIT).max(1);
    let mut frames = Vec::new();
    for i in (0..n).step_by(step).take(VISIT) {
        let Some(f) = tab.func(i) else {
            continue;
        };
        let _ = (f.name(), f.start_line(), f.recorded_entry());
        for pc in [
            f.entry(),
            f.entry().wrapping_add(1),
            f.end().wrapping_sub(1),
        ] {
            let _ = f.file_line(pc);
            frames.clear();
            tab.frames(&f, pc, layout, tree, &mut frames);
            let _ = tab.find(pc);
        }
    }
}

struct NoTree;

impl TreeBytes for NoTree {
    fn read(&self, _: FuncData, _: u64, _: &mut [u8]) -> bool {
        false
    }
}

/// A raw `.gopclntab` (any format): function table, names, files, lines.
pub fn pclntab(data: &[u8]) {
    if let Ok(mut tab) = Pclntab::parse(data.to_vec(), 0x40_0000) {
        if tab.uses_text_start() && tab.header_text_start() == 0 {
            tab.set_text_start(0x40_1000);
        }
        exercise(&tab, None, &NoTree);
    }
}

/// Inline tree bytes at a fixed address, as `go:func.*` or absolute funcdata resolve.
struct Tree<'a> {
    bytes: &'a [u8],
    base: u64,
}

impl TreeBytes for Tree<'_> {
    fn read(&self, at: FuncData, offset: u64, buf: &mut [u8]) -> bool {
        let start = match at {
            FuncData::Relative(off) => u64::from(off),
            FuncData::Absolute(addr) => addr.wrapping_sub(self.base),
        };
        let Some(start) = start
            .checked_add(offset)
            .and_then(|s| usize::try_from(s).ok())
        else {
            return false;
        };
        match start
            .checked_add(buf.len())
            .and_then(|end| self.bytes.get(start..end))
        {
            Some(s) => {
                buf.copy_from_slice(s);
                true
            }
            None => false,
        }
    }
}

/// A pclntab plus an inline-tree region: the first 4 bytes (LE) give the pclntab's length,
/// the rest after it is `go:func.*`; both layouts of inline entries are tried.
pub fn inline_tree(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let len = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (tab, tree) = rest.split_at(len);
    let Ok(mut tab) = Pclntab::parse(tab.to_vec(), 0x40_0000) else {
        return;
    };
    if tab.uses_text_start() && tab.header_text_start() == 0 {
        tab.set_text_start(0x40_1000);
    }
    let tree = Tree {
        bytes: tree,
        base: 0x50_0000,
    };
    exercise(&tab, Some(InlineLayout::Go120), &tree);
    exercise(&tab, Some(InlineLayout::Go112), &tree);
}
