//! A writer of small synthetic Go binaries: `.gopclntab` in each of the four formats (laid out
//! from runtime/symtab.go, cmd/link/internal/ld/pcln.go and debug/gosym) with inline trees;
//! the container parts (ELF64, `.go.buildinfo`, notes, moduledata) are in synth_elf.rs.
//!
//! Used for formats no installed toolchain writes (1.2, 1.16), for hostile variations, and to
//! generate the fuzz seed corpora. Written from the format descriptions, not from the parser.
#![allow(dead_code, clippy::unwrap_used)]

/// pclntab format by magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fmt {
    Go12,
    Go116,
    Go118,
    Go120,
}

impl Fmt {
    pub fn magic(self) -> u32 {
        match self {
            Fmt::Go12 => 0xffff_fffb,
            Fmt::Go116 => 0xffff_fffa,
            Fmt::Go118 => 0xffff_fff0,
            Fmt::Go120 => 0xffff_fff1,
        }
    }
}

/// One inlined call in a function's inline tree.
#[derive(Clone, Debug)]
pub struct Inl {
    pub name: String,
    /// Offset from the function entry of an instruction at the call site.
    pub parent_pc: u32,
    /// Index of the parent entry (-1: the function itself); written in the 1.12-1.19 layout.
    pub parent: i16,
}

/// One function.
#[derive(Clone, Debug)]
pub struct Func {
    pub name: String,
    pub size: u32,
    /// Index into the file list.
    pub file: u32,
    /// (end offset, line) runs covering [0, size).
    pub lines: Vec<(u32, i32)>,
    pub inl: Vec<Inl>,
    /// (end offset, inline index) runs; -1 outside inlined code.
    pub inl_index: Vec<(u32, i32)>,
}

/// A whole table.
#[derive(Clone, Debug)]
pub struct Table {
    pub fmt: Fmt,
    pub files: Vec<String>,
    pub funcs: Vec<Func>,
    /// Where the first function starts (functions follow each other).
    pub text: u64,
    /// Whether the 1.18+ header holds the text start (Go 1.26+ writes 0).
    pub header_text: bool,
}

/// Output: the pclntab and the funcdata region (`go:func.*`, or the absolute blobs before 1.18)
/// that must be placed at `funcdata_vaddr`.
pub struct Written {
    pub pclntab: Vec<u8>,
    pub funcdata: Vec<u8>,
}

pub(crate) fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

pub(crate) fn put64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

pub(crate) fn set32(v: &mut [u8], at: usize, x: u32) {
    v[at..at + 4].copy_from_slice(&x.to_le_bytes());
}

pub(crate) fn set64(v: &mut [u8], at: usize, x: u64) {
    v[at..at + 8].copy_from_slice(&x.to_le_bytes());
}

pub(crate) fn uvarint(v: &mut Vec<u8>, mut x: u32) {
    while x >= 0x80 {
        v.push((x as u8) | 0x80);
        x >>= 7;
    }
    v.push(x as u8);
}

/// A PC-value table: zig-zag value deltas from -1, PC deltas (quantum 1), 0 terminator.
pub fn pcvalue(runs: &[(u32, i32)]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut val, mut pc) = (-1i32, 0u32);
    for &(end, v) in runs {
        let d = v - val;
        let z = if d < 0 {
            ((!d as u32) << 1) | 1
        } else {
            (d as u32) << 1
        };
        // A zero value delta would end the table; Go's writer never emits one except first.
        uvarint(&mut out, z);
        uvarint(&mut out, end - pc);
        val = v;
        pc = end;
    }
    out.push(0);
    out
}

pub(crate) fn cstr(v: &mut Vec<u8>, s: &str) -> u32 {
    let at = v.len() as u32;
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    at
}

/// Writes the table; `table_vaddr` and `funcdata_vaddr` are where the two blobs will be loaded
/// (absolute funcdata pointers before 1.18 and their alignment depend on them).
pub fn write(t: &Table, table_vaddr: u64, funcdata_vaddr: u64) -> Written {
    match t.fmt {
        Fmt::Go12 => write12(t, table_vaddr, funcdata_vaddr),
        _ => write116plus(t, table_vaddr, funcdata_vaddr),
    }
}

