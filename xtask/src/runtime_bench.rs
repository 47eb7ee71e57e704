//! `cargo xtask bench-runtime`: how long reading a Go process's runtime state from outside takes
//! with many goroutines; writes the figures into BENCHMARKS.md ("runtime state" section).
//!
//! ```text
//! cargo xtask bench-runtime [--goroutines N] [--repeats R] [--no-write]
//! ```
//! Runs `workloads/goroutineleak` (Go 1.25, stripped: table offsets and code anchors, as in
//! production) until it holds N leaked goroutines (default 100,000), then runs the
//! `runtime_state` example of gocpu-daemon against it R times (default 30) and reports the
//! census's min / median / max wall time, plus one scheduler and one M-list read. The census
//! must count exactly the program's own `runtime.NumGoroutine()`, or the run fails.
use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use gocpu_testkit::{Variant, build, go_bin_series, process::KillOnDrop, workload};

use crate::tools::{output, record_benchmark, workspace_root};

fn build_example() -> Result<PathBuf> {
    let out = output(Command::new("cargo").current_dir(workspace_root()).args([
        "build",
        "--release",
        "-p",
        "gocpu-daemon",
        "--example",
        "runtime_state",
        "--message-format=json",
    ]))?;
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "runtime_state")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo did not report the runtime_state executable")
}

/// Runs the example on `pid` and returns its `BENCH` line.
fn measure(example: &PathBuf, pid: u32, repeats: usize) -> Result<serde_json::Value> {
    let out = output(
        Command::new(example)
            .arg(pid.to_string())
            .arg(repeats.to_string()),
    )?;
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .context("runtime_state printed no BENCH line")?;
    Ok(serde_json::from_str(line)?)
}

/// Entry point of this task.
pub fn run(args: &[String]) -> Result<()> {
    let (mut goroutines, mut repeats, mut write) = (100_000u64, 30usize, true);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--goroutines" => goroutines = it.next().context("--goroutines N")?.parse()?,
            "--repeats" => repeats = it.next().context("--repeats R")?.parse()?,
            "--no-write" => write = false,
            other => bail!("unknown argument {other:?}"),
        }
    }
    let example = build_example()?;
    let tc = go_bin_series("1.25");
    let bin = build(&tc, &workload("goroutineleak"), Variant::Stripped);
    let child = KillOnDrop(
        Command::new(&bin)
            .args(["-rate", "100000", "-max", &goroutines.to_string()])
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let pid = child.pid();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let b = measure(&example, pid, 1)?;
        if b["user_goroutines"].as_u64().unwrap_or(0) >= goroutines + 2 {
            break;
        }
        if Instant::now() > deadline {
            bail!("goroutineleak did not reach {goroutines} goroutines: {b}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let b = measure(&example, pid, repeats)?;
    child.signal(libc::SIGTERM);
    let (out, _) = child.wait_output(Duration::from_secs(60));
    let truth: serde_json::Value = serde_json::from_str(out.trim())?;
    if truth["goroutines"] != b["user_goroutines"] {
        bail!(
            "census {} != NumGoroutine {}",
            b["user_goroutines"],
            truth["goroutines"]
        );
    }
    let f = |k: &str| b[k].as_f64().unwrap_or(f64::NAN);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let body = format!(
        "`goroutineleak` built with go{} (stripped), {} gs in `runtime.allgs` (`runtime.NumGoroutine()` = {}, \
         census agrees); `runtime_state` example, release build, {} reads; load average at the \
         end: {}.\n\n\
         | read | time |\n|---|---|\n\
         | census, min | {:.1} ms |\n| census, median | {:.1} ms |\n| census, max | {:.1} ms |\n\
         | scheduler gauges (sched + gomaxprocs + allp) | {:.0} µs |\n| M list ({} Ms) | {:.0} µs |\n",
        tc.version,
        b["allglen"],
        truth["goroutines"],
        repeats,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        f("census_ms_min"),
        f("census_ms_median"),
        f("census_ms_max"),
        f("sched_us"),
        b["ms"],
        f("ms_us"),
    );
    println!("{body}");
    if write {
        record_benchmark("runtime state", &body)?;
    }
    Ok(())
}
