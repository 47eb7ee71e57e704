//! [`GoBinary`]: everything gocpu knows about one Go executable, from its bytes alone.
use std::{fs::File, path::Path};

use crate::{
    anchors,
    buildinfo::BuildInfo,
    elf::{ET_DYN, Elf, PF_W, PF_X, Segment},
    error::{GobinError, Unavailable},
    funcdata::{FuncDataBytes, Resolver},
    identify::{Evidence, Identification, front},
    limits,
    moduledata::{self, ModuleData},
    pclntab::{
        Format, InlineLayout, Pclntab, RawFrame,
        scan::{self, Found},
    },
    source::{ByteSource, SourceError, read_vec},
    symtab,
    version::GoVersion,
};

/// ELF machine number of x86-64.
const EM_X86_64: u16 = 62;

/// A function from `.gopclntab`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Function {
    /// Name as `.gopclntab` spells it (no `.abi0` suffix).
    pub name: String,
    /// Entry virtual address.
    pub entry: u64,
    /// End virtual address (the next function's entry; includes alignment padding).
    pub end: u64,
}

/// One frame of a symbolized PC.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Function name (the inlined callee for inlined frames).
    pub function: String,
    /// Source file.
    pub file: String,
    /// Source line (0 when unknown).
    pub line: u32,
    /// Whether this frame was inlined into the next one.
    pub inlined: bool,
}

/// Reads and parses the table at `loc` (bounded by [`limits::MAX_PCLNTAB`]).
fn load_pclntab(src: &dyn ByteSource, loc: scan::Location) -> Result<Pclntab, GobinError> {
    if loc.size > limits::MAX_PCLNTAB {
        return Err(GobinError::TooLarge {
            what: ".gopclntab",
            size: loc.size,
            limit: limits::MAX_PCLNTAB,
        });
    }
    let bytes = read_vec(src, loc.offset, loc.size, limits::MAX_PCLNTAB).map_err(|e| match e {
        SourceError::OutOfBounds { .. } => malformed("section beyond end of file"),
        other => other.into(),
    })?;
    Pclntab::parse(bytes, loc.vaddr)
}

/// Where the text start (base of 1.18+ entry offsets) came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextStart {
    /// Not needed: the format stores absolute entry PCs (before Go 1.18).
    NotNeeded,
    /// `moduledata.text`, what the runtime itself uses.
    ModuleData,
    /// The pclntab header (Go 1.18-1.25).
    Header,
    /// The `runtime.text` symbol in `.symtab`.
    Symtab,
}

/// The function table must lie in one executable PT_LOAD: a table read with the wrong text
/// start, or a forged one, fails here instead of producing plausible wrong addresses.
fn check_code_range(elf: &Elf, tab: &Pclntab) -> Result<(), GobinError> {
    if tab.count() == 0 {
        return Ok(());
    }
    let (Some(first), Some(end)) = (tab.entry(0), tab.entry(tab.count())) else {
        return Err(malformed("function table"));
    };
    let inside = elf.loads().any(|s| {
        s.flags & PF_X != 0
            && first >= s.vaddr
            && end >= first
            && s.vaddr
                .checked_add(s.memsz)
                .is_some_and(|seg_end| end <= seg_end)
    });
    if inside {
        Ok(())
    } else {
        Err(malformed("functions lie outside every executable segment"))
    }
}

/// The identity parts known from bytes: build IDs. They are claims made by the file (a
/// hostile file can copy another's), so caches key on file identity, not on these.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BinaryIdentity {
    /// GNU build ID (hex).
    pub gnu_build_id: Option<String>,
    /// Go build ID.
    pub go_build_id: Option<String>,
    /// Go version from build info.
    pub go_version: Option<String>,
}

/// A parsed Go binary: build info, function table, line tables and inline trees, with
/// address translation. Holds the pclntab in memory and reads anything else on demand.
pub struct GoBinary {
    src: Box<dyn ByteSource>,
    elf: Elf,
    ident: Identification,
    version: Option<GoVersion>,
    pclntab: Pclntab,
    found: Found,
    moduledata: Option<ModuleData>,
    text_start: TextStart,
    inline: Option<InlineLayout>,
    funcdata: FuncDataBytes,
}

impl std::fmt::Debug for GoBinary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoBinary")
            .field("go_version", &self.go_version())
            .field("format", &self.pclntab.format())
            .field("functions", &self.pclntab.count())
            .field("found", &self.found)
            .field("text_start", &self.text_start)
            .finish_non_exhaustive()
    }
}

