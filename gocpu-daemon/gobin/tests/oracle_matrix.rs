//! The fixture built with every test toolchain in every variant, checked against Go's own
//! tools on the same binaries: function table vs `go tool nm`, file:line vs
//! `go tool addr2line`, build info vs `go version -m`, Go build ID vs `go tool buildid`, GNU
//! build ID vs `readelf -n`, code bytes at file offsets vs `go tool objdump`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]
mod common;

use std::{collections::BTreeSet, path::Path};

use common::*;
use gocpu_gobin::{GoBinary, Unavailable, identify};
use gocpu_testkit::{GoToolchain, Variant};

const SAMPLES: usize = 400;

fn check_functions(tc: &GoToolchain, bin: &GoBinary, path: &Path, nm_of: &Path) {
    // The linker writes `·` as `.` in .symtab names; .gopclntab keeps `·`.
    let ours: BTreeSet<(u64, String)> = bin
        .functions()
        .map(|f| (f.entry, f.name.replace('\u{b7}', ".")))
        .collect();
    assert_eq!(ours.len(), bin.function_count(), "duplicate functions");
    let theirs = nm_functions(tc, nm_of);
    let missing: Vec<_> = theirs.difference(&ours).take(10).collect();
    let extra: Vec<_> = ours.difference(&theirs).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{}: go tool nm has {} functions, we have {}; only in nm: {missing:?}; only ours: {extra:?}",
        path.display(),
        theirs.len(),
        ours.len()
    );
    // Ends are the next entry: contiguous and increasing.
    let funcs: Vec<_> = bin.functions().collect();
    for w in funcs.windows(2) {
        assert_eq!(
            w[0].end,
            w[1].entry,
            "{}: gap after {}",
            path.display(),
            w[0].name
        );
    }
}

fn check_lines(tc: &GoToolchain, bin: &GoBinary, path: &Path) {
    let pcs = sample_pcs(bin, SAMPLES);
    let oracle = addr2line(tc, path, &pcs);
    let (mut inlined, mut no_table) = (0, 0);
    for (pc, (func, file, line)) in pcs.iter().zip(&oracle) {
        let frames = bin
            .symbolize(*pc)
            .unwrap_or_else(|| panic!("no frames at {pc:#x}"));
        let outer = frames.last().unwrap();
        let inner = frames.first().unwrap();
        inlined += usize::from(frames.len() > 1);
        // addr2line names the real (outermost) function but gives the innermost position.
        assert_eq!(
            &outer.function,
            func,
            "{}: function at {pc:#x}",
            path.display()
        );
        // A function without a line table (pcln offset 0, e.g. go:textfipsstart): the runtime
        // knows no position; debug/gosym decodes from the table's start anyway.
        if inner.file.is_empty() && !file.is_empty() {
            no_table += 1;
            continue;
        }
        // No line table entry (padding after the last instruction): addr2line says ":-1".
        let ours = if inner.file.is_empty() {
            ("", -1)
        } else {
            (inner.file.as_str(), i64::from(inner.line))
        };
        assert_eq!(
            ours,
            (file.as_str(), *line),
            "{}: file:line at {pc:#x} ({:?})",
            path.display(),
            show(&frames)
        );
    }
    assert!(
        no_table * 50 < SAMPLES,
        "{}: {no_table} PCs without line table",
        path.display()
    );
    println!(
        "{}: {SAMPLES} PCs match addr2line ({inlined} with inline frames, {no_table} in functions \
         without a line table)",
        path.display()
    );
}

fn check_build_info(tc: &GoToolchain, bin: &GoBinary, path: &Path) {
    let (version, lines) = version_m(tc, path);
    assert_eq!(bin.go_version(), Some(version.as_str()));
    assert_eq!(format!("go{}", tc.version), version);
    let bi = bin.build_info().unwrap();
    let mut settings = Vec::new();
    for l in &lines {
        match l.first().map(String::as_str) {
            Some("path") => assert_eq!(bi.path, l[1]),
            Some("mod") => {
                let m = bi.main.as_ref().unwrap();
                assert_eq!((&m.path, &m.version), (&l[1], &l[2]));
                assert_eq!(m.sum, l.get(3).cloned().unwrap_or_default());
            }
            Some("build") => {
                let (k, v) = l[1].split_once('=').unwrap();
                settings.push((unquote_simple(k), unquote_simple(v)));
            }
            other => panic!("unexpected go version -m line {other:?}"),
        }
    }
    assert_eq!(bi.settings, settings, "{}", path.display());
    assert!(bi.setting("CGO_ENABLED").is_some() && bi.setting("GOARCH").is_some());
    // identify() sees the same, from headers and build info only.
    let file = std::fs::File::open(path).unwrap();
    let id = identify(&file).unwrap();
    assert_eq!(id.go_version.as_deref(), Some(version.as_str()));
    assert_eq!(id.build_info.as_ref(), Some(bi));
    assert_eq!(id.is_pie, bin.is_pie());
}

