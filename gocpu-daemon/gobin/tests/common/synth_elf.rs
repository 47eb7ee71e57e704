//! The container half of the synthetic binaries (see synth.rs): an ELF64 writer,
//! `.go.buildinfo` in both encodings, a Go build ID note, moduledata, and a sample ELF.
#![allow(dead_code, clippy::unwrap_used)]

use super::synth::{Fmt, cstr, put32, put64, sample_table, set32, set64, uvarint, write};

/// Minimal ELF64 writer: segments and named sections.
pub struct ElfOut {
    pub e_type: u16,
    /// (vaddr, flags, bytes) per PT_LOAD; each gets a section when named.
    pub loads: Vec<(u64, u32, Vec<u8>)>,
    /// (name, index into loads, offset within the load, size).
    pub sections: Vec<(String, usize, usize, usize)>,
    /// (name, type, bytes) of extra sections not loaded (notes go in both).
    pub extra: Vec<(String, u32, Vec<u8>)>,
    pub with_sections: bool,
    /// A PT_NOTE segment over (load index, offset, size).
    pub note: Option<(usize, usize, usize)>,
    /// File offsets are congruent to addresses modulo this (0x1000 for loadable files; small
    /// values keep fuzz seeds small).
    pub align: usize,
}

impl ElfOut {
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        let phoff = 64usize;
        let phnum = self.loads.len() + usize::from(self.note.is_some());
        out.resize(phoff + phnum * 56, 0);
        let mut load_offsets = Vec::new();
        for (vaddr, _, bytes) in &self.loads {
            // File offset congruent to the vaddr modulo the page size.
            let mut off = out.len();
            while off % self.align != (*vaddr as usize) % self.align {
                off += 1;
            }
            out.resize(off, 0);
            load_offsets.push(off);
            out.extend_from_slice(bytes);
        }
        for (i, (vaddr, flags, bytes)) in self.loads.iter().enumerate() {
            let p = phoff + i * 56;
            set32(&mut out, p, 1);
            set32(&mut out, p + 4, *flags);
            set64(&mut out, p + 8, load_offsets[i] as u64);
            set64(&mut out, p + 16, *vaddr);
            set64(&mut out, p + 24, *vaddr);
            set64(&mut out, p + 32, bytes.len() as u64);
            set64(&mut out, p + 40, bytes.len() as u64);
            set64(&mut out, p + 48, self.align as u64);
        }
        if let Some((li, off, size)) = self.note {
            let p = phoff + self.loads.len() * 56;
            set32(&mut out, p, 4);
            set32(&mut out, p + 4, 4);
            set64(&mut out, p + 8, (load_offsets[li] + off) as u64);
            set64(&mut out, p + 16, self.loads[li].0 + off as u64);
            set64(&mut out, p + 24, self.loads[li].0 + off as u64);
            set64(&mut out, p + 32, size as u64);
            set64(&mut out, p + 40, size as u64);
            set64(&mut out, p + 48, 4);
        }
        let mut extra_offsets = Vec::new();
        for (_, _, bytes) in &self.extra {
            extra_offsets.push(out.len());
            out.extend_from_slice(bytes);
        }
        let (mut shoff, mut shnum, mut shstrndx) = (0usize, 0usize, 0usize);
        if self.with_sections {
            let mut shstr = vec![0u8];
            let mut heads: Vec<[u64; 8]> = vec![[0; 8]];
            for (name, li, off, size) in &self.sections {
                let n = cstr(&mut shstr, name) as u64;
                let (vaddr, flags, _) = &self.loads[*li];
                let fl =
                    2 | if flags & 1 != 0 { 4 } else { 0 } | if flags & 2 != 0 { 1 } else { 0 };
                let kind = if name.starts_with(".note") { 7 } else { 1 };
                heads.push([
                    n,
                    kind,
                    fl,
                    vaddr + *off as u64,
                    (load_offsets[*li] + off) as u64,
                    *size as u64,
                    0,
                    8,
                ]);
            }
            for (i, (name, kind, bytes)) in self.extra.iter().enumerate() {
                let n = cstr(&mut shstr, name) as u64;
                // A .symtab links to the section after it (its .strtab).
                let link = if *kind == 2 {
                    heads.len() as u64 + 1
                } else {
                    0
                };
                heads.push([
                    n,
                    u64::from(*kind),
                    0,
                    0,
                    extra_offsets[i] as u64,
                    bytes.len() as u64,
                    link,
                    4,
                ]);
            }
            let n = cstr(&mut shstr, ".shstrtab") as u64;
            let shstr_off = out.len();
            out.extend_from_slice(&shstr);
            heads.push([n, 3, 0, 0, shstr_off as u64, shstr.len() as u64, 0, 1]);
            while !out.len().is_multiple_of(8) {
                out.push(0);
            }
            shoff = out.len();
            shnum = heads.len();
            shstrndx = shnum - 1;
            for h in heads {
                let mut s = vec![0u8; 64];
                set32(&mut s, 0, h[0] as u32);
                set32(&mut s, 4, h[1] as u32);
                set64(&mut s, 8, h[2]);
                set64(&mut s, 16, h[3]);
                set64(&mut s, 24, h[4]);
                set64(&mut s, 32, h[5]);
                set32(&mut s, 40, h[6] as u32);
                set64(&mut s, 48, h[7]);
                set64(&mut s, 56, if h[1] == 2 { 24 } else { 0 });
                out.extend(s);
            }
        }
        out[0..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[16..18].copy_from_slice(&self.e_type.to_le_bytes());
        out[18..20].copy_from_slice(&62u16.to_le_bytes());
        set32(&mut out, 20, 1);
        set64(&mut out, 32, phoff as u64);
        set64(&mut out, 40, shoff as u64);
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        out[58..60].copy_from_slice(&64u16.to_le_bytes());
        out[60..62].copy_from_slice(&(shnum as u16).to_le_bytes());
        out[62..64].copy_from_slice(&(shstrndx as u16).to_le_bytes());
        out
    }
}

