//! The committed status / wait-reason name table against its generator, and against the strings
//! the compiled runtime itself holds.
//!
//! 1. Regenerating from the installed toolchains' runtime sources must give the committed text
//!    (every installed toolchain's row verbatim; the whole file when the sets agree).
//! 2. Independent oracle for the source parser: a binary built with each toolchain carries
//!    `runtime.waitReasonStrings` and `runtime.gStatusStrings` as data. Read through `.symtab`
//!    (address and size) and the string headers they hold, they must equal the table's row.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support_sites;

use gocpu_gobin::offsets::{
    names::{
        for_version,
        source::{NamesRow, parse_sources, render_row, render_table},
        table,
    },
    parse_release,
};
use gocpu_testkit::{Variant, build, toolchains};
use object::{Object, ObjectSymbol};
use support_sites::{assert_regenerated, early_patch_toolchains, testdata, vaddr_bytes};

const COMMITTED: &str = include_str!("../src/offsets/names/table.rs");

#[test]
fn table_matches_installed_runtime_sources() {
    let mut all = toolchains();
    all.extend(early_patch_toolchains());
    assert!(all.len() >= 5, "run `cargo xtask setup`");
    let mut rows = Vec::new();
    for tc in &all {
        let version = format!("go{}", tc.version);
        let r = parse_release(&version).unwrap();
        let src = tc.goroot().join("src/runtime");
        let read = |n: &str| std::fs::read_to_string(src.join(n)).unwrap();
        let names = parse_sources(&read("runtime2.go"), &read("traceback.go"))
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        let row = NamesRow {
            generated_from: version.clone(),
            release: (r.major, r.minor, r.patch),
            names,
        };
        assert!(
            COMMITTED.contains(&render_row(&row)),
            "{version}: its row differs from src/offsets/names/table.rs: run `cargo xtask runtime-names`"
        );
        assert_eq!(for_version(&version).unwrap().generated_from, version);
        rows.push(row);
    }
    rows.sort_by_key(|r| r.release);
    assert_regenerated(
        "names table",
        rows.iter().map(|r| r.release).collect(),
        table().iter().map(|r| r.release).collect(),
        || render_table(&rows),
        COMMITTED,
    );
}

/// The `[N]string` array named `symbol` in `elf`, decoded from its string headers.
fn string_array(elf: &[u8], symbol: &str) -> Vec<String> {
    let file = object::File::parse(elf).unwrap();
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok(symbol))
        .unwrap_or_else(|| panic!("no {symbol} in .symtab"));
    assert_eq!(sym.size() % 16, 0, "{symbol} is not a [N]string");
    let headers = vaddr_bytes(elf, sym.address(), sym.size()).unwrap();
    headers
        .chunks_exact(16)
        .map(|h| {
            let ptr = u64::from_le_bytes(h[..8].try_into().unwrap());
            let len = u64::from_le_bytes(h[8..].try_into().unwrap());
            if len == 0 {
                return String::new();
            }
            String::from_utf8(vaddr_bytes(elf, ptr, len).unwrap().to_vec()).unwrap()
        })
        .collect()
}

#[test]
fn table_matches_the_compiled_runtime_strings() {
    let mut all = toolchains();
    all.extend(early_patch_toolchains());
    for tc in &all {
        let version = format!("go{}", tc.version);
        let row = for_version(&version).unwrap();
        let bin = build(tc, &testdata("offsets-probe"), Variant::Default);
        let elf = std::fs::read(&bin).unwrap();
        let compiled = string_array(&elf, "runtime.waitReasonStrings");
        assert_eq!(
            compiled,
            row.wait_reasons.to_vec(),
            "{version}: waitReasonStrings in the binary differ from the table"
        );
        let status = string_array(&elf, "runtime.gStatusStrings");
        for (value, name) in status.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            let st = row.status(value as u32).unwrap();
            assert_eq!(st.name, name, "{version}: gStatusStrings[{value}]");
        }
        // Every named status the binary knows is in the table; the table adds the unnamed ones
        // (the *_unused constants) from the constant block.
        assert!(status.len() <= row.statuses.len(), "{version}");
        println!(
            "{version}: {} wait reasons, {} statuses agree with the binary",
            compiled.len(),
            status.iter().filter(|s| !s.is_empty()).count()
        );
    }
}

#[test]
fn unknown_versions_have_no_names() {
    let label = |v: &str| for_version(v).map(|_| ()).map_err(|e| e.label());
    assert_eq!(label("go1.99.0"), Err("unknown_series"));
    assert_eq!(label("go1.18.10"), Err("unknown_series"));
    assert_eq!(label("devel go1.27-abcdef"), Err("devel"));
    assert_eq!(label("go1.25.5 X:greenteagc"), Err("suffix"));
    assert_eq!(label(""), Err("malformed"));
    let newest = table().last().unwrap().release;
    let after = format!("go{}.{}.{}", newest.0, newest.1, newest.2 + 1);
    assert_eq!(label(&after), Err("unverified_patch"));
}