// The daemon shares one parse across tokio tasks.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<GoBinary>();
};

const fn malformed(what: &'static str) -> GobinError {
    GobinError::MalformedPclntab { what }
}

impl GoBinary {
    /// Opens and parses the file at `path` (read with `pread`, never mapped).
    pub fn open(path: &Path) -> Result<GoBinary, GobinError> {
        let file = File::open(path).map_err(|source| GobinError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        GoBinary::parse(file)
    }

    /// Parses a binary: ELF tables, build info, build IDs, `.gopclntab` and moduledata.
    pub fn parse(src: impl ByteSource + 'static) -> Result<GoBinary, GobinError> {
        let src: Box<dyn ByteSource> = Box::new(src);
        let f = front(src.as_ref())?;
        let elf = &f.elf;
        let mut first_error = None;
        let found = scan::locate(elf, src.as_ref(), |loc| {
            match load_pclntab(src.as_ref(), loc) {
                Ok(t) => Ok(Some((t, loc.found))),
                // A scanned false positive is skipped; a named section's error is the answer.
                Err(e @ (GobinError::MalformedPclntab { .. } | GobinError::TooLarge { .. })) => {
                    if loc.found == Found::Section {
                        return Err(e);
                    }
                    first_error.get_or_insert(e);
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })?;
        let Some((mut pclntab, found)) = found else {
            let not_go = GobinError::NotGo {
                reason: "no .gopclntab section and no valid pclntab magic in any segment",
            };
            // Without other signs of Go, a magic-like byte pattern is no reason to call the
            // file a broken Go binary.
            return Err(match (f.evidence(), first_error) {
                (Some(_), Some(e)) => e,
                _ => not_go,
            });
        };
        let evidence = f.evidence().unwrap_or(Evidence::PclntabSection);
        let ident = f.identification(evidence);
        let elf = f.elf;
        let version = ident.go_version.as_deref().and_then(GoVersion::parse);
        let moduledata = moduledata::find(&elf, src.as_ref(), &pclntab, version)?;
        let text_start = if !pclntab.uses_text_start() {
            TextStart::NotNeeded
        } else if let Some(md) = &moduledata {
            pclntab.set_text_start(md.text);
            TextStart::ModuleData
        } else if pclntab.header_text_start() != 0 {
            TextStart::Header
        } else if let Ok([Some(t)]) =
            symtab::lookup(&elf, src.as_ref(), &["runtime.text"]).as_deref()
        {
            pclntab.set_text_start(*t);
            TextStart::Symtab
        } else {
            // Not `.text`: external linkers put C code before runtime.text, and a wrong base
            // would silently move every function (and every uprobe placed from it).
            return Err(malformed(
                "no text start: header is 0 and no moduledata or symbols",
            ));
        };
        check_code_range(&elf, &pclntab)?;
        let inline = match pclntab.format() {
            Format::Go120 => Some(InlineLayout::Go120),
            Format::Go116 | Format::Go118 => Some(InlineLayout::Go112),
            // Go 1.2-1.11 wrote a different inline tree (or none): only trust a known version.
            Format::Go12 => version
                .filter(|v| v.major == 1 && v.minor >= 12)
                .map(|_| InlineLayout::Go112),
        };
        let funcdata = FuncDataBytes::new(moduledata.and_then(|m| m.gofunc));
        Ok(GoBinary {
            src,
            elf,
            ident,
            version,
            pclntab,
            found,
            moduledata,
            text_start,
            inline,
            funcdata,
        })
    }

    /// Go version from build info, e.g. "go1.25.5".
    pub fn go_version(&self) -> Option<&str> {
        self.ident.go_version.as_deref()
    }

    /// Parsed Go version.
    pub fn version(&self) -> Option<GoVersion> {
        self.version
    }

    /// Build info (version, main module, dependencies, settings).
    pub fn build_info(&self) -> Option<&BuildInfo> {
        self.ident.build_info.as_ref()
    }

    /// GNU build ID (hex), present with external linking and in Go 1.26+ defaults.
    pub fn gnu_build_id(&self) -> Option<String> {
        self.ident.gnu_build_id.clone()
    }

    /// Go build ID from `.note.go.buildid`.
    pub fn go_build_id(&self) -> Option<&str> {
        self.ident.go_build_id.as_deref()
    }

    /// The identification facts (as [`crate::identify`] returns them).
    pub fn identification(&self) -> &Identification {
        &self.ident
    }

    /// Build IDs and version: what identifies this build from its bytes.
    pub fn identity(&self) -> BinaryIdentity {
        BinaryIdentity {
            gnu_build_id: self.ident.gnu_build_id.clone(),
            go_build_id: self.ident.go_build_id.clone(),
            go_version: self.ident.go_version.clone(),
        }
    }

    /// Whether the ELF type is ET_DYN (addresses are relative to a load bias at run time).
    pub fn is_pie(&self) -> bool {
        self.elf.e_type == ET_DYN
    }

    /// Whether there is no `.symtab` (as after `-ldflags=-s` or `strip`).
    pub fn stripped(&self) -> bool {
        !symtab::present(&self.elf)
    }

    /// Whether DWARF line/info sections are present (`.debug_info` or compressed `.zdebug_info`).
    pub fn has_dwarf(&self) -> bool {
        self.elf
            .sections
            .iter()
            .any(|s| (s.name == ".debug_info" || s.name == ".zdebug_info") && s.size > 0)
    }

    /// The pclntab format.
    pub fn pclntab_format(&self) -> Format {
        self.pclntab.format()
    }

    /// Size of `.gopclntab` in bytes (what the index holds in memory).
    pub fn pclntab_size(&self) -> usize {
        self.pclntab.size()
    }

    /// Whether `.gopclntab` was found by section header or by magic scan.
    pub fn pclntab_found(&self) -> Found {
        self.found
    }

    /// Where the text start came from.
    pub fn text_start_source(&self) -> TextStart {
        self.text_start
    }

    /// The text start in use (base of 1.18+ entry offsets; 0 when not needed).
    pub fn text_start(&self) -> u64 {
        self.pclntab.text_start()
    }

    /// The moduledata found in the data segment (Go 1.16+).
    pub fn moduledata(&self) -> Option<&ModuleData> {
        self.moduledata.as_ref()
    }

    /// Program headers of type PT_LOAD (to compute a PIE's load bias from /proc maps).
    pub fn load_segments(&self) -> impl Iterator<Item = &Segment> + '_ {
        self.elf.loads()
    }

    /// The ELF tables.
    pub fn elf(&self) -> &Elf {
        &self.elf
    }

    /// The bytes this binary was parsed from.
    pub(crate) fn source(&self) -> &dyn ByteSource {
        self.src.as_ref()
    }

    /// Number of functions in `.gopclntab`.
    pub fn function_count(&self) -> usize {
        self.pclntab.count()
    }

    fn function_at(&self, i: usize) -> Option<Function> {
        let f = self.pclntab.func(i)?;
        Some(Function {
            name: String::from_utf8_lossy(f.name()?).into_owned(),
            entry: f.entry(),
            end: f.end(),
        })
    }

    /// The function named `name` as `.gopclntab` spells it; `.abi0` / `.abiinternal` suffixes
    /// (as `.symtab` writes assembly functions) are accepted too.
    pub fn function(&self, name: &str) -> Option<Function> {
        let find = |n: &str| {
            (0..self.pclntab.count()).find(|&i| {
                self.pclntab
                    .func(i)
                    .is_some_and(|f| f.name_is(n.as_bytes()))
            })
        };
        let i = find(name).or_else(|| {
            let base = name
                .strip_suffix(".abi0")
                .or_else(|| name.strip_suffix(".abiinternal"))?;
            find(base)
        })?;
        self.function_at(i)
    }

    /// Every function in entry order.
    pub fn functions(&self) -> impl Iterator<Item = Function> + '_ {
        (0..self.pclntab.count()).filter_map(|i| self.function_at(i))
    }

    /// The function whose [entry, end) holds `pc`.
    pub fn function_at_pc(&self, pc: u64) -> Option<Function> {
        self.function_at(self.pclntab.find(pc)?)
    }

    /// File offset of `vaddr` through the PT_LOAD segments (what uprobes attach with).
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.elf.file_offset(vaddr)
    }