/// `.go.buildinfo` in the 1.18+ inline form.
pub fn buildinfo_inline(version: &str, modinfo: &str) -> Vec<u8> {
    let mut b = b"\xff Go buildinf:".to_vec();
    b.push(8);
    b.push(2);
    b.resize(32, 0);
    let start: [u8; 16] = *b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
    let end: [u8; 16] = *b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2";
    let mut m = start.to_vec();
    m.extend_from_slice(modinfo.as_bytes());
    m.extend_from_slice(&end);
    uvarint(&mut b, version.len() as u32);
    b.extend_from_slice(version.as_bytes());
    uvarint(&mut b, m.len() as u32);
    b.extend_from_slice(&m);
    b
}

/// `.go.buildinfo` in the pre-1.18 pointer form, for a blob loaded at `vaddr`: the header
/// points at two string headers placed after it.
pub fn buildinfo_pointers(vaddr: u64, version: &str, modinfo: &str) -> Vec<u8> {
    let start: [u8; 16] = *b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
    let end: [u8; 16] = *b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2";
    let mut m = start.to_vec();
    m.extend_from_slice(modinfo.as_bytes());
    m.extend_from_slice(&end);
    let mut b = b"\xff Go buildinf:".to_vec();
    b.push(8);
    b.push(0);
    let hdrs = 32u64;
    put64(&mut b, vaddr + hdrs);
    put64(&mut b, vaddr + hdrs + 16);
    let data = hdrs + 32;
    put64(&mut b, vaddr + data);
    put64(&mut b, version.len() as u64);
    put64(&mut b, vaddr + data + version.len() as u64);
    put64(&mut b, m.len() as u64);
    b.extend_from_slice(version.as_bytes());
    b.extend_from_slice(&m);
    b
}

/// A Go build ID note (`.note.go.buildid`).
pub fn go_buildid_note(id: &str) -> Vec<u8> {
    let mut n = Vec::new();
    put32(&mut n, 4);
    put32(&mut n, id.len() as u32);
    put32(&mut n, 4);
    n.extend_from_slice(b"Go\0\0");
    n.extend_from_slice(id.as_bytes());
    while !n.len().is_multiple_of(4) {
        n.push(0);
    }
    n
}

