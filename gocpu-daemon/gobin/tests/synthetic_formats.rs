//! All four pclntab formats through the whole front end, on small synthetic ELF files written
//! from the format descriptions (tests/common/synth.rs): function table, file:line, inline
//! chains, build info in both encodings, moduledata, and the section-less path (magic scan,
//! build info from the first writable segment, moduledata scan).
#![allow(clippy::unwrap_used)]
mod common;

use common::synth::{self, Fmt, TEXT};
use gocpu_gobin::{Found, GoBinary, TextStart, identify};

/// (format, Go version in build info, whether the 1.18+ header carries the text start).
const CASES: [(Fmt, &str, bool); 5] = [
    (Fmt::Go12, "go1.15.15", true),
    (Fmt::Go116, "go1.17.13", true),
    (Fmt::Go118, "go1.19.13", true),
    (Fmt::Go120, "go1.25.5", true),
    (Fmt::Go120, "go1.27.3", false),
];

fn build_elf(fmt: Fmt, version: &str, header_text: bool, sections: bool) -> Vec<u8> {
    synth::sample_elf(fmt, version, header_text, sections, 0x1000)
}

fn frames(bin: &GoBinary, pc: u64) -> Vec<(String, String, u32, bool)> {
    bin.symbolize(pc)
        .unwrap()
        .into_iter()
        .map(|f| (f.function, f.file, f.line, f.inlined))
        .collect()
}

fn fr(function: &str, file: &str, line: u32, inlined: bool) -> (String, String, u32, bool) {
    (function.into(), file.into(), line, inlined)
}

fn check(fmt: Fmt, version: &str, header_text: bool, sections: bool) {
    let what = format!("{fmt:?} {version} header_text={header_text} sections={sections}");
    let elf = build_elf(fmt, version, header_text, sections);
    let bin = GoBinary::parse(elf.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(bin.go_version(), Some(version), "{what}");
    assert_eq!(
        bin.go_build_id(),
        Some("synthAction/synthContent"),
        "{what}"
    );
    let bi = bin.build_info().unwrap();
    assert_eq!(bi.path, "example.com/synth");
    assert_eq!(bi.main.as_ref().unwrap().version, "(devel)");
    assert_eq!(bi.setting("-ldflags"), Some("-s -w"), "{what}");
    assert_eq!(
        bin.pclntab_found(),
        if sections {
            Found::Section
        } else {
            Found::MagicScan
        },
        "{what}"
    );
    let expected_ts = match (fmt, header_text) {
        (Fmt::Go12 | Fmt::Go116, _) => TextStart::NotNeeded,
        _ => TextStart::ModuleData,
    };
    assert_eq!(bin.text_start_source(), expected_ts, "{what}");
    let funcs: Vec<_> = bin.functions().map(|f| (f.name, f.entry, f.end)).collect();
    assert_eq!(
        funcs,
        vec![
            ("runtime.futex".to_string(), TEXT, TEXT + 0x20),
            ("main.caller".to_string(), TEXT + 0x20, TEXT + 0x60),
            ("main.main".to_string(), TEXT + 0x60, TEXT + 0x90),
        ],
        "{what}"
    );
    assert_eq!(bin.function("runtime.futex.abi0").unwrap().entry, TEXT);
    assert_eq!(
        bin.file_offset(TEXT).map(|o| elf[o as usize]),
        Some(0xcc),
        "{what}"
    );
    // Plain function: two line runs.
    assert_eq!(
        frames(&bin, TEXT + 0x0f),
        vec![fr("runtime.futex", "/src/b/b.go", 10, false)]
    );
    assert_eq!(
        frames(&bin, TEXT + 0x10),
        vec![fr("runtime.futex", "/src/b/b.go", 11, false)]
    );
    assert_eq!(
        frames(&bin, TEXT + 0x60),
        vec![fr("main.main", "/src/a.go", 40, false)]
    );
    let caller = TEXT + 0x20;
    assert_eq!(
        frames(&bin, caller + 0x04),
        vec![fr("main.caller", "/src/a.go", 20, false)]
    );
    assert_eq!(
        frames(&bin, caller + 0x38),
        vec![fr("main.caller", "/src/a.go", 22, false)]
    );
    // Go 1.2-format inline trees are read only when the version says 1.12+ (it does here).
    assert_eq!(
        frames(&bin, caller + 0x18),
        vec![
            fr("main.mid", "/src/a.go", 7, true),
            fr("main.caller", "/src/a.go", 20, false)
        ],
        "{what}"
    );
    assert_eq!(
        frames(&bin, caller + 0x28),
        vec![
            fr("main.leaf", "/src/a.go", 3, true),
            fr("main.mid", "/src/a.go", 7, true),
            fr("main.caller", "/src/a.go", 20, false),
        ],
        "{what}"
    );
    assert!(bin.symbolize(TEXT - 1).is_none());
    assert!(bin.symbolize(TEXT + 0x90).is_none());
    let id = identify(&elf).unwrap();
    assert_eq!(id.go_version.as_deref(), Some(version));
}

#[test]
fn every_format_with_section_headers() {
    for (fmt, version, header_text) in CASES {
        check(fmt, version, header_text, true);
    }
}

#[test]
fn every_format_without_section_headers() {
    for (fmt, version, header_text) in CASES {
        check(fmt, version, header_text, false);
    }
}

#[test]
fn old_go12_inline_tree_is_not_trusted_without_a_version() {
    // Go 1.9-1.11 wrote a different inline tree under the same magic: with build info saying
    // go1.11, only the real function is reported.
    let elf = build_elf(Fmt::Go12, "go1.11.13", true, true);
    let bin = GoBinary::parse(elf).unwrap();
    let caller = TEXT + 0x20;
    assert_eq!(
        frames(&bin, caller + 0x28),
        vec![fr("main.caller", "/src/a.go", 3, false)]
    );
}
