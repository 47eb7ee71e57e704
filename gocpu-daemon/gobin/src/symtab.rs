//! Lookups in `.symtab` (present unless the binary was stripped): data symbols such as
//! `runtime.sched`, which `.gopclntab` does not list.
use crate::{
    bytes::{Data, usize_of},
    elf::{Elf, SHT_SYMTAB},
    error::Unavailable,
    limits,
    source::{ByteSource, read_vec},
};

/// Whether the binary has a `.symtab` with entries.
pub(crate) fn present(elf: &Elf) -> bool {
    elf.sections
        .iter()
        .any(|s| s.kind == SHT_SYMTAB && s.size > 0)
}

/// Values of the symbols named in `names` (first match each), streaming the table in chunks.
pub(crate) fn lookup(
    elf: &Elf,
    src: &dyn ByteSource,
    names: &[&str],
) -> Result<Vec<Option<u64>>, Unavailable> {
    let sym = elf
        .sections
        .iter()
        .find(|s| s.kind == SHT_SYMTAB && s.size > 0)
        .ok_or(Unavailable::Stripped)?;
    let strtab = usize_of(sym.link.into())
        .and_then(|i| elf.sections.get(i))
        .ok_or(Unavailable::SymtabUnreadable("no string table"))?;
    let strings = read_vec(src, strtab.offset, strtab.size, limits::MAX_SYMTAB)
        .map_err(|_| Unavailable::SymtabUnreadable("string table out of bounds"))?;
    let strings = Data::new(&strings, elf.endian);
    let entsize: u64 = if elf.is_64 { 24 } else { 16 };
    if sym.entsize != 0 && sym.entsize != entsize {
        return Err(Unavailable::SymtabUnreadable("entry size"));
    }
    if sym.size > limits::MAX_SYMTAB {
        return Err(Unavailable::SymtabUnreadable("too large"));
    }
    let count = sym.size / entsize;
    let per_chunk = limits::CHUNK / entsize;
    let mut found: Vec<Option<u64>> = vec![None; names.len()];
    let mut first = 0u64;
    while first < count && found.iter().any(Option::is_none) {
        let n = (count - first).min(per_chunk);
        let chunk = read_vec(
            src,
            sym.offset + first * entsize,
            n * entsize,
            limits::CHUNK,
        )
        .map_err(|_| Unavailable::SymtabUnreadable("symbol table out of bounds"))?;
        let d = Data::new(&chunk, elf.endian);
        for i in 0..n as usize {
            let b = i * entsize as usize;
            let (name, value) = if elf.is_64 {
                (d.u32(b), d.u64(b + 8))
            } else {
                (d.u32(b), d.u32(b + 4).map(u64::from))
            };
            let (Some(name), Some(value)) = (name, value) else {
                continue;
            };
            let Some(bytes) = usize_of(name.into()).and_then(|o| strings.cstr(o, limits::MAX_NAME))
            else {
                continue;
            };
            for (slot, want) in found.iter_mut().zip(names) {
                if slot.is_none() && bytes == want.as_bytes() {
                    *slot = Some(value);
                }
            }
        }
        first += n;
    }
    Ok(found)
}
