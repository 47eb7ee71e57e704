//! `.go.buildinfo`: Go version, main module, dependencies and build settings.
//!
//! Two encodings exist (Go's debug/buildinfo): before Go 1.18 the 32-byte header holds two
//! pointers to Go string headers; since 1.18 (flag bit 1) the two strings follow the header
//! inline, each prefixed by a uvarint length.
use crate::{
    bytes::{Data, Endian, usize_of, uvarint},
    elf::{Elf, PF_W, PF_X},
    error::GobinError,
    limits,
    modinfo::{Module, parse_modinfo},
    source::{ByteSource, SourceError, read_vec},
};

/// The magic at the start of the build info header.
pub(crate) const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_SIZE: usize = 32;
const ALIGN: usize = 16;
const FLAG_BIG_ENDIAN: u8 = 1;
const FLAG_INLINE: u8 = 2;

/// How the build info strings were stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Go 1.13-1.17: pointers to string headers elsewhere in the data segment.
    Pointers,
    /// Go 1.18+: strings inline after the header.
    Inline,
}

/// The build information Go embeds in every binary it links (Go 1.13+).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    /// Toolchain version, e.g. "go1.25.5".
    pub go_version: String,
    /// Main package path ("path" line), e.g. "example.com/cmd/foo".
    pub path: String,
    /// Main module, when the binary was built in module mode.
    pub main: Option<Module>,
    /// Dependency modules in the order Go lists them.
    pub deps: Vec<Module>,
    /// Build settings (`-buildmode`, `CGO_ENABLED`, `GOAMD64`, `-ldflags`, `vcs.revision`...),
    /// unquoted, in order.
    pub settings: Vec<(String, String)>,
    /// How the strings were stored.
    pub encoding: Encoding,
    /// Pointer size recorded in the header.
    pub ptr_size: u8,
}

impl BuildInfo {
    /// The value of build setting `key` (the last one if repeated).
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

const fn malformed(what: &'static str) -> GobinError {
    GobinError::MalformedBuildInfo { what }
}

/// Where the header was found: its file offset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Located {
    offset: u64,
}