    /// Reads the file's bytes at virtual address `vaddr` (e.g. a function's code).
    pub fn read_vaddr(&self, vaddr: u64, buf: &mut [u8]) -> Result<(), GobinError> {
        let len = buf.len() as u64;
        let off = self
            .elf
            .file_range(vaddr, len)
            .ok_or(GobinError::Unmapped { vaddr, len })?;
        Ok(self.src.read_at(off, buf)?)
    }

    /// Frames at `pc`, innermost (inlined) first, outermost (the real function) last.
    ///
    /// `pc` is an instruction address; for a return address taken from a stack pass `pc - 1`,
    /// or the call's position is reported as the next line's.
    pub fn symbolize(&self, pc: u64) -> Option<Vec<Frame>> {
        let mut out = Vec::new();
        self.symbolize_with(pc, |f| {
            out.push(Frame {
                function: String::from_utf8_lossy(f.function).into_owned(),
                file: String::from_utf8_lossy(f.file).into_owned(),
                line: u32::try_from(f.line).unwrap_or(0),
                inlined: f.inlined,
            })
        })
        .then_some(out)
    }

    /// As [`GoBinary::symbolize`] without allocating: calls `each` per frame, innermost first,
    /// with names borrowed from the table. Returns false when no function holds `pc`.
    pub fn symbolize_with(&self, pc: u64, mut each: impl FnMut(FrameRef<'_>)) -> bool {
        let Some(f) = self.pclntab.find(pc).and_then(|i| self.pclntab.func(i)) else {
            return false;
        };
        let resolver = Resolver {
            fdb: &self.funcdata,
            elf: &self.elf,
            src: self.src.as_ref(),
            tab: &self.pclntab,
        };
        let mut frames: Vec<RawFrame<'_>> = Vec::new();
        self.pclntab
            .frames(&f, pc, self.inline, &resolver, &mut frames);
        for r in frames {
            each(FrameRef {
                function: r.function,
                file: r.file,
                line: r.line,
                inlined: r.inlined,
            });
        }
        true
    }

    /// Address of a data symbol (`runtime.sched`, `runtime.allglen`, `runtime.allgs`) from
    /// `.symtab`, checked against moduledata's data/bss ranges when moduledata is known. In
    /// stripped binaries `runtime.allgs` and `runtime.allglen` are recovered from the code of
    /// `runtime.allgadd` ([`GoBinary::data_symbol_from_code`]); others are unavailable.
    pub fn data_symbol(&self, name: &str) -> Result<u64, Unavailable> {
        let found = match symtab::lookup(&self.elf, self.src.as_ref(), &[name]) {
            Ok(found) => found,
            Err(Unavailable::Stripped) => return self.data_symbol_from_code(name),
            Err(e) => return Err(e),
        };
        let addr = found
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| Unavailable::NotFound(name.to_string()))?;
        self.check_data(name, addr)
    }

