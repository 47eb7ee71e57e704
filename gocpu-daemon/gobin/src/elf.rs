//! A minimal, bounded ELF reader: header, program headers, section headers and names.
//!
//! It reads only the tables (a few KB), never whole sections, so identifying a binary costs a
//! handful of `pread`s whatever the file's size.
use crate::{
    bytes::{Data, Endian, usize_of},
    error::GobinError,
    limits,
    source::{ByteSource, read_vec},
};

/// ELF `e_type` of position-independent executables and shared objects.
pub const ET_DYN: u16 = 3;
/// `p_type` of loadable segments.
pub const PT_LOAD: u32 = 1;
/// `p_type` of note segments.
pub const PT_NOTE: u32 = 4;
/// `p_flags` bit: executable.
pub const PF_X: u32 = 1;
/// `p_flags` bit: writable.
pub const PF_W: u32 = 2;
/// `sh_type` of sections without file bytes (.bss).
pub const SHT_NOBITS: u32 = 8;
/// `sh_type` of the full symbol table.
pub const SHT_SYMTAB: u32 = 2;

/// One program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// `p_type` (PT_LOAD = 1, PT_NOTE = 4, ...).
    pub kind: u32,
    /// `p_flags` (PF_X = 1, PF_W = 2, PF_R = 4).
    pub flags: u32,
    /// File offset of the segment's bytes.
    pub offset: u64,
    /// Virtual address the segment is linked at.
    pub vaddr: u64,
    /// Bytes backed by the file.
    pub filesz: u64,
    /// Bytes in memory (the rest is zero-filled).
    pub memsz: u64,
    /// Alignment.
    pub align: u64,
}

/// One section header, with its name resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Name from the section name table (lossy UTF-8).
    pub name: String,
    /// `sh_type`.
    pub kind: u32,
    /// `sh_flags` (SHF_COMPRESSED = 0x800).
    pub flags: u64,
    /// Virtual address (0 when not loaded).
    pub addr: u64,
    /// File offset.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// `sh_link`.
    pub link: u32,
    /// `sh_addralign`.
    pub align: u64,
    /// `sh_entsize`.
    pub entsize: u64,
}

impl Section {
    /// The file range of the section's bytes, `None` for NOBITS sections.
    pub fn file_range(&self) -> Option<(u64, u64)> {
        (self.kind != SHT_NOBITS).then_some((self.offset, self.size))
    }
}

/// The parsed tables of an ELF file.
#[derive(Clone, Debug)]
pub struct Elf {
    /// Whether this is ELFCLASS64.
    pub is_64: bool,
    /// Byte order.
    pub endian: Endian,
    /// `e_type`.
    pub e_type: u16,
    /// `e_machine` (62 = x86-64, 183 = aarch64).
    pub machine: u16,
    /// Program headers.
    pub segments: Vec<Segment>,
    /// Section headers (empty when the file has none).
    pub sections: Vec<Section>,
}

struct Header {
    phoff: u64,
    phentsize: u64,
    phnum: u64,
    shoff: u64,
    shentsize: u64,
    shnum: u64,
    shstrndx: u64,
}

/// Size of a header table read at once (bounded by the entry counts anyway).
const MAX_TABLE: u64 = 64 << 20;

const fn malformed(what: &'static str) -> GobinError {
    GobinError::MalformedElf { what }
}

impl Elf {
    /// Parses the ELF header, program headers and section headers of `src`.
    pub fn parse(src: &dyn ByteSource) -> Result<Elf, GobinError> {
        let mut ident = [0u8; 64];
        let head_len = src.len().min(64);
        let head = ident
            .get_mut(..head_len as usize)
            .ok_or(malformed("header"))?;
        src.read_at(0, head)?;
        if head_len < 16 || ident.get(..4) != Some(b"\x7fELF".as_slice()) {
            return Err(GobinError::NotElf);
        }
        let is_64 = match ident[4] {
            1 => false,
            2 => true,
            _ => return Err(GobinError::UnsupportedElf { what: "class" }),
        };
        let endian = match ident[5] {
            1 => Endian::Little,
            2 => Endian::Big,
            _ => return Err(GobinError::UnsupportedElf { what: "byte order" }),
        };
        if ident[6] != 1 {
            return Err(GobinError::UnsupportedElf { what: "version" });
        }
        let need = if is_64 { 64 } else { 52 };
        if head_len < need {
            return Err(malformed("truncated header"));
        }
        let d = Data::new(&ident, endian);
        let e_type = d.u16(16).ok_or(malformed("header"))?;
        let machine = d.u16(18).ok_or(malformed("header"))?;
        let mut h = read_header(&d, is_64).ok_or(malformed("header"))?;
        let mut elf = Elf {
            is_64,
            endian,
            e_type,
            machine,
            segments: Vec::new(),
            sections: Vec::new(),
        };
        // Extended numbering (more than 0xff00 sections/segments) keeps the real counts in
        // section header 0.
        let sec0 = if h.shoff != 0 && (h.shnum == 0 || h.shstrndx == 0xffff || h.phnum == 0xffff) {
            elf.read_section_header(src, &h, 0)?
        } else {
            None
        };
        if let Some((_, size, link, info)) = sec0 {
            if h.shnum == 0 {
                h.shnum = size;
            }
            if h.shstrndx == 0xffff {
                h.shstrndx = u64::from(link);
            }
            if h.phnum == 0xffff {
                h.phnum = u64::from(info);
            }
        }
        elf.segments = elf.read_segments(src, &h)?;
        elf.sections = elf.read_sections(src, &h)?;
        Ok(elf)
    }

