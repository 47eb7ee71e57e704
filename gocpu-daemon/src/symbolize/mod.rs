//! Symbolization of one process's user-space addresses: Go frames (with inlined ones, file and
//! line) from the binary's `.gopclntab`, anything else named by the object that maps it.
//!
//! Addresses are translated with the process's own mappings (a PIE's load bias comes from
//! `/proc/<pid>/maps`), results are cached per address (bounded), names interned.
pub mod native;

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use self::native::NativeSymbols;

use gocpu_gobin::GoBinary;

use crate::discovery::maps::Mapping;

/// One symbolized frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SymFrame {
    /// A Go function (possibly inlined into the next frame).
    Go {
        /// Function name.
        function: Arc<str>,
        /// Source file.
        file: Arc<str>,
        /// Source line (0 when unknown).
        line: u32,
        /// Inlined into the next frame.
        inlined: bool,
    },
    /// Code outside the Go binary's functions (cgo, libc, vdso), or an unmapped address.
    Native {
        /// The mapped object's name (`libc.so.6`, `[vdso]`), if mapped.
        object: Option<Arc<str>>,
        /// Offset in the object's file (or the raw address when unmapped).
        offset: u64,
        /// The C function from the object's ELF symbols, when it has them.
        symbol: Option<Arc<str>>,
    },
}

impl SymFrame {
    /// The Go function name, if a Go frame.
    pub fn go_function(&self) -> Option<&str> {
        match self {
            SymFrame::Go { function, .. } => Some(function),
            SymFrame::Native { .. } => None,
        }
    }
}

/// Most mapped objects whose symbols a symbolizer keeps.
const MAX_OBJECTS: usize = 256;

/// Most addresses a symbolizer caches before it starts over (keeps memory bounded).
const CACHE_LIMIT: usize = 65_536;

/// A symbolizer for one process.
#[derive(Debug)]
pub struct ProcessSymbolizer {
    root: PathBuf,
    natives: HashMap<PathBuf, Option<Arc<NativeSymbols>>>,
    exe: Arc<GoBinary>,
    exe_inode: u64,
    maps: Vec<Mapping>,
    bias: u64,
    cache: HashMap<u64, Arc<[SymFrame]>>,
    names: HashMap<Box<[u8]>, Arc<str>>,
}

impl ProcessSymbolizer {
    /// A symbolizer for a process running `exe` (file inode `exe_inode`) with mappings `maps`;
    /// mapped files are opened under `root` (the process's `/proc/<pid>/root`, so that files of
    /// another mount namespace are found).
    pub fn new(root: PathBuf, exe: Arc<GoBinary>, exe_inode: u64, maps: Vec<Mapping>) -> Self {
        let bias = load_bias(&exe, exe_inode, &maps);
        Self {
            root,
            natives: HashMap::new(),
            exe,
            exe_inode,
            maps,
            bias,
            cache: HashMap::new(),
            names: HashMap::new(),
        }
    }

    /// Replaces the mappings (after the process loaded libraries); keeps cached Go frames.
    pub fn update_maps(&mut self, maps: Vec<Mapping>) {
        self.bias = load_bias(&self.exe, self.exe_inode, &maps);
        self.maps = maps;
        self.cache.clear();
    }

    /// Whether `addr` is in a mapping known to this symbolizer.
    pub fn is_mapped(&self, addr: u64) -> bool {
        self.maps.iter().any(|m| m.contains(addr))
    }

    /// Frames at `ip`, innermost first. `ip` is a return address for every frame but the leaf;
    /// those are looked up at `ip - 1`, inside the call instruction.
    pub fn frames(&mut self, ip: u64, leaf: bool) -> Arc<[SymFrame]> {
        let pc = if leaf { ip } else { ip.saturating_sub(1) };
        if let Some(hit) = self.cache.get(&pc) {
            return Arc::clone(hit);
        }
        let frames: Arc<[SymFrame]> = self.resolve(pc).into();
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(pc, Arc::clone(&frames));
        frames
    }

    fn intern(&mut self, bytes: &[u8]) -> Arc<str> {
        if let Some(s) = self.names.get(bytes) {
            return Arc::clone(s);
        }
        let s: Arc<str> = String::from_utf8_lossy(bytes).into();
        if self.names.len() < CACHE_LIMIT {
            self.names.insert(bytes.into(), Arc::clone(&s));
        }
        s
    }

    fn resolve(&mut self, pc: u64) -> Vec<SymFrame> {
        let mapping = self.maps.iter().find(|m| m.contains(pc)).cloned();
        let in_exe = mapping.as_ref().is_some_and(|m| m.inode == self.exe_inode);
        if in_exe {
            let vaddr = pc.wrapping_sub(self.bias);
            let mut raw: Vec<(Vec<u8>, Vec<u8>, i32, bool)> = Vec::new();
            let exe = Arc::clone(&self.exe);
            let found = exe.symbolize_with(vaddr, |f| {
                raw.push((f.function.to_vec(), f.file.to_vec(), f.line, f.inlined));
            });
            if found && !raw.is_empty() {
                return raw
                    .into_iter()
                    .map(|(function, file, line, inlined)| SymFrame::Go {
                        function: self.intern(&function),
                        file: self.intern(&file),
                        line: u32::try_from(line).unwrap_or(0),
                        inlined,
                    })
                    .collect();
            }
        }
        let object = mapping
            .as_ref()
            .and_then(Mapping::object_name)
            .map(|n| self.intern(n.as_bytes()));
        let offset = mapping
            .as_ref()
            .map(|m| pc - m.start + m.offset)
            .unwrap_or(pc);
        let symbol = mapping
            .as_ref()
            .and_then(|m| m.path.clone())
            .filter(|p| p.is_absolute())
            .and_then(|p| self.native(&p))
            .and_then(|syms| syms.at_file_offset(offset))
            .map(|(name, _)| name);
        vec![SymFrame::Native {
            object,
            offset,
            symbol,
        }]
    }

    fn native(&mut self, path: &std::path::Path) -> Option<Arc<NativeSymbols>> {
        if let Some(hit) = self.natives.get(path) {
            return hit.clone();
        }
        let inside = self.root.join(path.strip_prefix("/").unwrap_or(path));
        let loaded = NativeSymbols::load(&inside).ok().map(Arc::new);
        if self.natives.len() < MAX_OBJECTS {
            self.natives.insert(path.to_path_buf(), loaded.clone());
        }
        loaded
    }
}

/// The difference between where the executable's code runs and where it was linked: 0 for
/// non-PIE binaries; for PIE, from the first mapping of the executable's file.
fn load_bias(exe: &GoBinary, exe_inode: u64, maps: &[Mapping]) -> u64 {
    if !exe.is_pie() {
        return 0;
    }
    for m in maps.iter().filter(|m| m.inode == exe_inode) {
        let seg = exe
            .load_segments()
            .find(|s| s.offset <= m.offset && m.offset < s.offset.saturating_add(s.filesz.max(1)));
        if let Some(seg) = seg {
            let linked = seg.vaddr.wrapping_add(m.offset - seg.offset);
            return m.start.wrapping_sub(linked);
        }
    }
    0
}
