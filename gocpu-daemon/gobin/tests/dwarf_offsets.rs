//! The DWARF offset reader against Go's own debug/dwarf, and against the generated table, for
//! every test toolchain and build variant.
//!
//! Oracle: `testdata/dwarf-oracle`, a Go program using `debug/elf` + `debug/dwarf`, prints each
//! field's offset, size and kind. Our reader must agree field by field on the unstripped
//! variants (default, PIE, cgo with external linking, whose DWARF mixes gcc's DWARF 5 units
//! with Go's), the table row for the binary's Go version must equal what DWARF says, and the
//! stripped variant must fail with `NoDwarf`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support_sites;

use std::{borrow::Cow, path::Path, process::Command};

use gocpu_gobin::{
    dwarf::{
        DwarfError, FieldInfo, object_section, read_fields_from_elf, section_contents,
        struct_offsets, struct_offsets_from_elf,
    },
    offsets::{FIELD_SPECS, for_version, table_row},
};
use gocpu_testkit::{GoToolchain, Variant, build, build_with};
use object::{Object, ObjectSection};
use support_sites::{fixture, testdata, toolchain};

/// Runs the Go oracle on `bin`: one "TYPE PATH OFFSET SIZE KIND" line per spec.
fn oracle(bin: &Path) -> Vec<String> {
    let oracle = build(
        &toolchain("1.27"),
        &testdata("dwarf-oracle"),
        Variant::Default,
    );
    let specs: Vec<String> = FIELD_SPECS
        .iter()
        .map(|s| format!("{}:{}", s.strukt, s.paths.join("|")))
        .collect();
    let out = Command::new(oracle).arg(bin).args(&specs).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn line(f: &FieldInfo) -> String {
    format!(
        "{} {} {} {} {:?}",
        f.strukt, f.path, f.field.offset, f.field.size, f.field.kind
    )
}

fn check_toolchain(tc: &GoToolchain) {
    let version = format!("go{}", tc.version);
    let row = table_row(&version).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        row.bracketed_by, None,
        "{version} must have its own table row"
    );
    for variant in Variant::ALL {
        let bin = build(tc, &fixture(), variant);
        let bytes = std::fs::read(&bin).unwrap();
        if variant == Variant::Stripped {
            let err = struct_offsets_from_elf(&bytes).unwrap_err();
            assert!(
                matches!(err, DwarfError::NoDwarf),
                "{version} stripped: {err}"
            );
            continue;
        }
        let fields = read_fields_from_elf(&bytes)
            .unwrap_or_else(|e| panic!("{version} {}: {e}", variant.name()));
        let ours: Vec<String> = fields.iter().map(line).collect();
        assert_eq!(
            ours,
            oracle(&bin),
            "{version} {}: debug/dwarf disagrees",
            variant.name()
        );
        let offsets = struct_offsets_from_elf(&bytes).unwrap();
        assert_eq!(
            Ok(offsets),
            for_version(&version),
            "{version} {}: the table row differs from the binary's DWARF",
            variant.name()
        );
    }
    // Uncompressed DWARF reads the same as compressed.
    let plain = build_with(
        tc,
        &fixture(),
        Variant::Default,
        &["-ldflags=-compressdwarf=false"],
    );
    let bytes = std::fs::read(&plain).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let info = file.section_by_name(".debug_info").unwrap();
    assert!(
        matches!(info.flags(), object::SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_COMPRESSED) == 0),
        "-compressdwarf=false still compressed .debug_info"
    );
    assert_eq!(
        struct_offsets_from_elf(&bytes).ok(),
        for_version(&version).ok()
    );
    println!(
        "{version}: {} fields equal to debug/dwarf and the table",
        FIELD_SPECS.len()
    );
}

#[test]
fn dwarf_go1_19() {
    check_toolchain(&toolchain("1.19"));
}

#[test]
fn dwarf_go1_21() {
    check_toolchain(&toolchain("1.21"));
}

#[test]
fn dwarf_go1_23() {
    check_toolchain(&toolchain("1.23"));
}

#[test]
fn dwarf_go1_25() {
    check_toolchain(&toolchain("1.25"));
}

#[test]
fn dwarf_go1_27() {
    check_toolchain(&toolchain("1.27"));
}

/// A GNU `.zdebug_info` built from the same zlib stream decompresses to the same bytes as the
/// `SHF_COMPRESSED` section Go wrote (Go 1.11-1.18 produced the GNU form).
#[test]
fn zdebug_matches_shf_compressed() {
    let bin = build(&toolchain("1.27"), &fixture(), Variant::Default);
    let bytes = std::fs::read(&bin).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let raw = file.section_by_name(".debug_info").unwrap().data().unwrap();
    let plain = section_contents(".debug_info", raw, true).unwrap();
    assert!(
        matches!(plain, Cow::Owned(_)),
        "Go's .debug_info should be compressed"
    );
    let mut gnu = b"ZLIB".to_vec();
    gnu.extend_from_slice(&(plain.len() as u64).to_be_bytes());
    gnu.extend_from_slice(&raw[24..]);
    assert_eq!(
        section_contents(".zdebug_info", &gnu, false).unwrap(),
        plain
    );
    // A lying size is an error, not a short or padded section.
    gnu[11] ^= 1;
    assert!(section_contents(".zdebug_info", &gnu, false).is_err());
    // The loader contract: decompressed sections through the closure give the same offsets.
    let via_closure = struct_offsets(|name| object_section(&file, name)).unwrap();
    assert_eq!(Ok(via_closure), for_version("go1.27.3"));
}

/// Truncated and corrupted copies of a real binary fail cleanly.
#[test]
fn damaged_binaries_are_errors() {
    let bin = build(&toolchain("1.25"), &fixture(), Variant::Default);
    let bytes = std::fs::read(&bin).unwrap();
    for len in [0, 16, 64, 4096, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            struct_offsets_from_elf(&bytes[..len]).is_err(),
            "truncated to {len}"
        );
    }
    let file = object::File::parse(&*bytes).unwrap();
    let info = file.section_by_name(".debug_info").unwrap();
    let (off, size) = info.file_range().unwrap();
    let mut broken = bytes.clone();
    for b in &mut broken[off as usize + 24..(off + size) as usize] {
        *b ^= 0x5a;
    }
    let err = struct_offsets_from_elf(&broken).unwrap_err();
    assert_eq!(err.label(), "decompression", "{err}");
}
