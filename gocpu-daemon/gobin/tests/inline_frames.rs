//! Inline frames against DWARF: for every PC of the fixture's inlining drivers and a sample
//! across the binary, the chain of inlined calls (names innermost first, and the call site of
//! each in its caller) must equal what Go's debug/dwarf reads from DW_TAG_inlined_subroutine
//! (tests/testdata/oracle). The stripped twin, which has no DWARF, is checked against the
//! DWARF of its unstripped build (same code addresses).
#![allow(clippy::unwrap_used, clippy::print_stdout)]
mod common;

use std::path::Path;

use common::*;
use gocpu_gobin::GoBinary;
use gocpu_testkit::Variant;

/// (names innermost first, call sites "file:line" of each inlined call) per PC, from DWARF.
fn dwarf_chains(dwarf_of: &Path, pcs: &[u64]) -> Vec<Option<(Vec<String>, Vec<String>)>> {
    let mut out = Vec::new();
    for chunk in pcs.chunks(2000) {
        let mut cmd = std::process::Command::new(oracle());
        cmd.arg("inline").arg(dwarf_of);
        cmd.args(chunk.iter().map(|pc| format!("{pc:x}")));
        for line in run(&mut cmd).lines() {
            let cols: Vec<&str> = line.split('\t').collect();
            let list = |s: &str| -> Vec<String> {
                s.split('|')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            out.push(match cols.as_slice() {
                ["I", _, "?"] => None,
                ["I", _, names, sites] => Some((list(names), list(sites))),
                _ => panic!("oracle line {line:?}"),
            });
        }
    }
    assert_eq!(out.len(), pcs.len());
    out
}

fn check(bin: &GoBinary, label: &str, dwarf_of: &Path, extra_sample: usize) -> usize {
    let mut pcs = Vec::new();
    for name in [
        "main.driveChain",
        "main.driveMethod",
        "main.driveGeneric",
        "main.main",
    ] {
        let f = bin
            .function(name)
            .unwrap_or_else(|| panic!("{label}: no {name}"));
        pcs.extend(f.entry..f.end);
    }
    pcs.extend(sample_pcs(bin, extra_sample));
    let chains = dwarf_chains(dwarf_of, &pcs);
    let (mut compared, mut deepest) = (0, 0);
    for (pc, chain) in pcs.iter().zip(chains) {
        let Some((names, sites)) = chain else {
            continue;
        };
        let frames = bin.symbolize(*pc).unwrap();
        // Past a function's last instruction (alignment padding) neither side has inlining.
        let ours: Vec<String> = frames.iter().map(|f| f.function.clone()).collect();
        assert_eq!(
            ours,
            names,
            "{label}: inline chain at {pc:#x}: {:?}",
            show(&frames)
        );
        let our_sites: Vec<String> = frames
            .iter()
            .skip(1)
            .map(|f| format!("{}:{}", f.file, f.line))
            .collect();
        assert_eq!(
            our_sites,
            sites,
            "{label}: call sites at {pc:#x}: {:?}",
            show(&frames)
        );
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(
                f.inlined,
                i + 1 < frames.len(),
                "{label}: inlined flag at {pc:#x}"
            );
        }
        compared += 1;
        deepest = deepest.max(frames.len());
    }
    // innermost <- middle <- outer <- driveChain must be seen somewhere.
    assert!(
        deepest >= 4,
        "{label}: deepest inline chain has {deepest} frames"
    );
    println!("{label}: {compared} PCs match DWARF inline chains (deepest {deepest})");
    compared
}

fn check_toolchain(series: &str) {
    let tc = toolchain(series);
    let default = fixture(&tc, Variant::Default);
    for variant in [Variant::Default, Variant::Pie, Variant::CgoExternal] {
        let path = fixture(&tc, variant);
        let bin = GoBinary::open(&path).unwrap();
        check(
            &bin,
            &format!("go{} {}", tc.version, variant.name()),
            &path,
            300,
        );
    }
    let stripped = GoBinary::open(&fixture(&tc, Variant::Stripped)).unwrap();
    assert!(!stripped.has_dwarf());
    check(
        &stripped,
        &format!("go{} stripped", tc.version),
        &default,
        300,
    );
}

gocpu_testkit::test_per_series!(check_toolchain);