    fn word_size(&self) -> u64 {
        if self.is_64 { 8 } else { 4 }
    }

    fn read_table(
        &self,
        src: &dyn ByteSource,
        off: u64,
        entsize: u64,
        count: u64,
        min_entsize: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, GobinError> {
        if entsize < min_entsize {
            return Err(malformed(what));
        }
        let len = entsize.checked_mul(count).ok_or(malformed(what))?;
        read_vec(src, off, len, MAX_TABLE).map_err(|e| match e {
            crate::source::SourceError::OutOfBounds { .. } => malformed(what),
            other => GobinError::Source(other),
        })
    }

    fn read_segments(&self, src: &dyn ByteSource, h: &Header) -> Result<Vec<Segment>, GobinError> {
        if h.phnum == 0 {
            return Ok(Vec::new());
        }
        if h.phnum > limits::MAX_SEGMENTS {
            return Err(malformed("too many program headers"));
        }
        let min = if self.is_64 { 56 } else { 32 };
        let table = self.read_table(src, h.phoff, h.phentsize, h.phnum, min, "program headers")?;
        let d = Data::new(&table, self.endian);
        let mut out = Vec::with_capacity(h.phnum as usize);
        for i in 0..h.phnum {
            let base = usize_of(i * h.phentsize).ok_or(malformed("program headers"))?;
            let seg = if self.is_64 {
                (|| {
                    Some(Segment {
                        kind: d.u32(base)?,
                        flags: d.u32(base + 4)?,
                        offset: d.u64(base + 8)?,
                        vaddr: d.u64(base + 16)?,
                        filesz: d.u64(base + 32)?,
                        memsz: d.u64(base + 40)?,
                        align: d.u64(base + 48)?,
                    })
                })()
            } else {
                (|| {
                    Some(Segment {
                        kind: d.u32(base)?,
                        offset: d.u32(base + 4)?.into(),
                        vaddr: d.u32(base + 8)?.into(),
                        filesz: d.u32(base + 16)?.into(),
                        memsz: d.u32(base + 20)?.into(),
                        flags: d.u32(base + 24)?,
                        align: d.u32(base + 28)?.into(),
                    })
                })()
            };
            out.push(seg.ok_or(malformed("program headers"))?);
        }
        Ok(out)
    }

    /// Reads section header `idx` as (name offset, size, link, info) for extended numbering.
    fn read_section_header(
        &self,
        src: &dyn ByteSource,
        h: &Header,
        idx: u64,
    ) -> Result<Option<(u32, u64, u32, u32)>, GobinError> {
        let min = if self.is_64 { 64 } else { 40 };
        let off = idx
            .checked_mul(h.shentsize)
            .and_then(|o| o.checked_add(h.shoff))
            .ok_or(malformed("section headers"))?;
        let t = self.read_table(src, off, h.shentsize, 1, min, "section headers")?;
        let d = Data::new(&t, self.endian);
        let r = if self.is_64 {
            (|| Some((d.u32(0)?, d.u64(32)?, d.u32(40)?, d.u32(44)?)))()
        } else {
            (|| Some((d.u32(0)?, d.u32(20)?.into(), d.u32(24)?, d.u32(28)?)))()
        };
        Ok(r)
    }

    fn read_sections(&self, src: &dyn ByteSource, h: &Header) -> Result<Vec<Section>, GobinError> {
        if h.shoff == 0 || h.shnum == 0 {
            return Ok(Vec::new());
        }
        if h.shnum > limits::MAX_SECTIONS {
            return Err(malformed("too many section headers"));
        }
        let min = if self.is_64 { 64 } else { 40 };
        let table = self.read_table(src, h.shoff, h.shentsize, h.shnum, min, "section headers")?;
        let d = Data::new(&table, self.endian);
        let mut raw = Vec::with_capacity(h.shnum as usize);
        for i in 0..h.shnum {
            let b = usize_of(i * h.shentsize).ok_or(malformed("section headers"))?;
            let s = if self.is_64 {
                (|| {
                    Some((
                        d.u32(b)?,
                        Section {
                            name: String::new(),
                            kind: d.u32(b + 4)?,
                            flags: d.u64(b + 8)?,
                            addr: d.u64(b + 16)?,
                            offset: d.u64(b + 24)?,
                            size: d.u64(b + 32)?,
                            link: d.u32(b + 40)?,
                            align: d.u64(b + 48)?,
                            entsize: d.u64(b + 56)?,
                        },
                    ))
                })()
            } else {
                (|| {
                    Some((
                        d.u32(b)?,
                        Section {
                            name: String::new(),
                            kind: d.u32(b + 4)?,
                            flags: d.u32(b + 8)?.into(),
                            addr: d.u32(b + 12)?.into(),
                            offset: d.u32(b + 16)?.into(),
                            size: d.u32(b + 20)?.into(),
                            link: d.u32(b + 24)?,
                            align: d.u32(b + 32)?.into(),
                            entsize: d.u32(b + 36)?.into(),
                        },
                    ))
                })()
            };
            raw.push(s.ok_or(malformed("section headers"))?);
        }
        // Names are a convenience: a missing or broken name table leaves names empty rather
        // than rejecting a binary whose tables are otherwise usable.
        let names = usize_of(h.shstrndx)
            .and_then(|i| raw.get(i))
            .filter(|(_, s)| s.kind != SHT_NOBITS && s.size <= limits::MAX_SHSTRTAB)
            .map(|(_, s)| read_vec(src, s.offset, s.size, limits::MAX_SHSTRTAB));
        let names = match names {
            Some(Ok(v)) => v,
            Some(Err(crate::source::SourceError::OutOfBounds { .. })) | None => Vec::new(),
            Some(Err(e)) => return Err(e.into()),
        };
        let nd = Data::new(&names, self.endian);
        Ok(raw
            .into_iter()
            .map(|(name_off, mut s)| {
                if let Some(n) =
                    usize_of(name_off.into()).and_then(|o| nd.cstr(o, limits::MAX_SECTION_NAME))
                {
                    s.name = String::from_utf8_lossy(n).into_owned();
                }
                s
            })
            .collect())
    }

    /// The first section called `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Loadable segments.
    pub fn loads(&self) -> impl Iterator<Item = &Segment> + '_ {
        self.segments.iter().filter(|s| s.kind == PT_LOAD)
    }

