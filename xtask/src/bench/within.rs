//! `cargo xtask bench --within N`: each tracer against no tracer inside one workload run.
//!
//! Between runs the ping-pong's rate moves by several percent even at one vCPU placement (each
//! run settles at its own level), which hides a 1% effect behind about a hundred runs per mode.
//! Within one run the rate holds to a percent or two from second to second. So the workload
//! runs once, for long, and the tracers are started and stopped around it: every tracer block
//! lies between two blocks with no tracer and is compared with their mean, so a steady drift
//! cancels. A tracer's start-up (loading, calibration, first measurements) is left out: its
//! block opens `SETTLE` after it is ready, and the next block `GUARD` after it stopped.
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use gocpu_testkit::{
    GoToolchain,
    process::{KillOnDrop, proc_cpu_seconds},
};

use super::{
    Daemon, Mode, Run, Workload, daemon_costs,
    pace::{Pace, pace_of, valley},
    rss_kib, start_bpftrace,
    stats::{mean_ci_text, median, quartiles},
    stop_bpftrace, workload_report,
};

/// Time the workload runs before its first block.
const WARMUP: Duration = Duration::from_secs(2);
/// Time from a tracer's readiness to its block.
const SETTLE: Duration = Duration::from_secs(3);
/// Time from a tracer's exit to the next block.
const GUARD: Duration = Duration::from_secs(1);

/// One block of a run: its mode and its span in seconds since the workload's window opened.
#[derive(Clone, Copy, Debug)]
struct Block {
    mode: Mode,
    start: f64,
    end: f64,
}

/// One long run: the workload's rate per second, its blocks, and what each tracer block cost.
struct WithinRun {
    per_second: Vec<f64>,
    blocks: Vec<Block>,
    /// Per tracer block (in order): the daemon's or bpftrace's costs over it.
    costs: Vec<(Mode, Run)>,
}

/// A started tracer.
enum Tracer {
    Daemon(Daemon),
    Bpftrace(KillOnDrop),
    /// `sleep`, for the null mode.
    Null(KillOnDrop),
}

impl Tracer {
    fn start(mode: Mode, s: &Setup) -> Result<Tracer> {
        Ok(match mode {
            Mode::Bpftrace => Tracer::Bpftrace(start_bpftrace(s.tc, s.w.bin)?),
            Mode::Null => Tracer::Null(KillOnDrop::spawn(Command::new("sleep").arg("infinity"))),
            _ => Tracer::Daemon(Daemon::start(s.daemon_bin, mode, s.variant_yaml)?),
        })
    }

    fn pid(&self) -> u32 {
        match self {
            Tracer::Daemon(d) => d.child.pid(),
            Tracer::Bpftrace(b) | Tracer::Null(b) => b.pid(),
        }
    }

    fn metrics(&self) -> Result<String> {
        match self {
            Tracer::Daemon(d) => d.metrics(),
            Tracer::Bpftrace(_) | Tracer::Null(_) => Ok(String::new()),
        }
    }

    fn stop(self) -> Result<()> {
        match self {
            Tracer::Daemon(d) => d.stop(),
            Tracer::Bpftrace(b) => {
                stop_bpftrace(b);
                Ok(())
            }
            Tracer::Null(n) => {
                n.signal(9);
                n.wait_output(Duration::from_secs(5));
                Ok(())
            }
        }
    }
}

/// What `--within` needs to run.
pub struct Setup<'a> {
    /// The workload (its warm-up and window are this module's own).
    pub w: &'a Workload<'a>,
    /// The gocpu binary.
    pub daemon_bin: &'a Path,
    /// The variant mode's configuration.
    pub variant_yaml: Option<&'a str>,
    /// The Go toolchain that built the workload (bpftrace needs its symbol names).
    pub tc: &'a GoToolchain,
    /// Length of every block.
    pub block: Duration,
}

