//! Prints a Go process's runtime state read from outside: `runtime_state <pid> [repeats]`.
//!
//! Census, scheduler gauges and Ms with how long each read took (the census figure is what
//! `cargo xtask bench-runtime` reports). Needs root or the target's user.
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
    if let (Some(min), Some(med)) = (times.first(), times.get(times.len() / 2)) {
        println!("census time: min {min:?} median {med:?} over {repeats}");
    }
    let t = Instant::now();
    let s = read_sched(&mem, &layout, bias)?;
    println!("sched ({:?}): {s:?}", t.elapsed());
    let t = Instant::now();
    let ms = read_ms(&mem, &layout, bias)?;
    println!("ms ({:?}):", t.elapsed());
    for m in ms {
        println!("  {m:?}");
    }
    Ok(())
}
