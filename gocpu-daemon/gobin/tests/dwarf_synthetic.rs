//! The DWARF reader on the synthetic seed of the `dwarf_offsets` fuzz target
//! (`testdata/dwarf-seed/make_seed.py`): Go 1.25's layout written with forms Go itself never
//! uses (strp names, exprloc member locations, unit-relative references), and every truncation
//! and single-byte corruption of it, which must fail cleanly, never panic.
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;

use gocpu_gobin::{
    dwarf::{DwarfError, section_contents, struct_offsets, struct_offsets_from_elf},
    offsets::{StructOffsets, for_version},
};

const SEED: &[u8] = include_bytes!("../fuzz/corpus/dwarf_offsets/synthetic-go1.25-layout");

/// The seed's sections: .debug_info, .debug_abbrev, .debug_str, .debug_line_str.
fn sections() -> [Vec<u8>; 4] {
    let len = |i: usize| u32::from_le_bytes(SEED[1 + i..5 + i].try_into().unwrap()) as usize;
    let (a, b, c) = (len(0), len(4), len(8));
    let body = &SEED[13..];
    [
        body[..a].to_vec(),
        body[a..a + b].to_vec(),
        body[a + b..a + b + c].to_vec(),
        body[a + b + c..].to_vec(),
    ]
}

fn read(s: &[Vec<u8>; 4]) -> Result<StructOffsets, DwarfError> {
    struct_offsets(|name| {
        Ok(match name {
            ".debug_info" => Some(Cow::Borrowed(&s[0][..])),
            ".debug_abbrev" => Some(Cow::Borrowed(&s[1][..])),
            ".debug_str" => Some(Cow::Borrowed(&s[2][..])),
            ".debug_line_str" => Some(Cow::Borrowed(&s[3][..])),
            _ => None,
        })
    })
}

#[test]
fn synthetic_seed_reads_as_go_1_25() {
    assert_eq!(read(&sections()).unwrap(), for_version("go1.25.5").unwrap());
}

/// The other seeds carry the same DWARF compressed (ELF gABI and GNU forms) or in an ELF file.
#[test]
fn compressed_and_elf_seeds_read_the_same() {
    let go125 = for_version("go1.25.5").unwrap();
    let elf = include_bytes!("../fuzz/corpus/dwarf_offsets/synthetic-elf");
    assert_eq!(struct_offsets_from_elf(&elf[1..]).unwrap(), go125);
    let plain = sections();
    for (seed, name, shf) in [
        (
            &include_bytes!("../fuzz/corpus/dwarf_offsets/synthetic-shf-compressed")[..],
            ".debug_info",
            true,
        ),
        (
            &include_bytes!("../fuzz/corpus/dwarf_offsets/synthetic-zdebug")[..],
            ".zdebug_info",
            false,
        ),
    ] {
        let len = u32::from_le_bytes(seed[1..5].try_into().unwrap()) as usize;
        let info = section_contents(name, &seed[13..13 + len], shf).unwrap();
        assert_eq!(&info[..], &plain[0][..], "{name}");
    }
}

#[test]
fn missing_debug_info_is_no_dwarf() {
    let err = struct_offsets(|_| Ok(None)).unwrap_err();
    assert!(matches!(err, DwarfError::NoDwarf));
}

#[test]
fn every_truncation_fails_cleanly() {
    let full = sections();
    for which in 0..3 {
        for len in 0..full[which].len() {
            // Only the abbreviation table's final terminator may go: the section end ends it too.
            if which == 1 && len + 1 == full[1].len() {
                continue;
            }
            let mut s = full.clone();
            s[which].truncate(len);
            assert!(read(&s).is_err(), "section {which} cut to {len} still read");
        }
    }
}

#[test]
fn every_byte_corruption_is_handled() {
    let full = sections();
    let mut errors = 0;
    for which in 0..3 {
        for at in 0..full[which].len() {
            for mask in [0xff, 0x01, 0x80] {
                let mut s = full.clone();
                s[which][at] ^= mask;
                // Ok (a changed offset or name that still parses) or an error; never a panic.
                errors += usize::from(read(&s).is_err());
            }
        }
    }
    assert!(errors > 0);
}