/// Moduledata words for `tab` (1.16+ prefix, then the layout of Go `minor`), to place in a
/// writable segment.
pub fn moduledata(
    pclntab: &[u8],
    pclntab_vaddr: u64,
    text: u64,
    etext: u64,
    gofunc: u64,
    minor: u32,
) -> Vec<u8> {
    let word = |i: usize| u64::from_le_bytes(pclntab[8 + i * 8..16 + i * 8].try_into().unwrap());
    let nfunc = word(0);
    let go116 = u32::from_le_bytes(pclntab[0..4].try_into().unwrap()) == 0xffff_fffa;
    let offs: Vec<u64> = if go116 {
        (2..7).map(word).collect()
    } else {
        (3..8).map(word).collect()
    };
    let mut w = vec![0u64; 46];
    w[0] = pclntab_vaddr;
    for (k, i) in [1usize, 4, 7, 10, 13].iter().enumerate() {
        w[*i] = pclntab_vaddr + offs[k];
        w[i + 1] = 16;
        w[i + 2] = 16;
    }
    w[16] = pclntab_vaddr + offs[4];
    w[17] = nfunc + 1;
    w[18] = nfunc + 1;
    w[20] = text;
    w[21] = etext;
    w[22] = text;
    w[23] = etext;
    let gofunc_index = match minor {
        0..=19 => 38,
        20..=26 => 40,
        _ => 43,
    };
    // types/etypes (or types/typedesclen) consistent with the layout.
    w[37] = 0x70_0000;
    w[38] = if minor >= 27 { 0x1000 } else { 0x70_1000 };
    w[gofunc_index] = gofunc;
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Addresses of the sample ELF's parts.
pub const TEXT: u64 = 0x40_1000;
pub const FUNCDATA: u64 = 0x47_0000;
pub const PCLNTAB: u64 = 0x48_0000;
pub const DATA: u64 = 0x50_0000;

/// A sample ELF around [`sample_table`]: Go build ID note, code, funcdata, pclntab, build info
/// (inline form for Go >= 1.18, else pointers) and moduledata (1.16+), with or without section
/// headers. `version` is "go1.N[.P]".
pub fn sample_elf(
    fmt: Fmt,
    version: &str,
    header_text: bool,
    sections: bool,
    align: usize,
) -> Vec<u8> {
    let minor: u32 = version.split('.').nth(1).unwrap().parse().unwrap();
    let mut t = sample_table(fmt);
    t.header_text = header_text;
    let w = write(&t, PCLNTAB, FUNCDATA);
    let text_len: u32 = t.funcs.iter().map(|f| f.size).sum();
    let etext = TEXT + u64::from(text_len);
    let modinfo = "path\texample.com/synth\nmod\texample.com/synth\t(devel)\t\nbuild\tCGO_ENABLED=0\nbuild\t-ldflags=\"-s -w\"\n";
    let bi = if minor >= 18 {
        buildinfo_inline(version, modinfo)
    } else {
        buildinfo_pointers(DATA, version, modinfo)
    };
    let mut data = bi.clone();
    data.resize(bi.len().next_multiple_of(16) + 16, 0);
    let md_at = data.len();
    if fmt != Fmt::Go12 {
        data.extend(moduledata(
            &w.pclntab, PCLNTAB, TEXT, etext, FUNCDATA, minor,
        ));
    }
    let md_len = data.len() - md_at;
    let code = vec![0xccu8; text_len as usize];
    let note = go_buildid_note("synthAction/synthContent");
    ElfOut {
        e_type: 2,
        loads: vec![
            (TEXT - 0x100, 4, {
                let mut n = note.clone();
                n.resize(0x100, 0);
                n
            }),
            (TEXT, 5, code),
            (FUNCDATA, 4, w.funcdata.clone()),
            (PCLNTAB, 4, w.pclntab.clone()),
            (DATA, 6, data),
        ],
        sections: vec![
            (".note.go.buildid".into(), 0, 0, note.len()),
            (".text".into(), 1, 0, text_len as usize),
            (".rodata".into(), 2, 0, w.funcdata.len()),
            (".gopclntab".into(), 3, 0, w.pclntab.len()),
            (".go.buildinfo".into(), 4, 0, bi.len()),
            (".noptrdata".into(), 4, md_at, md_len),
        ],
        extra: vec![],
        with_sections: sections,
        note: Some((0, 0, note.len())),
        align,
    }
    .bytes()
}