fn one_run(s: &Setup, order: &[Mode]) -> Result<WithinRun> {
    let pairs = s.w.pairs.to_string();
    let warmup = format!("{}s", WARMUP.as_secs());
    // No -duration: the run ends at SIGTERM, with its report.
    let child = KillOnDrop::spawn(
        Command::new(s.w.bin).args(["-mode", s.w.mode, "-pairs", &pairs, "-warmup", &warmup]),
    );
    let wl = child.pid();
    let open = Instant::now() + WARMUP;
    std::thread::sleep(WARMUP);
    let at = || open.elapsed().as_secs_f64();
    let mut blocks = Vec::new();
    let mut costs = Vec::new();
    let off = |blocks: &mut Vec<Block>| {
        let start = at();
        std::thread::sleep(s.block);
        blocks.push(Block {
            mode: Mode::Off,
            start,
            end: at(),
        });
    };
    for &m in order {
        off(&mut blocks);
        let tracer = Tracer::start(m, s)?;
        std::thread::sleep(SETTLE);
        let (cpu0, wl0, m0) = (
            proc_cpu_seconds(tracer.pid()),
            proc_cpu_seconds(wl),
            tracer.metrics()?,
        );
        let start = at();
        std::thread::sleep(s.block);
        let end = at();
        let mut r = Run {
            tracer_cpu_s: proc_cpu_seconds(tracer.pid()) - cpu0,
            target_cpu_s: proc_cpu_seconds(wl) - wl0,
            ..Run::default()
        };
        daemon_costs(&m0, &tracer.metrics()?, &mut r);
        r.tracer_rss_kib = rss_kib(tracer.pid());
        tracer.stop()?;
        std::thread::sleep(GUARD);
        blocks.push(Block {
            mode: m,
            start,
            end,
        });
        costs.push((m, r));
    }
    off(&mut blocks);
    child.signal(15);
    let (out, status) = child.wait_output(Duration::from_secs(30));
    ensure!(status.success(), "workload failed: {status}");
    let (_, per_second) = workload_report(&out)?;
    Ok(WithinRun {
        per_second,
        blocks,
        costs,
    })
}

/// The rates of the whole seconds inside `b` (second `i` spans `[i, i + 1)` after the window
/// opened, give or take the workload's start-up, which the margin covers).
fn seconds_in(per_second: &[f64], b: &Block) -> Vec<f64> {
    per_second
        .iter()
        .enumerate()
        .filter(|&(i, _)| i as f64 >= b.start && i as f64 + 1.1 <= b.end)
        .map(|(_, &r)| r)
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// One tracer block against the no-tracer blocks on both sides of it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bracket {
    mode: Mode,
    ratio: f64,
    /// The pace of the three blocks (`None`: a placement change lies within them). A tracer
    /// far below the slow pace (ungoverned, bpftrace) has no pace of its own: then only the
    /// no-tracer seconds on both sides must share one.
    pace: Option<Pace>,
}

/// A tracer block below this fraction of the slowest no-tracer pace has no pace of its own.
const FAR_BELOW: f64 = 0.7;

/// The pace all of `rates` are at, if they share one.
fn one_pace(rates: &[f64], valley: Option<f64>) -> Option<Pace> {
    let first = pace_of(*rates.first()?, valley);
    rates
        .iter()
        .all(|&r| pace_of(r, valley) == first)
        .then_some(first)
}

/// Every tracer block of `run` against its neighbours; `slowest` is the median rate of the
/// slowest pace without a tracer.
fn brackets(run: &WithinRun, valley: Option<f64>, slowest: f64) -> Vec<Bracket> {
    let mut out = Vec::new();
    for w in run.blocks.windows(3) {
        let [before, on, after] = w else { continue };
        if on.mode == Mode::Off || before.mode != Mode::Off || after.mode != Mode::Off {
            continue;
        }
        let on_s = seconds_in(&run.per_second, on);
        let mut off_s = seconds_in(&run.per_second, before);
        off_s.extend(seconds_in(&run.per_second, after));
        if on_s.is_empty() || off_s.is_empty() {
            continue;
        }
        let sides = one_pace(&off_s, valley);
        let far_below = mean(&on_s) < FAR_BELOW * slowest;
        let pace = sides.filter(|&p| far_below || one_pace(&on_s, valley) == Some(p));
        out.push(Bracket {
            mode: on.mode,
            ratio: mean(&on_s) / mean(&off_s),
            pace,
        });
    }
    out
}

