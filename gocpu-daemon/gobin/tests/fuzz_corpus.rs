//! The fuzz corpora as regression tests: every committed seed (fuzz/corpus/<target>/) and
//! every input that once crashed a target (fuzz/regressions/<target>/) runs through its
//! target's entry point here, on every `cargo test`. `write_fuzz_seeds` (ignored; run by
//! `cargo xtask fuzz seeds`) regenerates the synthetic seeds.
#![allow(clippy::unwrap_used, clippy::print_stdout)]
mod common;

use std::path::{Path, PathBuf};

use common::synth::{self, Fmt};
use gocpu_gobin::fuzzing;
use gocpu_testkit::workspace_root;

fn fuzz_dir() -> PathBuf {
    workspace_root().join("gocpu-daemon/gobin/fuzz")
}

/// A fuzz target's entry point.
type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("elf_file", fuzzing::elf_file),
    ("build_info", fuzzing::build_info),
    ("pclntab", fuzzing::pclntab),
    ("inline_tree", fuzzing::inline_tree),
];

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn corpus_and_regressions_do_not_panic() {
    let mut total = 0;
    for (name, run) in TARGETS {
        let seeds = files(&fuzz_dir().join("corpus").join(name));
        assert!(
            !seeds.is_empty(),
            "no seed corpus for {name}: run `cargo xtask fuzz seeds`"
        );
        for dir in ["corpus", "regressions"] {
            for f in files(&fuzz_dir().join(dir).join(name)) {
                run(&std::fs::read(&f).unwrap());
                total += 1;
            }
        }
    }
    println!("{total} corpus and regression inputs ran without panicking");
}

const FORMATS: [(Fmt, &str, bool); 5] = [
    (Fmt::Go12, "go1.15.15", true),
    (Fmt::Go116, "go1.17.13", true),
    (Fmt::Go118, "go1.19.13", true),
    (Fmt::Go120, "go1.25.5", true),
    (Fmt::Go120, "go1.27.3", false),
];

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = fuzz_dir().join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
#[ignore = "writes the fuzz seed corpora; run by `cargo xtask fuzz seeds`"]
fn write_fuzz_seeds() {
    for (fmt, version, header_text) in FORMATS {
        let tag = format!(
            "{fmt:?}-{version}-{}",
            if header_text { "ts" } else { "nots" }
        );
        let mut t = synth::sample_table(fmt);
        t.header_text = header_text;
        let w = synth::write(&t, synth::PCLNTAB, synth::FUNCDATA);
        write("pclntab", &tag, &w.pclntab);
        // inline_tree input: pclntab length, pclntab, then the funcdata region; absolute
        // funcdata pointers (before 1.18) resolve against base 0x500000.
        let w_abs = synth::write(&t, synth::PCLNTAB, 0x50_0000);
        let mut inl = (w_abs.pclntab.len() as u32).to_le_bytes().to_vec();
        inl.extend(&w_abs.pclntab);
        inl.extend(&w_abs.funcdata);
        write("inline_tree", &tag, &inl);
        for sections in [true, false] {
            let elf = synth::sample_elf(fmt, version, header_text, sections, 16);
            let name = format!("{tag}-{}", if sections { "sections" } else { "nosections" });
            write("elf_file", &name, &elf);
        }
    }
    let modinfo = "path\texample.com/x\nmod\texample.com/x\t(devel)\t\ndep\tgolang.org/x/sys\tv0.1.0\th1:abc=\n=>\t../sys\t(devel)\t\nbuild\t-ldflags=\"-s -w\"\nbuild\t\"we=ird\"=`raw`\nbuild\tCGO_ENABLED=1\n";
    write(
        "build_info",
        "inline",
        &synth::buildinfo_inline("go1.25.5", modinfo),
    );
    // The flat fuzzing view maps the input at 0x10000.
    write(
        "build_info",
        "pointers",
        &synth::buildinfo_pointers(0x10000, "go1.17", modinfo),
    );
    write("build_info", "modinfo-text", modinfo.as_bytes());
    // Real .go.buildinfo sections (about 1 KB each) of the oldest and newest test toolchains;
    // without VCS stamps, so regenerating gives the same bytes.
    for series in ["1.19", "1.27"] {
        let path = gocpu_testkit::build_with(
            &common::toolchain(series),
            &common::testdata().join("fixture"),
            gocpu_testkit::Variant::Default,
            &["-buildvcs=false"],
        );
        let bin = gocpu_gobin::GoBinary::open(&path).unwrap();
        let s = bin.elf().section(".go.buildinfo").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let blob = &bytes[s.offset as usize..(s.offset + s.size) as usize];
        write("build_info", &format!("real-go{series}"), blob);
    }
}