fn entries(t: &Table) -> Vec<u64> {
    let mut e = Vec::new();
    let mut pc = t.text;
    for f in &t.funcs {
        e.push(pc);
        pc += u64::from(f.size);
    }
    e.push(pc);
    e
}

/// Inline tree bytes of one function: 16-byte 1.20 entries or 20-byte 1.12-1.19 entries.
fn inline_tree(t: &Table, f: &Func, name_off: &mut dyn FnMut(&str) -> u32) -> Vec<u8> {
    let mut out = Vec::new();
    for e in &f.inl {
        let n = name_off(&e.name);
        if t.fmt == Fmt::Go120 {
            out.extend_from_slice(&[0, 0, 0, 0]);
            put32(&mut out, n);
            put32(&mut out, e.parent_pc);
            put32(&mut out, 1);
        } else {
            out.extend_from_slice(&e.parent.to_le_bytes());
            out.extend_from_slice(&[0, 0]);
            put32(&mut out, f.file);
            put32(&mut out, 1);
            put32(&mut out, n);
            put32(&mut out, e.parent_pc);
        }
    }
    out
}

fn write116plus(t: &Table, table_vaddr: u64, funcdata_vaddr: u64) -> Written {
    let ps = 8usize;
    let entries = entries(t);
    let mut names = Vec::new();
    let mut name_offs = Vec::new();
    let name_of = |names: &mut Vec<u8>, s: &str| cstr(names, s);
    for f in &t.funcs {
        name_offs.push(name_of(&mut names, &f.name));
    }
    let mut filetab = Vec::new();
    let mut cutab = Vec::new();
    for f in &t.files {
        let off = cstr(&mut filetab, f);
        put32(&mut cutab, off);
    }
    // pctab starts with a zero byte so that offset 0 means "no table".
    let mut pctab = vec![0u8];
    let mut funcdata = Vec::new();
    struct Tabs {
        pcfile: u32,
        pcln: u32,
        inl_index: u32,
        tree: Option<u64>,
    }
    let mut tabs = Vec::new();
    for f in &t.funcs {
        let pcfile = pctab.len() as u32;
        pctab.extend(pcvalue(&[(f.size, f.file as i32)]));
        let pcln = pctab.len() as u32;
        pctab.extend(pcvalue(&f.lines));
        let (inl_index, tree) = if f.inl.is_empty() {
            (0, None)
        } else {
            let ix = pctab.len() as u32;
            pctab.extend(pcvalue(&f.inl_index));
            while !funcdata.len().is_multiple_of(8) {
                funcdata.push(0);
            }
            let at = funcdata.len() as u64;
            let tree = inline_tree(t, f, &mut |s| name_of(&mut names, s));
            funcdata.extend(tree);
            (ix, Some(at))
        };
        tabs.push(Tabs {
            pcfile,
            pcln,
            inl_index,
            tree,
        });
    }
    let header_words = if t.fmt == Fmt::Go116 { 7 } else { 8 };
    let header_len = 8 + header_words * ps;
    let funcname_off = header_len;
    let cu_off = funcname_off + names.len();
    let filetab_off = cu_off + cutab.len();
    let pctab_off = filetab_off + filetab.len();
    let mut pcln_off = pctab_off + pctab.len();
    while !(table_vaddr as usize + pcln_off).is_multiple_of(8) {
        pctab.push(0);
        pcln_off += 1;
    }
    let wide = t.fmt == Fmt::Go116;
    let field = if wide { ps } else { 4 };
    let functab_len = (t.funcs.len() * 2 + 1) * field;
    let mut pcln = vec![0u8; functab_len];
    let text = t.text;
    for (i, f) in t.funcs.iter().enumerate() {
        while !(table_vaddr as usize + pcln_off + pcln.len()).is_multiple_of(8) {
            pcln.push(0);
        }
        let funcoff = pcln.len();
        let tb = &tabs[i];
        if wide {
            set64(&mut pcln, 2 * i * ps, entries[i]);
            set64(&mut pcln, (2 * i + 1) * ps, funcoff as u64);
            put64(&mut pcln, entries[i]);
        } else {
            set32(&mut pcln, 2 * i * 4, (entries[i] - text) as u32);
            set32(&mut pcln, (2 * i + 1) * 4, funcoff as u32);
            put32(&mut pcln, (entries[i] - text) as u32);
        }
        let npcdata = if tb.tree.is_some() { 3 } else { 0 };
        let nfuncdata: u8 = if tb.tree.is_some() { 4 } else { 0 };
        put32(&mut pcln, name_offs[i]); // nameOff
        put32(&mut pcln, 0); // args
        put32(&mut pcln, 0); // deferreturn
        put32(&mut pcln, 0); // pcsp
        put32(&mut pcln, tb.pcfile);
        put32(&mut pcln, tb.pcln);
        put32(&mut pcln, npcdata);
        put32(&mut pcln, 0); // cuOffset
        if t.fmt == Fmt::Go120 {
            put32(&mut pcln, f.lines.first().map_or(0, |l| l.1 as u32)); // startLine
        }
        pcln.extend_from_slice(&[0, 0, 0, nfuncdata]);
        if let Some(tree) = tb.tree {
            put32(&mut pcln, 0);
            put32(&mut pcln, 0);
            put32(&mut pcln, tb.inl_index);
            if wide {
                // Pointer array aligned by absolute address (runtime funcdata()).
                if !(table_vaddr as usize + pcln_off + pcln.len()).is_multiple_of(8) {
                    put32(&mut pcln, 0);
                }
                for _ in 0..3 {
                    put64(&mut pcln, 0);
                }
                put64(&mut pcln, funcdata_vaddr + tree);
            } else {
                for _ in 0..3 {
                    put32(&mut pcln, u32::MAX);
                }
                put32(&mut pcln, tree as u32);
            }
        }
    }
    let n = t.funcs.len();
    if wide {
        set64(&mut pcln, 2 * n * ps, entries[n]);
    } else {
        set32(&mut pcln, 2 * n * 4, (entries[n] - text) as u32);
    }
    let mut out = Vec::new();
    put32(&mut out, t.fmt.magic());
    out.extend_from_slice(&[0, 0, 1, 8]);
    put64(&mut out, n as u64);
    put64(&mut out, t.files.len() as u64);
    if t.fmt != Fmt::Go116 {
        put64(&mut out, if t.header_text { text } else { 0 });
    }
    for off in [funcname_off, cu_off, filetab_off, pctab_off, pcln_off] {
        put64(&mut out, off as u64);
    }
    assert_eq!(out.len(), header_len);
    out.extend(names);
    out.extend(cutab);
    out.extend(filetab);
    out.extend(pctab);
    assert_eq!(out.len(), pcln_off);
    out.extend(pcln);
    Written {
        pclntab: out,
        funcdata,
    }
}