/// Mean with its 95% interval and the number of blocks behind it.
fn mean_text(v: &[f64]) -> String {
    match v.len() {
        0 => "–".to_string(),
        1 => format!("{:.3} (1 block)", v[0]),
        n => format!("{} ({n} blocks)", mean_ci_text(v)),
    }
}

/// Runs `runs` long runs; returns the report section.
pub fn within(s: &Setup, modes: &[Mode], runs: usize) -> Result<String> {
    // The modes whose effect is small (default, variant, null) get two blocks per run, the
    // others one: small, other, small, other...
    let (small, others): (Vec<Mode>, Vec<Mode>) = modes
        .iter()
        .filter(|m| **m != Mode::Off)
        .partition(|m| matches!(m, Mode::Default | Mode::Variant | Mode::Null));
    ensure!(
        !small.is_empty() || !others.is_empty(),
        "--within needs a mode besides off"
    );
    let mut base = Vec::new();
    for i in 0..others.len().max(if small.is_empty() { 0 } else { 2 }) {
        if i < 2 {
            base.extend(&small);
        }
        base.extend(others.get(i));
    }
    let mut all = Vec::new();
    for k in 0..runs {
        let mut order = base.clone();
        order.rotate_left(k % base.len());
        let r = one_run(s, &order).with_context(|| format!("within-run {}", k + 1))?;
        eprintln!("within-run {}:", k + 1);
        for b in &r.blocks {
            let secs: Vec<String> = seconds_in(&r.per_second, b)
                .iter()
                .map(|x| format!("{:.0}k", x / 1e3))
                .collect();
            eprintln!("  {:>10} {}", b.mode.name(), secs.join(" "));
        }
        all.push(r);
    }
    report(s, &all)
}

