//! `cargo xtask fuzz`: gocpu-gobin's cargo-fuzz targets.
//!
//! ```text
//! cargo xtask fuzz [run] [--time SECS] [--jobs N] [TARGET...]   fuzz each target SECS (default 60)
//! cargo xtask fuzz seeds                                        regenerate the synthetic seeds
//! cargo xtask fuzz list                                         list the targets
//! ```
//! New corpus entries go to `fuzz/target/work/<target>` (not committed); the committed seeds
//! in `fuzz/corpus/<target>` are only read. Crashes are copied to `fuzz/regressions/<target>`,
//! which `cargo test -p gocpu-gobin --test fuzz_corpus` replays on every run.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail};

use crate::tools::{output, run as run_cmd, workspace_root};

/// The fuzz targets: every fuzz/fuzz_targets/<name>.rs, sorted.
fn all_targets() -> Result<Vec<String>> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    v.sort();
    Ok(v)
}
/// The nightly toolchain cargo-fuzz needs (sanitizers); see docs/measurements.md.
const NIGHTLY: &str = "+nightly";

fn gobin_dir() -> PathBuf {
    workspace_root().join("gocpu-daemon/gobin")
}

fn fuzz_dir() -> PathBuf {
    gobin_dir().join("fuzz")
}

/// Installs cargo-fuzz when `cargo fuzz` is missing.
fn ensure_cargo_fuzz() -> Result<()> {
    let ok = Command::new("cargo")
        .args([NIGHTLY, "fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("installing cargo-fuzz");
        run_cmd(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// Figures of one run, from libFuzzer's last status lines.
#[derive(Debug, Default)]
struct Figures {
    execs: u64,
    cov: u64,
    ft: u64,
    corpus: u64,
    secs: f64,
    crashes: usize,
}

fn field(line: &str, key: &str) -> Option<u64> {
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        if w == key {
            let v = it.next()?;
            let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
            return digits.parse().ok();
        }
    }
    None
}

fn parse_log(log: &str, f: &mut Figures) {
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix('#')
            && let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok())
        {
            f.execs = f.execs.max(n);
            if let Some(c) = field(line, "cov:") {
                f.cov = f.cov.max(c);
            }
            if let Some(c) = field(line, "ft:") {
                f.ft = f.ft.max(c);
            }
            if let Some(c) = field(line, "corp:") {
                f.corpus = c;
            }
        }
        if let Some(rest) = line.strip_prefix("Done ") {
            f.execs = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(f.execs);
        }
    }
}

/// Copies crash/timeout/oom artifacts of `target` into fuzz/regressions/<target>.
fn collect_crashes(target: &str) -> Result<usize> {
    let artifacts = fuzz_dir().join("artifacts").join(target);
    let dest = fuzz_dir().join("regressions").join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&artifacts)
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if ["crash-", "oom-", "timeout-", "leak-", "slow-unit-"]
            .iter()
            .any(|k| name.starts_with(k))
        {
            std::fs::create_dir_all(&dest)?;
            std::fs::copy(&p, dest.join(&name))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Where `cargo fuzz build` puts a target's binary.
fn binary(target: &str) -> Result<PathBuf> {
    let host = output(Command::new("rustc").args([NIGHTLY, "-vV"]))?;
    let triple = host
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .context("rustc -vV prints no host")?;
    Ok(fuzz_dir()
        .join("target")
        .join(triple)
        .join("release")
        .join(target))
}

fn fuzz_one(target: &str, secs: u64, jobs: u32) -> Result<Figures> {
    let work = fuzz_dir().join("target").join("work").join(target);
    std::fs::create_dir_all(&work)?;
    let seeds = fuzz_dir().join("corpus").join(target);
    let log_path = fuzz_dir().join("target").join(format!("{target}.log"));
    let log = std::fs::File::create(&log_path)?;
    let start = Instant::now();
    // The binary `cargo fuzz build` made, run directly: no rebuild between targets.
    let mut cmd = Command::new(binary(target)?);
    cmd.current_dir(gobin_dir())
        .arg(&work)
        .arg(&seeds)
        .arg(format!("-max_total_time={secs}"))
        .arg("-rss_limit_mb=2048")
        .arg("-timeout=10")
        .arg("-print_final_stats=1");
    // With -jobs libFuzzer forks workers that log to fuzz-<n>.log instead of stderr.
    if jobs > 1 {
        cmd.arg(format!("-jobs={jobs}"))
            .arg(format!("-workers={jobs}"));
    }
    let artifacts = fuzz_dir().join("artifacts").join(target);
    std::fs::create_dir_all(&artifacts)?;
    cmd.arg(format!("-artifact_prefix={}/", artifacts.display()));
    let status = cmd
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("cannot run the {target} fuzzer"))?;
    let mut f = Figures {
        secs: start.elapsed().as_secs_f64(),
        ..Figures::default()
    };
    let mut text = std::fs::read_to_string(&log_path).unwrap_or_default();
    // With -jobs, libFuzzer writes each job's output to fuzz-<n>.log in the working directory.
    for j in (0..jobs).filter(|_| jobs > 1) {
        let p = gobin_dir().join(format!("fuzz-{j}.log"));
        if let Ok(t) = std::fs::read_to_string(&p) {
            text.push_str(&t);
            let _ = std::fs::remove_file(p);
        }
    }
    parse_log(&text, &mut f);
    f.crashes = collect_crashes(target)?;
    if !status.success() && f.crashes == 0 {
        bail!("cargo fuzz run {target} failed; see {}", log_path.display());
    }
    Ok(f)
}

fn seeds() -> Result<()> {
    run_cmd(Command::new("cargo").current_dir(workspace_root()).args([
        "test",
        "-p",
        "gocpu-gobin",
        "--test",
        "fuzz_corpus",
        "--",
        "--ignored",
        "write_fuzz_seeds",
    ]))
}

/// Entry point of this task.
pub fn run(args: &[String]) -> Result<()> {
    let mut secs = 60u64;
    let mut jobs = 1u32;
    let known = all_targets()?;
    let mut targets: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "run" => {}
            "seeds" => return seeds(),
            "list" => {
                for t in &known {
                    println!("{t}");
                }
                return Ok(());
            }
            "--time" => secs = it.next().context("--time SECS")?.parse()?,
            "--jobs" => jobs = it.next().context("--jobs N")?.parse()?,
            t if known.iter().any(|k| k == t) => targets.push(t.to_string()),
            other => bail!("unknown argument {other:?}; targets: {}", known.join(", ")),
        }
    }
    if targets.is_empty() {
        targets = known;
    }
    ensure_cargo_fuzz()?;
    let version = output(Command::new("cargo").args([NIGHTLY, "fuzz", "--version"]))?;
    let mut build = Command::new("cargo");
    build
        .current_dir(gobin_dir())
        .args([NIGHTLY, "fuzz", "build", "-O"])
        // All targets at once (cargo fuzz build takes at most one name).
        // cargo-fuzz builds into fuzz/target; a CARGO_TARGET_DIR from the caller would move it.
        .env_remove("CARGO_TARGET_DIR");
    run_cmd(&mut build)?;
    println!("{} ; {secs} s per target, {jobs} job(s)", version.trim());
    let mut rows = Vec::new();
    for t in &targets {
        println!("fuzzing {t} for {secs} s ...");
        let f = fuzz_one(t, secs, jobs)?;
        println!(
            "{t}: {} execs in {:.0} s ({:.0}/s), cov {}, ft {}, corpus {}, crashes {}",
            f.execs,
            f.secs,
            f.execs as f64 / f.secs.max(1.0),
            f.cov,
            f.ft,
            f.corpus,
            f.crashes
        );
        rows.push((t.clone(), f));
    }
    let crashed: Vec<_> = rows.iter().filter(|(_, f)| f.crashes > 0).collect();
    if !crashed.is_empty() {
        bail!(
            "crashes copied to {}: turn each into a fix; `cargo test -p gocpu-gobin --test fuzz_corpus` replays them",
            Path::new("gocpu-daemon/gobin/fuzz/regressions").display()
        );
    }
    Ok(())
}