fn check_build_ids(tc: &GoToolchain, bin: &GoBinary, path: &Path) {
    let go_id = tc.tool("buildid", &[path.to_str().unwrap()]);
    assert_eq!(bin.go_build_id(), Some(go_id.trim()), "{}", path.display());
    let notes = run(std::process::Command::new("readelf").arg("-n").arg(path));
    let gnu = notes
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .map(str::to_string);
    assert_eq!(bin.gnu_build_id(), gnu, "{}", path.display());
}

fn check_code_bytes(tc: &GoToolchain, bin: &GoBinary, path: &Path, objdump_of: &Path) {
    let file = std::fs::read(path).unwrap();
    for name in [
        "runtime.mcall",
        "runtime.futex",
        "runtime.usleep",
        "main.driveChain",
    ] {
        let f = bin
            .function(name)
            .unwrap_or_else(|| panic!("{name} not found"));
        let (addr, code) = objdump_bytes(tc, objdump_of, name, 16);
        assert_eq!(addr, f.entry, "{name} entry vs objdump");
        let off = bin.file_offset(f.entry).unwrap() as usize;
        assert_eq!(
            &file[off..off + code.len()],
            &code[..],
            "{name}: file bytes at file_offset"
        );
        let mut buf = vec![0u8; code.len()];
        bin.read_vaddr(f.entry, &mut buf).unwrap();
        assert_eq!(buf, code, "{name}: read_vaddr");
    }
}

fn check_data_symbols(tc: &GoToolchain, bin: &GoBinary, path: &Path, variant: Variant) {
    if variant == Variant::Stripped {
        // -s -w changes the build settings string, so data addresses differ from the
        // unstripped build's: the strip(1) copy below has an oracle; here only plausibility.
        let md = bin.moduledata().unwrap();
        for name in ["runtime.allglen", "runtime.allgs"] {
            assert!(md.holds_data(bin.data_symbol(name).unwrap()), "{name}");
        }
        assert_eq!(bin.data_symbol("runtime.sched"), Err(Unavailable::Stripped));
        return;
    }
    let syms = nm(tc, path);
    let addr_of = |name: &str| syms.iter().find(|s| s.name == name).unwrap().addr;
    for name in ["runtime.allglen", "runtime.allgs", "runtime.sched"] {
        assert_eq!(
            bin.data_symbol(name),
            Ok(addr_of(name)),
            "{name} in {}",
            path.display()
        );
        assert!(bin.moduledata().unwrap().holds_data(addr_of(name)));
    }
    assert!(matches!(
        bin.data_symbol("runtime.noSuchVariable"),
        Err(Unavailable::NotFound(_))
    ));
    // strip(1) removes .symtab without moving anything (what distributions do): the code
    // anchor must then find the addresses nm gave for the unstripped file.
    let stripped = std::path::PathBuf::from(format!("{}.strip1", path.display()));
    run(std::process::Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&stripped)
        .arg(path));
    let s = GoBinary::open(&stripped).unwrap();
    assert!(s.stripped());
    for name in ["runtime.allglen", "runtime.allgs"] {
        assert_eq!(
            s.data_symbol(name),
            Ok(addr_of(name)),
            "{name} after strip(1)"
        );
        assert_eq!(
            bin.data_symbol_from_code(name),
            Ok(addr_of(name)),
            "{name} from code"
        );
    }
    assert_eq!(s.data_symbol("runtime.sched"), Err(Unavailable::Stripped));
    std::fs::remove_file(&stripped).unwrap();
}

