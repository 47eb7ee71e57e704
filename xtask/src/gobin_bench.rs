//! `cargo xtask bench-gobin`: index a large real Go binary with gocpu-gobin and resolve 100k
//! PCs, next to `go tool addr2line` on the same PCs in the same run; writes the figures into
//! BENCHMARKS.md ("gobin" section).
//!
//! ```text
//! cargo xtask bench-gobin [--binary PATH]... [--pcs N] [--no-large] [--no-write]
//! ```
//! Without `--binary` it takes the largest toolchain binary installed (`compile` or `go` of
//! every toolchain) and, unless `--no-large`, `cmd/compile` built with `-race` (about 50 MB,
//! the issue's target size; built once into target/gobin-bench). Memory: exact heap bytes from a counting allocator in the measured
//! process, and each process's peak RSS from `wait4`.
use std::{
    collections::HashMap,
    fmt::Write as _,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use gocpu_testkit::{GoToolchain, toolchains};

use crate::tools::{output, workspace_root};

/// Waits for `child`, returning its exit code and peak RSS in KB (from `wait4`).
fn wait_rss(child: Child) -> Result<(i32, u64)> {
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own unwaited child; status and ru are valid for writes.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let code = std::process::ExitStatus::from_raw(status)
        .code()
        .unwrap_or(-1);
    Ok((code, ru.ru_maxrss as u64))
}

/// The largest `compile` or `go` binary among the installed toolchains, with its toolchain.
fn largest_toolchain_binary() -> Result<(PathBuf, GoToolchain)> {
    let mut best: Option<(u64, PathBuf, GoToolchain)> = None;
    for tc in toolchains() {
        for p in [
            tc.goroot().join("pkg/tool/linux_amd64/compile"),
            tc.go.clone(),
        ] {
            let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            if best.as_ref().is_none_or(|(s, _, _)| size > *s) {
                best = Some((size, p, tc.clone()));
            }
        }
    }
    best.map(|(_, p, tc)| (p, tc))
        .context("no Go toolchain installed: run `cargo xtask setup`")
}

/// Builds the measuring example in release mode and returns its path.
fn build_example() -> Result<PathBuf> {
    let out = output(Command::new("cargo").current_dir(workspace_root()).args([
        "build",
        "--release",
        "-p",
        "gocpu-gobin",
        "--example",
        "gobin_bench",
        "--message-format=json",
    ]))?;
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "gobin_bench")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo did not report the gobin_bench executable")
}