fn report(s: &Setup, runs: &[WithinRun]) -> Result<String> {
    let off: Vec<f64> = runs
        .iter()
        .flat_map(|r| {
            r.blocks
                .iter()
                .filter(|b| b.mode == Mode::Off)
                .flat_map(|b| seconds_in(&r.per_second, b))
        })
        .collect();
    let valley = valley(&off);
    let slow: Vec<f64> = off
        .iter()
        .copied()
        .filter(|&r| pace_of(r, valley) == Pace::Slow)
        .collect();
    let slowest = median(if slow.is_empty() { &off } else { &slow });
    let all: Vec<Bracket> = runs
        .iter()
        .flat_map(|r| brackets(r, valley, slowest))
        .collect();
    let mut out = String::new();
    writeln!(
        out,
        "{} long runs of the same workload, each with the tracers started and stopped around it: every tracer block ({} s, opening {} s after the tracer is ready) lies between two {} s blocks without a tracer (each opening {} s after the previous tracer exited), and its ratio is its mean rate over theirs. Only blocks whose seconds, and their neighbours', are all at one pace count: the host's vCPU placement sets the pace (see \"overhead\", by pace; {}); a tracer below {FAR_BELOW} of the slow pace has no pace of its own, and then only its neighbours must share one.\n",
        runs.len(),
        s.block.as_secs(),
        SETTLE.as_secs(),
        s.block.as_secs(),
        GUARD.as_secs(),
        match valley {
            Some(v) => format!("split at {v:.0} ops/s"),
            None => "here the no-tracer seconds formed one pace".to_string(),
        }
    )?;
    writeln!(
        out,
        "| mode | blocks (in one pace / all) | vs off: median (IQR) | mean, 95% CI | fast pace: mean | slow pace: mean | tracer CPU (% of one core) | tracer peak RSS | BPF run time (% of target CPU) | uprobe hits/s |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|")?;
    let mut by_mode: BTreeMap<Mode, Vec<Bracket>> = BTreeMap::new();
    for b in &all {
        by_mode.entry(b.mode).or_default().push(*b);
    }
    for (m, bs) in &by_mode {
        let clean: Vec<f64> = bs
            .iter()
            .filter(|b| b.pace.is_some())
            .map(|b| b.ratio)
            .collect();
        let of_pace = |p: Pace| -> String {
            let v: Vec<f64> = bs
                .iter()
                .filter(|b| b.pace == Some(p))
                .map(|b| b.ratio)
                .collect();
            mean_text(&v)
        };
        let costs: Vec<&Run> = runs
            .iter()
            .flat_map(|r| r.costs.iter().filter(|(cm, _)| cm == m).map(|(_, c)| c))
            .collect();
        let col = |f: &dyn Fn(&Run) -> f64| median(&costs.iter().map(|r| f(r)).collect::<Vec<_>>());
        let secs = s.block.as_secs_f64();
        let daemon = m.is_daemon();
        let (q1, q3) = quartiles(&clean);
        writeln!(
            out,
            "| {} | {} / {} | {} | {} | {} | {} | {:.1}% | {:.1} MiB | {} | {} |",
            m.name(),
            clean.len(),
            bs.len(),
            if clean.is_empty() {
                "–".to_string()
            } else {
                format!("{:.3} ({q1:.3}–{q3:.3})", median(&clean))
            },
            mean_text(&clean),
            of_pace(Pace::Fast),
            of_pace(Pace::Slow),
            col(&|r| r.tracer_cpu_s) / secs * 100.0,
            costs.iter().map(|r| r.tracer_rss_kib).max().unwrap_or(0) as f64 / 1024.0,
            if daemon {
                format!(
                    "{:.2}%",
                    col(&|r| if r.target_cpu_s > 0.0 {
                        r.bpf_run_s / r.target_cpu_s
                    } else {
                        0.0
                    }) * 100.0
                )
            } else {
                "–".to_string()
            },
            if daemon {
                format!("{:.0}", col(&|r| r.uprobe_hits) / secs)
            } else {
                "–".to_string()
            },
        )?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(mode: Mode, start: f64, end: f64) -> Block {
        Block { mode, start, end }
    }

    #[test]
    fn a_tracer_block_is_compared_with_the_blocks_around_it() {
        // Seconds 0-3 off at 100, 4-7 default at 99, 8-11 off at 102 (a drift of +2).
        let mut per_second = vec![100.0; 4];
        per_second.extend([99.0; 4]);
        per_second.extend([102.0; 4]);
        let run = WithinRun {
            per_second,
            blocks: vec![
                block(Mode::Off, 0.0, 4.2),
                block(Mode::Default, 4.0, 8.3),
                block(Mode::Off, 8.0, 12.4),
            ],
            costs: Vec::new(),
        };
        let b = brackets(&run, None, 100.0);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].mode, Mode::Default);
        assert!((b[0].ratio - 99.0 / 101.0).abs() < 1e-12, "{b:?}");
        assert_eq!(b[0].pace, Some(Pace::Fast));
        // A placement change between the blocks around it: not in one pace.
        assert_eq!(brackets(&run, Some(101.0), 100.0)[0].pace, None);
        // Nor between the tracer block and both sides (the host moved and moved back).
        assert_eq!(brackets(&run, Some(99.5), 100.0)[0].pace, None);
        // A tracer far below the slow pace counts when its sides are in one pace.
        assert_eq!(brackets(&run, Some(99.5), 150.0)[0].pace, Some(Pace::Fast));
    }

    #[test]
    fn seconds_straddling_a_block_edge_are_left_out() {
        let per_second: Vec<f64> = (0..10).map(f64::from).collect();
        // Seconds 2, 3 and 4 lie inside [2.0, 6.0); second 5 ends at 6 + start-up: out.
        assert_eq!(
            seconds_in(&per_second, &block(Mode::Off, 2.0, 6.0)),
            vec![2.0, 3.0, 4.0]
        );
    }
}