    /// The file offset of `vaddr` through the PT_LOAD segment whose file-backed part holds it.
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.file_range(vaddr, 1)
    }

    /// The file offset of `[vaddr, vaddr + len)` when one PT_LOAD's file bytes hold all of it.
    pub fn file_range(&self, vaddr: u64, len: u64) -> Option<u64> {
        self.loads().find_map(|s| {
            let rel = vaddr.checked_sub(s.vaddr)?;
            let end = rel.checked_add(len)?;
            (rel < s.filesz && end <= s.filesz).then(|| s.offset.checked_add(rel))?
        })
    }

    /// The PT_LOAD segment whose file bytes hold `vaddr`.
    pub fn load_containing(&self, vaddr: u64) -> Option<&Segment> {
        self.loads()
            .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)
    }

    /// Word size of the ELF class in bytes.
    pub fn ptr_size(&self) -> u8 {
        self.word_size() as u8
    }
}

fn read_header(d: &Data<'_>, is_64: bool) -> Option<Header> {
    Some(if is_64 {
        Header {
            phoff: d.u64(32)?,
            shoff: d.u64(40)?,
            phentsize: d.u16(54)?.into(),
            phnum: d.u16(56)?.into(),
            shentsize: d.u16(58)?.into(),
            shnum: d.u16(60)?.into(),
            shstrndx: d.u16(62)?.into(),
        }
    } else {
        Header {
            phoff: d.u32(28)?.into(),
            shoff: d.u32(32)?.into(),
            phentsize: d.u16(42)?.into(),
            phnum: d.u16(44)?.into(),
            shentsize: d.u16(46)?.into(),
            shnum: d.u16(48)?.into(),
            shstrndx: d.u16(50)?.into(),
        }
    })
}