fn write12(t: &Table, table_vaddr: u64, funcdata_vaddr: u64) -> Written {
    let ps = 8usize;
    let entries = entries(t);
    let n = t.funcs.len();
    // Header, nfunctab, functab, fileoff; then everything else addressed from the start.
    let functab_at = 8 + ps;
    let fixed = functab_at + (2 * n + 1) * ps + 4;
    let mut out = vec![0u8; fixed];
    set32(&mut out, 0, t.fmt.magic());
    out[4..8].copy_from_slice(&[0, 0, 1, 8]);
    set64(&mut out, 8, n as u64);
    let mut funcdata = Vec::new();
    let mut func_offs = Vec::new();
    for (i, f) in t.funcs.iter().enumerate() {
        // Tables first, then the _func record pointing at them.
        let name = cstr(&mut out, &f.name);
        let pcfile = out.len() as u32;
        out.extend(pcvalue(&[(f.size, f.file as i32 + 1)]));
        let pcln = out.len() as u32;
        out.extend(pcvalue(&f.lines));
        let (inl_index, tree) = if f.inl.is_empty() {
            (0, None)
        } else {
            let ix = out.len() as u32;
            out.extend(pcvalue(&f.inl_index));
            let mut inl_names = Vec::new();
            for e in &f.inl {
                inl_names.push(cstr(&mut out, &e.name));
            }
            let mut k = 0;
            let tree = inline_tree(t, f, &mut |_| {
                k += 1;
                inl_names[k - 1]
            });
            while !funcdata.len().is_multiple_of(8) {
                funcdata.push(0);
            }
            let at = funcdata.len() as u64;
            funcdata.extend(tree);
            (ix, Some(at))
        };
        while !(table_vaddr as usize + out.len()).is_multiple_of(8) {
            out.push(0);
        }
        func_offs.push(out.len());
        put64(&mut out, entries[i]);
        put32(&mut out, name);
        put32(&mut out, 0); // args
        put32(&mut out, 0); // deferreturn
        put32(&mut out, 0); // pcsp
        put32(&mut out, pcfile);
        put32(&mut out, pcln);
        put32(&mut out, if tree.is_some() { 3 } else { 0 }); // npcdata
        out.extend_from_slice(&[0, 0, 0, if tree.is_some() { 4 } else { 0 }]);
        if let Some(tree) = tree {
            put32(&mut out, 0);
            put32(&mut out, 0);
            put32(&mut out, inl_index);
            if !(table_vaddr as usize + out.len()).is_multiple_of(8) {
                put32(&mut out, 0);
            }
            for _ in 0..3 {
                put64(&mut out, 0);
            }
            put64(&mut out, funcdata_vaddr + tree);
        }
    }
    // File table: count (files + 1), then offsets of the names; file numbers start at 1.
    let mut name_offs = Vec::new();
    for f in &t.files {
        name_offs.push(cstr(&mut out, f));
    }
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    let filetab = out.len() as u32;
    put32(&mut out, t.files.len() as u32 + 1);
    for off in name_offs {
        put32(&mut out, off);
    }
    for i in 0..n {
        set64(&mut out, functab_at + 2 * i * ps, entries[i]);
        set64(&mut out, functab_at + (2 * i + 1) * ps, func_offs[i] as u64);
    }
    set64(&mut out, functab_at + 2 * n * ps, entries[n]);
    set32(&mut out, functab_at + (2 * n + 1) * ps, filetab);
    Written {
        pclntab: out,
        funcdata,
    }
}

