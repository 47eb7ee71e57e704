//! Prints a Go process's runtime state read from outside: `runtime_state <pid> [repeats]`.
//!
//! Census, scheduler gauges and Ms with how long each read took; the last line (`BENCH {json}`)
//! is what `cargo xtask bench-runtime` reads. Needs root or the target's user.
#![allow(clippy::print_stdout)]

use std::{path::PathBuf, time::Instant};

use anyhow::{Context, Result};
use gocpu_daemon::runtime::{
    ProcessVm, RuntimeLayout, process_load_bias, read_census, read_ms, read_sched,
};
use gocpu_gobin::GoBinary;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let pid: u32 = args
        .next()
        .context("usage: runtime_state <pid> [repeats]")?
        .parse()?;
    let repeats: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(1);
    let bin = GoBinary::open(&PathBuf::from(format!("/proc/{pid}/exe")))?;
    let t = Instant::now();
    let layout = RuntimeLayout::new(&bin)?;
    println!("layout: {:?} in {:?}", layout.offsets_source(), t.elapsed());
    for u in layout.unavailable() {
        println!("unavailable: {u}");
    }
    let bias = process_load_bias(pid, &bin)?;
    let mem = ProcessVm::new(pid).context("bad pid")?;
    let mut times = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        let c = read_census(&mem, &layout, bias)?;
        times.push(t.elapsed());
        if times.len() == 1 {
            println!(
                "census: allglen {} read {} unreadable {} max_goid {}",
                c.allglen, c.read, c.unreadable, c.max_goid
            );
            match &c.named {
                Ok(n) => {
                    println!(
                        "  live {} user {} system {} scanning {} unknown {}",
                        n.live, n.user, n.system, n.scanning, n.unknown_status
                    );
                    println!("  by status: {:?}", n.by_status);
                    println!("  by wait reason: {:?}", n.by_wait_reason);
                    let mut starts: Vec<_> = n.by_start.iter().collect();
                    starts.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
                    for (pc, n) in starts.into_iter().take(5) {
                        let f = bin.function_at_pc(*pc).map(|f| f.name);
                        println!("  start {pc:#x} {f:?}: {n}");
                    }
                }
                Err(e) => println!("  names unavailable: {e}; raw {:?}", c.by_raw),
            }
        }
    }
    times.sort();
    let ms_of = |d: Option<&std::time::Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
    let (min, med, max) = (
        ms_of(times.first()),
        ms_of(times.get(times.len() / 2)),
        ms_of(times.last()),
    );
    println!("census time: min {min:.2} ms, median {med:.2} ms, max {max:.2} ms over {repeats}");
    let t = Instant::now();
    let s = read_sched(&mem, &layout, bias)?;
    let sched_us = t.elapsed().as_secs_f64() * 1e6;
    println!("sched ({sched_us:.0} µs): {s:?}");
    let t = Instant::now();
    let ms = read_ms(&mem, &layout, bias)?;
    let ms_us = t.elapsed().as_secs_f64() * 1e6;
    println!("ms ({ms_us:.0} µs):");
    for m in &ms {
        println!("  {m:?}");
    }
    let c = read_census(&mem, &layout, bias)?;
    let user = c.named.as_ref().map(|n| n.user).ok();
    println!(
        "BENCH {}",
        serde_json::json!({
            "allglen": c.allglen,
            "user_goroutines": user,
            "census_ms_min": min,
            "census_ms_median": med,
            "census_ms_max": max,
            "repeats": repeats,
            "sched_us": sched_us,
            "ms_us": ms_us,
            "ms": ms.len(),
        })
    );
    Ok(())
}