fn check_variant(tc: &GoToolchain, variant: Variant) -> GoBinary {
    let path = fixture(tc, variant);
    let bin = GoBinary::open(&path).unwrap();
    // The stripped variant has no symbols for nm/objdump: its unstripped twin is the oracle.
    let symbols_of = if variant == Variant::Stripped {
        fixture(tc, Variant::Default)
    } else {
        path.clone()
    };
    assert_eq!(
        bin.stripped(),
        variant == Variant::Stripped,
        "{}",
        path.display()
    );
    assert_eq!(
        bin.has_dwarf(),
        variant != Variant::Stripped,
        "{}",
        path.display()
    );
    assert_eq!(bin.is_pie(), variant == Variant::Pie, "{}", path.display());
    // The variant is what it claims: Go's linker starts .text with runtime.text, an external
    // linker puts C start-up code first.
    let dot_text = bin.elf().section(".text").unwrap().addr;
    assert_eq!(
        dot_text == bin.text_start(),
        variant != Variant::CgoExternal,
        "{}: .text at {dot_text:#x}, runtime.text at {:#x}",
        path.display(),
        bin.text_start()
    );
    check_functions(tc, &bin, &path, &symbols_of);
    // Go 1.19's objfile does not look for .data.rel.ro.gopclntab, so its addr2line knows no
    // function of a 1.19 PIE; a newer addr2line reads the same table correctly.
    let a2l = if variant == Variant::Pie && tc.minor() < 20 {
        toolchain("1.27")
    } else {
        tc.clone()
    };
    check_lines(&a2l, &bin, &path);
    check_build_info(tc, &bin, &path);
    check_build_ids(tc, &bin, &path);
    check_code_bytes(tc, &bin, &path, &symbols_of);
    for name in ["runtime.futex", "runtime.usleep", "runtime.mcall"] {
        assert!(bin.function(name).is_some(), "{name} in {}", path.display());
    }
    check_data_symbols(tc, &bin, &path, variant);
    bin
}

fn check_toolchain(series: &str) {
    let tc = toolchain(series);
    let mut tables = Vec::new();
    for variant in Variant::ALL {
        let bin = check_variant(&tc, variant);
        tables.push((variant, bin.functions().collect::<Vec<_>>()));
    }
    // -s -w drops symbols and DWARF only: the stripped twin has the same function table.
    let default = &tables
        .iter()
        .find(|(v, _)| *v == Variant::Default)
        .unwrap()
        .1;
    let stripped = &tables
        .iter()
        .find(|(v, _)| *v == Variant::Stripped)
        .unwrap()
        .1;
    assert_eq!(default, stripped, "go{}: stripped twin differs", tc.version);
}

gocpu_testkit::test_per_series!(check_toolchain);

/// The other installed series, in the variants where their formats differ most (1.26 stopped
/// writing the text start into the pclntab header).
#[test]
fn other_series_default_and_pie() {
    for series in ["1.22", "1.24", "1.26"] {
        let tc = toolchain(series);
        for variant in [Variant::Default, Variant::Pie] {
            let bin = check_variant(&tc, variant);
            if tc.minor() >= 26 {
                assert_eq!(bin.text_start_source(), gocpu_gobin::TextStart::ModuleData);
            }
        }
    }
}

/// cgo PIE linked by gcc, stripped: `.text` starts with C code before `runtime.text`, and Go
/// 1.26+ writes no text start into the pclntab header, so only moduledata gives the base of
/// the entry offsets. Checked against nm of the unstripped build and addr2line.
#[test]
fn external_pie_stripped_takes_text_start_from_moduledata() {
    let dir = testdata().join("fixture");
    for series in ["1.26", "1.27"] {
        let tc = toolchain(series);
        let full = gocpu_testkit::build_with(&tc, &dir, Variant::CgoExternal, &["-buildmode=pie"]);
        let stripped = gocpu_testkit::build_with(
            &tc,
            &dir,
            Variant::CgoExternal,
            &["-buildmode=pie", "-ldflags=-linkmode=external -s -w"],
        );
        let bin = GoBinary::open(&stripped).unwrap();
        assert!(bin.is_pie() && bin.stripped());
        assert_eq!(bin.text_start_source(), gocpu_gobin::TextStart::ModuleData);
        let syms = nm(&tc, &full);
        let text = syms.iter().find(|s| s.name == "runtime.text").unwrap().addr;
        assert_eq!(bin.text_start(), text);
        let dot_text = bin.elf().section(".text").unwrap().addr;
        assert_ne!(
            dot_text, text,
            "the .text section starts elsewhere (C code first)"
        );
        check_functions(&tc, &bin, &stripped, &full);
        check_lines(&tc, &GoBinary::open(&full).unwrap(), &full);
        let unstripped = GoBinary::open(&full).unwrap();
        for pc in sample_pcs(&bin, 300) {
            assert_eq!(bin.symbolize(pc), unstripped.symbolize(pc), "{pc:#x}");
        }
    }
}