/// A small table with three functions, one of which has a two-level inline chain.
pub fn sample_table(fmt: Fmt) -> Table {
    let files = vec!["/src/a.go".to_string(), "/src/b/b.go".to_string()];
    let plain = |name: &str, size: u32, file: u32, line: i32| Func {
        name: name.into(),
        size,
        file,
        lines: vec![(size / 2, line), (size, line + 1)],
        inl: vec![],
        inl_index: vec![],
    };
    let with_inline = Func {
        name: "main.caller".into(),
        size: 0x40,
        file: 0,
        // Innermost positions: callee body lines for inlined ranges.
        lines: vec![(0x10, 20), (0x20, 7), (0x30, 3), (0x40, 22)],
        inl: vec![
            Inl {
                name: "main.mid".into(),
                parent_pc: 0x08,
                parent: -1,
            },
            Inl {
                name: "main.leaf".into(),
                parent_pc: 0x18,
                parent: 0,
            },
        ],
        // [0x10,0x20): mid inlined; [0x20,0x30): leaf inlined into mid.
        inl_index: vec![(0x10, -1), (0x20, 0), (0x30, 1), (0x40, -1)],
    };
    Table {
        fmt,
        files,
        funcs: vec![
            plain("runtime.futex", 0x20, 1, 10),
            with_inline,
            plain("main.main", 0x30, 0, 40),
        ],
        text: 0x40_1000,
        header_text: true,
    }
}

// Test crates that do not build ELF files leave this unused.
#[allow(unused_imports)]
pub use super::synth_elf::*;
