//! The facade's bridges to the probe-site decoder and the struct-offset sources, on real
//! fixtures: RET sites of runtime functions equal the RETs `go tool objdump` lists, the same in
//! the stripped twin; struct offsets come from DWARF when present and the generated table agrees
//! with that DWARF for the stripped twin.
#![allow(clippy::unwrap_used, clippy::print_stdout)]
mod common;

use common::*;
use gocpu_gobin::{GoBinary, offsets::OffsetsSource};
use gocpu_testkit::Variant;

fn objdump_rets(tc: &gocpu_testkit::GoToolchain, bin: &std::path::Path, func: &str) -> Vec<u64> {
    let pat = format!("^{}(\\.abi0)?$", func.replace('.', "\\."));
    tc.tool("objdump", &["-s", &pat, bin.to_str().unwrap()])
        .lines()
        .filter(|l| l.trim_end().ends_with("RET") || l.contains("\tRET"))
        .filter_map(|l| {
            let addr = l.split('\t').find(|c| c.trim().starts_with("0x"))?;
            u64::from_str_radix(addr.trim().trim_start_matches("0x"), 16).ok()
        })
        .collect()
}

#[test]
fn ret_sites_match_objdump_in_default_and_stripped() {
    for series in ["1.19", "1.25", "1.27"] {
        let tc = toolchain(series);
        let path = fixture(&tc, Variant::Default);
        let bin = GoBinary::open(&path).unwrap();
        let stripped = GoBinary::open(&fixture(&tc, Variant::Stripped)).unwrap();
        for name in [
            "runtime.futex",
            "runtime.usleep",
            "main.driveChain",
            "runtime.findRunnable",
            "runtime.findrunnable",
        ] {
            let Some(_) = bin.function(name) else {
                continue; // findRunnable was findrunnable before Go 1.21
            };
            let sites = bin.probe_sites(name).unwrap();
            let rets = objdump_rets(&tc, &path, name);
            assert!(!rets.is_empty(), "{name}: objdump shows no RET");
            assert_eq!(sites.rets, rets, "go{} {name}", tc.version);
            assert_eq!(
                stripped.probe_sites(name).unwrap(),
                sites,
                "{name} stripped"
            );
        }
        assert!(bin.probe_sites("main.noSuchFunction").is_err());
    }
}

#[test]
fn struct_offsets_from_dwarf_and_table_agree() {
    for series in ["1.19", "1.21", "1.23", "1.25", "1.27"] {
        let tc = toolchain(series);
        let bin = GoBinary::open(&fixture(&tc, Variant::Default)).unwrap();
        let (from_dwarf, source) = bin.struct_offsets().unwrap();
        assert_eq!(source, OffsetsSource::Dwarf);
        let stripped = GoBinary::open(&fixture(&tc, Variant::Stripped)).unwrap();
        match stripped.struct_offsets() {
            Ok((from_table, OffsetsSource::Table { .. })) => {
                assert_eq!(from_table, from_dwarf, "go{}: table vs DWARF", tc.version)
            }
            Ok((_, other)) => panic!("stripped binary gave offsets from {other:?}"),
            Err(e) => panic!("go{}: {e}", tc.version),
        }
    }
}