    fn check_data(&self, name: &str, addr: u64) -> Result<u64, Unavailable> {
        let inside = match &self.moduledata {
            Some(md) => md.holds_data(addr),
            // No moduledata (before Go 1.16): at least a writable loaded address.
            None => self
                .elf
                .loads()
                .any(|s| s.flags & PF_W != 0 && addr >= s.vaddr && addr - s.vaddr < s.memsz),
        };
        if inside {
            Ok(addr)
        } else {
            Err(Unavailable::OutsideData {
                name: name.to_string(),
                addr,
            })
        }
    }

    /// `runtime.allgs` or `runtime.allglen` recovered from the x86-64 code of
    /// `runtime.allgadd`, without symbols (the stripped-binary path of
    /// [`GoBinary::data_symbol`]).
    pub fn data_symbol_from_code(&self, name: &str) -> Result<u64, Unavailable> {
        let want_len = match name {
            "runtime.allgs" => false,
            "runtime.allglen" => true,
            _ => return Err(Unavailable::Stripped),
        };
        if self.elf.machine != EM_X86_64 {
            return Err(Unavailable::CodeAnchor(
                "code anchors exist for x86-64 only",
            ));
        }
        let f = self
            .function("runtime.allgadd")
            .ok_or(Unavailable::CodeAnchor("no runtime.allgadd in .gopclntab"))?;
        let len = usize::try_from(f.end.saturating_sub(f.entry))
            .ok()
            .filter(|&l| l <= 16 << 10)
            .ok_or(Unavailable::CodeAnchor(
                "runtime.allgadd is unexpectedly large",
            ))?;
        let mut code = vec![0u8; len];
        self.read_vaddr(f.entry, &mut code)
            .map_err(|_| Unavailable::CodeAnchor("cannot read runtime.allgadd"))?;
        let (allgs, allglen) =
            anchors::allgs_from_allgadd(&code, f.entry).map_err(Unavailable::CodeAnchor)?;
        self.check_data(name, if want_len { allglen } else { allgs })
    }
}

/// A frame with names borrowed from the binary's tables (see [`GoBinary::symbolize_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// Function name bytes.
    pub function: &'a [u8],
    /// File name bytes.
    pub file: &'a [u8],
    /// Line (0 or negative when unknown).
    pub line: i32,
    /// Whether this frame was inlined into the next one.
    pub inlined: bool,
}