fn kv(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn num(m: &HashMap<String, String>, k: &str) -> Result<f64> {
    m.get(k)
        .with_context(|| format!("gobin_bench printed no {k}"))?
        .parse()
        .with_context(|| format!("{k} is not a number"))
}

/// Runs `go tool addr2line` on the PCs file: (answers, wall time, peak RSS KB).
fn addr2line(tc: &GoToolchain, binary: &Path, pcs: &Path) -> Result<(String, Duration, u64)> {
    // Go 1.24+ builds some tools on first use: do it before timing.
    let mut warm = tc.command();
    warm.args(["tool", "addr2line"])
        .arg(binary)
        .stdin(Stdio::null());
    output(&mut warm)?;
    let out_path = pcs.with_extension("addr2line");
    let t = Instant::now();
    let child = tc
        .command()
        .args(["tool", "addr2line"])
        .arg(binary)
        .stdin(std::fs::File::open(pcs)?)
        .stdout(std::fs::File::create(&out_path)?)
        .spawn()
        .context("cannot start go tool addr2line")?;
    let (code, rss) = wait_rss(child)?;
    let took = t.elapsed();
    if code != 0 {
        bail!("go tool addr2line exited with {code}");
    }
    Ok((std::fs::read_to_string(out_path)?, took, rss))
}

/// Replaces (or appends) the "gobin" section of BENCHMARKS.md.
fn write_section(body: &str) -> Result<()> {
    let path = workspace_root().join("BENCHMARKS.md");
    let (start, end) = ("<!-- gobin:start -->", "<!-- gobin:end -->");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let section = format!("{start}\n{body}{end}");
    let new = match (old.find(start), old.find(end)) {
        (Some(a), Some(b)) if b > a => format!("{}{section}{}", &old[..a], &old[b + end.len()..]),
        _ => format!("{}\n\n{section}\n", old.trim_end()),
    };
    std::fs::write(&path, new)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// `cmd/compile` built with `-race` by `tc` (about 50 MB: the issue's target size), cached.
fn race_compile(tc: &GoToolchain) -> Result<PathBuf> {
    let out = workspace_root()
        .join("target/gobin-bench")
        .join(format!("compile-race-go{}", tc.version));
    if !out.is_file() {
        println!(
            "building cmd/compile -race with go{} (once, a few minutes) ...",
            tc.version
        );
        let tmp = out.with_extension("tmp");
        let mut cmd = tc.command();
        cmd.args(["build", "-race", "-o"])
            .arg(&tmp)
            .arg("cmd/compile")
            .env("CGO_ENABLED", "1");
        output(&mut cmd)?;
        std::fs::rename(&tmp, &out)?;
    }
    Ok(out)
}

/// Entry point of this task.
pub fn run(args: &[String]) -> Result<()> {
    let (mut binaries, mut pcs, mut write, mut large) = (Vec::new(), 100_000usize, true, true);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--binary" => binaries.push(PathBuf::from(it.next().context("--binary PATH")?)),
            "--pcs" => pcs = it.next().context("--pcs N")?.parse()?,
            "--no-write" => write = false,
            "--no-large" => large = false,
            other => bail!("unknown argument {other:?}"),
        }
    }
    let (largest, newest) = largest_toolchain_binary()?;
    if binaries.is_empty() {
        binaries.push(largest);
        if large {
            binaries.push(race_compile(&newest)?);
        }
    }
    let exe = build_example()?;
    let mut body = String::from("## gobin\n\n");
    let mut failed = Vec::new();
    for b in &binaries {
        let (section, mismatches) = bench_one(&exe, b, &newest, pcs)?;
        print!("{section}");
        body.push_str(&section);
        if mismatches > 0 {
            failed.push(format!("{}: {mismatches} PCs", b.display()));
        }
    }
    writeln!(
        body,
        "Targets (issue 3): index a 50 MB binary in < 300 ms; peak memory < 2x the pclntab size.\n"
    )?;
    if !failed.is_empty() {
        bail!(
            "answers differ from go tool addr2line: {}",
            failed.join(", ")
        );
    }
    if write {
        write_section(&body)?;
    }
    Ok(())
}

