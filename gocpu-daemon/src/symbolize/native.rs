//! Names for code outside Go's `.gopclntab`: C functions of cgo code and shared libraries, from
//! the ELF symbol tables (`.symtab`, else `.dynsym`) of the mapped file, read lazily through the
//! `object` crate (no whole-file read, no mmap), and the object's signal return trampoline, found
//! by its code because no stripped libc names it.
use std::{fs::File, path::Path, sync::Arc};

use object::{
    Object, ObjectSegment, ObjectSymbol, SegmentFlags, SymbolKind,
    elf::PF_X,
    read::{ReadCache, elf::ElfFile64},
};

/// Most symbols kept per object (a hostile file cannot make the daemon allocate without bound).
const MAX_SYMBOLS: usize = 1 << 20;
/// Largest file inspected.
const MAX_FILE: u64 = 2 << 30;
/// Largest executable segment searched for a signal return trampoline (libc's is 1.4 MiB; a
/// cgo binary's own text, where a static libc would put it, tens of MiB).
const MAX_SCAN: u64 = 256 << 20;

/// The name given to a signal return trampoline ([`SIGNAL_RETURN_CODE`]).
pub const SIGNAL_RETURN: &str = "__restore_rt";

/// `mov $15, %rax; syscall`: `rt_sigreturn`, the whole of x86-64 glibc's and musl's
/// `__restore_rt`, where a handler installed through libc's sigaction returns (as a cgo-linked Go
/// program's are). Neither library exports it, so a stripped libc leaves it nameless. A thread
/// sampled while the kernel restores its signal frame is in this code, right after the `syscall`.
const SIGNAL_RETURN_CODE: [u8; 9] = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];

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
    /// Start addresses of [`SIGNAL_RETURN_CODE`] in executable segments.
    signal_returns: Vec<u64>,
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
        let mut signal_returns = Vec::new();
        for seg in elf.segments() {
            let executable =
                matches!(seg.flags(), SegmentFlags::Elf { p_flags } if p_flags & PF_X != 0);
            if !executable || seg.file_range().1 > MAX_SCAN {
                continue;
            }
            // An unreadable segment only costs the trampoline's name.
            if let Ok(code) = seg.data() {
                signal_returns.extend(
                    code.windows(SIGNAL_RETURN_CODE.len())
                        .enumerate()
                        .filter(|(_, w)| *w == SIGNAL_RETURN_CODE)
                        .map(|(i, _)| seg.address() + i as u64),
                );
            }
        }
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
        Ok(NativeSymbols {
            funcs,
            loads,
            signal_returns,
        })
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
        // From the byte before it (libc puts a nop there: a handler's return address is the
        // trampoline's start, which callers look up one byte back) to the byte past it (a
        // thread in rt_sigreturn is sampled just past the `syscall`). Ahead of the symbols,
        // which (unstripped) give the trampoline no size.
        let len = SIGNAL_RETURN_CODE.len() as u64;
        if let Some(start) = self
            .signal_returns
            .iter()
            .find(|s| (s.saturating_sub(1)..=*s + len).contains(&vaddr))
        {
            return Some((Arc::from(SIGNAL_RETURN), vaddr.saturating_sub(*start)));
        }
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
        // The signal return trampoline has no symbol in a stripped libc; found by its code,
        // named where a thread in rt_sigreturn is sampled (just past the syscall).
        assert_eq!(syms.signal_returns.len(), 1, "{:x?}", syms.signal_returns);
        let restorer = syms.signal_returns[0];
        for at in [restorer - 1, restorer, restorer + 9] {
            let (found, off) = syms.at_vaddr(at).unwrap();
            assert_eq!((&*found, off), (SIGNAL_RETURN, at.saturating_sub(restorer)));
        }
        assert_ne!(
            syms.at_vaddr(restorer + 10).map(|f| f.0),
            Some(Arc::from(SIGNAL_RETURN))
        );
        let garbage = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(garbage.path(), b"\x7fELF not really").unwrap();
        assert!(NativeSymbols::load(garbage.path()).is_err());
    }
}