/// Finds the build info header: the `.go.buildinfo` section, else (as Go does, but trying
/// every writable, non-executable PT_LOAD rather than only the first: a PIE's first one is
/// .data.rel.ro) the first 64 KB of such segments, at 16-byte alignment.
pub(crate) fn locate(elf: &Elf, src: &dyn ByteSource) -> Result<Option<Located>, GobinError> {
    if let Some(s) = elf.section(".go.buildinfo") {
        return match s.file_range() {
            Some((off, size)) => search(src, off, size),
            None => Ok(None),
        };
    }
    for p in elf.loads().filter(|p| p.flags & (PF_W | PF_X) == PF_W) {
        if let Some(found) = search(src, p.offset, p.filesz)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Searches the first 64 KB of `[offset, offset + size)` for the magic at 16-byte alignment.
fn search(src: &dyn ByteSource, offset: u64, size: u64) -> Result<Option<Located>, GobinError> {
    let want = size
        .min(limits::BUILDINFO_SCAN)
        .min(src.len().saturating_sub(offset));
    let window = match read_vec(src, offset, want, limits::BUILDINFO_SCAN) {
        Ok(w) => w,
        Err(SourceError::OutOfBounds { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut at = 0usize;
    while let Some(rest) = window.get(at..) {
        if rest.len() < HEADER_SIZE {
            break;
        }
        if rest.starts_with(MAGIC) {
            return Ok(Some(Located {
                offset: offset + at as u64,
            }));
        }
        at += ALIGN;
    }
    Ok(None)
}

/// Reads and parses the build info at `loc`.
pub(crate) fn read(elf: &Elf, src: &dyn ByteSource, loc: Located) -> Result<BuildInfo, GobinError> {
    let mut header = [0u8; HEADER_SIZE];
    src.read_at(loc.offset, &mut header)?;
    let ptr_size = header[14];
    let flags = header[15];
    let endian = if flags & FLAG_BIG_ENDIAN != 0 {
        Endian::Big
    } else {
        Endian::Little
    };
    let (encoding, version, modinfo) = if flags & FLAG_INLINE != 0 {
        let (version, next) = inline_string(src, loc.offset + HEADER_SIZE as u64)?;
        let (modinfo, _) = inline_string(src, next)?;
        (Encoding::Inline, version, modinfo)
    } else {
        if ptr_size != 4 && ptr_size != 8 {
            return Err(malformed("pointer size"));
        }
        let d = Data::new(&header, endian);
        let vptr = d.word(16, ptr_size).ok_or(malformed("header"))?;
        let mptr = d
            .word(16 + usize::from(ptr_size), ptr_size)
            .ok_or(malformed("header"))?;
        let version = pointed_string(elf, src, endian, ptr_size, vptr)?;
        let modinfo = pointed_string(elf, src, endian, ptr_size, mptr)?;
        (Encoding::Pointers, version, modinfo)
    };
    if version.is_empty() {
        return Err(malformed("empty Go version"));
    }
    // cmd/go frames the module info with 16-byte sentinels; without the frame it is ignored,
    // as in debug/buildinfo.
    let modinfo = if modinfo.len() >= 33 && modinfo.get(modinfo.len() - 17) == Some(&b'\n') {
        modinfo.get(16..modinfo.len() - 16).unwrap_or_default()
    } else {
        &[]
    };
    let parsed = parse_modinfo(modinfo)?;
    Ok(BuildInfo {
        go_version: String::from_utf8_lossy(&version).into_owned(),
        path: parsed.path,
        main: parsed.main,
        deps: parsed.deps,
        settings: parsed.settings,
        encoding,
        ptr_size,
    })
}

/// A uvarint-length-prefixed string at file offset `off`; returns it and the offset after it.
fn inline_string(src: &dyn ByteSource, off: u64) -> Result<(Vec<u8>, u64), GobinError> {
    let mut lenbuf = [0u8; 10];
    let avail = src.len().saturating_sub(off).min(10) as usize;
    let lb = lenbuf.get_mut(..avail).ok_or(malformed("string length"))?;
    src.read_at(off, lb)?;
    let (len, n) = uvarint(lb).ok_or(malformed("string length"))?;
    if len > limits::MAX_MODINFO {
        return Err(GobinError::TooLarge {
            what: "build info string",
            size: len,
            limit: limits::MAX_MODINFO,
        });
    }
    let start = off + n as u64;
    let s = read_vec(src, start, len, limits::MAX_MODINFO).map_err(|e| match e {
        SourceError::OutOfBounds { .. } => malformed("string beyond end of file"),
        other => other.into(),
    })?;
    Ok((s, start + len))
}

/// A Go string whose header (pointer, length) is at `vaddr`.
fn pointed_string(
    elf: &Elf,
    src: &dyn ByteSource,
    endian: Endian,
    ptr_size: u8,
    vaddr: u64,
) -> Result<Vec<u8>, GobinError> {
    let n = u64::from(ptr_size) * 2;
    let off = elf
        .file_range(vaddr, n)
        .ok_or(malformed("string header not mapped"))?;
    let hdr = read_vec(src, off, n, 16)?;
    let d = Data::new(&hdr, endian);
    let ptr = d.word(0, ptr_size).ok_or(malformed("string header"))?;
    let len = d
        .word(usize::from(ptr_size), ptr_size)
        .ok_or(malformed("string header"))?;
    if len > limits::MAX_MODINFO {
        return Err(GobinError::TooLarge {
            what: "build info string",
            size: len,
            limit: limits::MAX_MODINFO,
        });
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    let off = elf
        .file_range(ptr, len)
        .ok_or(malformed("string data not mapped"))?;
    usize_of(len).ok_or(malformed("string length"))?;
    Ok(read_vec(src, off, len, limits::MAX_MODINFO)?)
}