/// Benchmarks one binary; returns its markdown section and the number of PCs answered
/// differently from addr2line.
fn bench_one(
    exe: &Path,
    binary: &Path,
    newest: &GoToolchain,
    pcs: usize,
) -> Result<(String, usize)> {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let dir = workspace_root().join("target").join("gobin-bench");
    std::fs::create_dir_all(&dir)?;
    let (pcs_file, ours_file) = (dir.join("pcs.txt"), dir.join("ours.txt"));
    let mut child = Command::new(exe)
        .arg(binary)
        .args(["--pcs", &pcs.to_string()])
        .arg("--pcs-out")
        .arg(&pcs_file)
        .arg("--results-out")
        .arg(&ours_file)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdout = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut std::io::BufReader::new(out), &mut stdout)?;
    }
    let (code, our_rss) = wait_rss(child)?;
    if code != 0 {
        bail!("gobin_bench exited with {code}");
    }
    let m = kv(&stdout);
    let (theirs, a2l_time, a2l_rss) = addr2line(newest, binary, &pcs_file)?;
    let ours = std::fs::read_to_string(&ours_file)?;
    let (t_lines, o_lines): (Vec<&str>, Vec<&str>) =
        (theirs.lines().collect(), ours.lines().collect());
    if t_lines.len() != o_lines.len() {
        bail!(
            "addr2line gave {} lines, we gave {}",
            t_lines.len(),
            o_lines.len()
        );
    }
    // A function without a line table (pcln offset 0: go:textfipsstart, the race runtime's
    // C++ functions) has no position in the runtime's eyes; debug/gosym decodes the table at
    // offset 0 anyway and prints another function's line. Those are counted apart.
    let (mut mismatches, mut no_table) = (0usize, 0usize);
    for (t, o) in t_lines.chunks(2).zip(o_lines.chunks(2)) {
        if t == o {
            continue;
        }
        if t.first() == o.first() && o.get(1) == Some(&":-1") {
            no_table += 1;
        } else {
            mismatches += 1;
        }
    }
    let pclntab = num(&m, "pclntab_bytes")?;
    let heap_peak = num(&m, "heap_peak_index_bytes")?;
    let index_ms = num(&m, "index_median_us")? / 1e3;
    let owned_ns = num(&m, "lookup_owned_ns_per_pc")?;
    let a2l_ns = a2l_time.as_nanos() as f64 / pcs as f64;
    let mut body = String::new();
    writeln!(
        body,
        "### {} ({:.1} MB)\n\n{}, {} pclntab of {:.1} MB, {} functions; {pcs} PCs spread over all \
         functions; page cache warm; 2-core VM, load average {} when started (the VM is shared).\n",
        binary
            .file_name()
            .map_or("?".into(), |n| n.to_string_lossy()),
        num(&m, "file_bytes")? / 1e6,
        m.get("go_version").map_or("?", String::as_str),
        m.get("format").map_or("?", String::as_str),
        pclntab / 1e6,
        m.get("functions").map_or("?", String::as_str),
        load,
    )?;
    writeln!(
        body,
        "| | gocpu-gobin | go tool addr2line (go{}) |",
        newest.version
    )?;
    writeln!(body, "|---|---|---|")?;
    writeln!(
        body,
        "| index (open + parse), median of 5 | {index_ms:.1} ms (first {:.1} ms) | (inside its total) |",
        num(&m, "index_first_us")? / 1e3
    )?;
    writeln!(
        body,
        "| per-PC lookup, frames borrowed | {:.0} ns | |",
        num(&m, "lookup_borrowed_ns_per_pc")?
    )?;
    writeln!(
        body,
        "| per-PC lookup, owned `Vec<Frame>` | {owned_ns:.0} ns | {a2l_ns:.0} ns (whole run / PCs, incl. startup) |"
    )?;
    writeln!(
        body,
        "| total for {pcs} PCs | {:.0} ms | {:.0} ms |",
        index_ms + owned_ns * pcs as f64 / 1e6,
        a2l_time.as_secs_f64() * 1e3
    )?;
    writeln!(
        body,
        "| heap peak while indexing | {:.2} MB = {:.2}x pclntab | |",
        heap_peak / 1e6,
        heap_peak / pclntab
    )?;
    writeln!(
        body,
        "| heap held by the parse after the lookups (inline funcdata loaded) | {:.2} MB = {:.2}x pclntab | |",
        num(&m, "heap_binary_after_lookups_bytes")? / 1e6,
        num(&m, "heap_binary_after_lookups_bytes")? / pclntab
    )?;
    writeln!(
        body,
        "| process peak RSS | {:.1} MB (holds all answers) | {:.1} MB |",
        our_rss as f64 / 1e3,
        a2l_rss as f64 / 1e3
    )?;
    writeln!(
        body,
        "\nAnswers (outermost function, innermost file:line) differ from addr2line's for {mismatches} \
         of {pcs} PCs, plus {no_table} PCs in functions without a line table, where addr2line decodes \
         another function's table and we (like the runtime) report no position.\n"
    )?;
    Ok((body, mismatches))
}
