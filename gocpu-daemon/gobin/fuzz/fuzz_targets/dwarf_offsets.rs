//! Fuzz target: the DWARF struct-offset reader (gocpu_gobin::dwarf) on arbitrary bytes.
//!
//! Input: a flags byte, then
//! - flags bit 0 set: the rest is a whole ELF file, read with `struct_offsets_from_elf`;
//! - otherwise: three u32 LE lengths (.debug_info, .debug_abbrev, .debug_str), those sections
//!   and, after them, .debug_line_str. Bit 1 sends .debug_info through `section_contents` as an
//!   `SHF_COMPRESSED` section, bit 2 as a GNU `.zdebug_info`.
//!
//! Seeds: `corpus/dwarf_offsets/` (made by testdata/dwarf-seed/make_seed.py, plus regressions).
#![no_main]
use std::borrow::Cow;

use gocpu_gobin::dwarf::{section_contents, struct_offsets, struct_offsets_from_elf};
use libfuzzer_sys::fuzz_target;

fn split(data: &[u8]) -> Option<[&[u8]; 4]> {
    let len = |i: usize| -> Option<usize> {
        let b = data.get(i..i + 4)?;
        Some(u32::from_le_bytes(b.try_into().ok()?) as usize)
    };
    let (a, b, c) = (len(0)?, len(4)?, len(8)?);
    let mut rest = data.get(12..)?;
    let mut take = |n: usize| {
        let (head, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        head
    };
    let (info, abbrev, strs) = (take(a), take(b), take(c));
    Some([info, abbrev, strs, rest])
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    if flags & 1 != 0 {
        let _ = struct_offsets_from_elf(rest);
        return;
    }
    let Some([info, abbrev, strs, line_str]) = split(rest) else {
        return;
    };
    let info = match flags & 6 {
        2 => section_contents(".debug_info", info, true),
        4 => section_contents(".zdebug_info", info, false),
        _ => Ok(Cow::Borrowed(info)),
    };
    let Ok(info) = info else { return };
    let _ = struct_offsets(|name| {
        Ok(match name {
            ".debug_info" => Some(info.clone()),
            ".debug_abbrev" => Some(Cow::Borrowed(abbrev)),
            ".debug_str" => Some(Cow::Borrowed(strs)),
            ".debug_line_str" => Some(Cow::Borrowed(line_str)),
            _ => None,
        })
    });
});
