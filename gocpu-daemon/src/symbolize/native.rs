//! Names for code outside Go's `.gopclntab`: C functions of cgo code and shared libraries, from
//! the ELF symbol tables (`.symtab`, else `.dynsym`) of the mapped file, read lazily through the
//! `object` crate (no whole-file read, no mmap).
use std::{fs::File, path::Path, sync::Arc};

use object::{
    Object, ObjectSegment, ObjectSymbol, SymbolKind,
    read::{ReadCache, elf::ElfFile64},
};

/// Most symbols kept per object (a hostile file cannot make the daemon allocate without bound).
const MAX_SYMBOLS: usize = 1 << 20;
/// Largest file inspected.
const MAX_FILE: u64 = 2 << 30;

/// Why an object's symbols are unavailable.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The file could not be opened or read.
    #[error("cannot read {0}")]
    Io(#[from] std::io::Error),
    /// Not a 64-bit ELF file, or malformed.
    #[error("not a readable 64-bit ELF file: {0}")]
    Elf(#[from] object::Error),
    /// Larger than the daemon inspects.
    #[error("file too large ({0} bytes)")]
    TooLarge(u64),
}

/// Function symbols of one ELF object, by address.
#[derive(Debug, Default)]
pub struct NativeSymbols {
    /// (start, end, name), sorted by start.
    funcs: Vec<(u64, u64, Arc<str>)>,
    /// PT_LOAD segments: (file offset, vaddr, file size).
    loads: Vec<(u64, u64, u64)>,
}

impl NativeSymbols {
    /// Reads the function symbols of the ELF file at `path`.
    pub fn load(path: &Path) -> Result<NativeSymbols, NativeError> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if len > MAX_FILE {
            return Err(NativeError::TooLarge(len));
        }
        let cache = ReadCache::new(file);
        let elf = ElfFile64::<object::Endianness, _>::parse(&cache)?;
        let loads = elf
            .segments()
            .map(|s| {
                let (off, size) = s.file_range();
                (off, s.address(), size)
            })
            .collect();
        let symbols = if elf.symbols().next().is_some() {
            elf.symbols().take(MAX_SYMBOLS).collect::<Vec<_>>()
        } else {
            elf.dynamic_symbols().take(MAX_SYMBOLS).collect()
        };
        let mut funcs: Vec<(u64, u64, Arc<str>)> = symbols
            .into_iter()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| {
                let name = s.name().ok()?;
                Some((
                    s.address(),
                    s.address().saturating_add(s.size().max(1)),
                    Arc::from(name),
                ))
            })
            .collect();
        funcs.sort_by_key(|f| f.0);
        Ok(NativeSymbols { funcs, loads })
    }

    /// The function containing file offset `offset` of the object, and the offset into it.
    pub fn at_file_offset(&self, offset: u64) -> Option<(Arc<str>, u64)> {
        let vaddr = self
            .loads
            .iter()
            .find(|(off, _, size)| *off <= offset && offset < off.saturating_add(*size))
            .map(|(off, vaddr, _)| vaddr + (offset - off))?;
        self.at_vaddr(vaddr)
    }

    /// The function containing virtual address `vaddr`, and the offset into it.
    pub fn at_vaddr(&self, vaddr: u64) -> Option<(Arc<str>, u64)> {
        let i = self
            .funcs
            .partition_point(|f| f.0 <= vaddr)
            .checked_sub(1)?;
        let (start, end, name) = self.funcs.get(i)?;
        (vaddr < *end).then(|| (Arc::clone(name), vaddr - start))
    }

    /// Number of function symbols.
    pub fn len(&self) -> usize {
        self.funcs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.funcs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_libc_functions_and_rejects_garbage() {
        let libc = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .unwrap();
        let syms = NativeSymbols::load(libc).unwrap();
        assert!(syms.len() > 500, "{}", syms.len());
        // Every symbol resolves to itself at its start.
        let (start, _, name) = syms
            .funcs
            .iter()
            .find(|f| &*f.2 == "getpid")
            .cloned()
            .unwrap();
        let (found, off) = syms.at_vaddr(start).unwrap();
        assert_eq!((&*found, off), (&*name, 0));
        let garbage = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(garbage.path(), b"\x7fELF not really").unwrap();
        assert!(NativeSymbols::load(garbage.path()).is_err());
    }
}
