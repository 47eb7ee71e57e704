//! Measures indexing and PC lookup of one binary (run by `cargo xtask bench-gobin`, which also
//! times `go tool addr2line` on the same PCs and compares the answers).
//!
//! ```text
//! gobin_bench <binary> [--pcs N] [--pcs-out FILE] [--results-out FILE]
//! ```
//! Prints `key=value` lines. Heap figures come from a counting global allocator, so they are
//! exact bytes requested by this process, not page-granular RSS.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    io::Write,
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

use gocpu_gobin::GoBinary;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            let now = CURRENT.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn max_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let binary = PathBuf::from(args.next().expect("usage: gobin_bench <binary> [--pcs N]"));
    let (mut n, mut pcs_out, mut results_out) = (100_000usize, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--pcs" => n = args.next().unwrap().parse().unwrap(),
            "--pcs-out" => pcs_out = args.next().map(PathBuf::from),
            "--results-out" => results_out = args.next().map(PathBuf::from),
            other => panic!("unknown argument {other}"),
        }
    }
    let file_size = std::fs::metadata(&binary).unwrap().len();
    // Warm the page cache so the timing measures parsing, not the disk.
    let _ = std::fs::read(&binary).unwrap();
    let rss_before = max_rss_kb();
    let heap_before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(heap_before, Ordering::Relaxed);
    let t = Instant::now();
    let bin = GoBinary::open(&binary).unwrap();
    let first_index = t.elapsed();
    let heap_peak = PEAK.load(Ordering::Relaxed) - heap_before;
    let heap_kept = CURRENT.load(Ordering::Relaxed) - heap_before;
    let rss_after = max_rss_kb();
    let mut times = vec![first_index];
    for _ in 0..4 {
        let t = Instant::now();
        drop(GoBinary::open(&binary).unwrap());
        times.push(t.elapsed());
    }
    times.sort();
    let funcs: Vec<_> = bin.functions().collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let pcs: Vec<u64> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let f = &funcs[(state % funcs.len() as u64) as usize];
            f.entry + (state >> 20) % (f.end - f.entry).max(1)
        })
        .collect();
    // Lookup without allocation (what an aggregating profiler does), then with owned frames.
    let t = Instant::now();
    let mut frames = 0usize;
    for &pc in &pcs {
        bin.symbolize_with(pc, |_| frames += 1);
    }
    let borrowed = t.elapsed();
    let t = Instant::now();
    let mut answers = Vec::with_capacity(pcs.len());
    for &pc in &pcs {
        answers.push(bin.symbolize(pc).unwrap_or_default());
    }
    let owned = t.elapsed();
    // The parse as it stands after lookups (funcdata region loaded for inline trees, if any).
    let heap_after_lookups = CURRENT.load(Ordering::Relaxed) - heap_before;
    let answers_bytes: usize = answers
        .iter()
        .map(|a| {
            a.capacity() * std::mem::size_of::<gocpu_gobin::Frame>()
                + a.iter()
                    .map(|f| f.function.capacity() + f.file.capacity())
                    .sum::<usize>()
        })
        .sum::<usize>()
        + answers.capacity() * std::mem::size_of::<Vec<gocpu_gobin::Frame>>();
    if let Some(p) = pcs_out {
        let mut w = std::io::BufWriter::new(std::fs::File::create(p).unwrap());
        for pc in &pcs {
            writeln!(w, "{pc:#x}").unwrap();
        }
    }
    if let Some(p) = results_out {
        // addr2line's view: outermost function, innermost file:line.
        let mut w = std::io::BufWriter::new(std::fs::File::create(p).unwrap());
        for a in &answers {
            match (a.last(), a.first()) {
                (Some(o), Some(i)) if !i.file.is_empty() => {
                    writeln!(w, "{}\n{}:{}", o.function, i.file, i.line).unwrap()
                }
                (Some(o), _) => writeln!(w, "{}\n:-1", o.function).unwrap(),
                _ => writeln!(w, "?\n?:0").unwrap(),
            }
        }
    }
    println!("binary={}", binary.display());
    println!("file_bytes={file_size}");
    println!("go_version={}", bin.go_version().unwrap_or("?"));
    println!("format={:?}", bin.pclntab_format());
    println!("functions={}", bin.function_count());
    println!("pclntab_bytes={}", bin.pclntab_size());
    println!("index_first_us={}", first_index.as_micros());
    println!("index_median_us={}", times[times.len() / 2].as_micros());
    println!("heap_peak_index_bytes={heap_peak}");
    println!("heap_kept_index_bytes={heap_kept}");
    println!(
        "rss_growth_index_kb={}",
        rss_after.saturating_sub(rss_before)
    );
    println!(
        "heap_binary_after_lookups_bytes={}",
        heap_after_lookups.saturating_sub(answers_bytes)
    );
    println!("pcs={}", pcs.len());
    println!("frames={frames}");
    println!(
        "lookup_borrowed_ns_per_pc={:.0}",
        borrowed.as_nanos() as f64 / pcs.len() as f64
    );
    println!(
        "lookup_owned_ns_per_pc={:.0}",
        owned.as_nanos() as f64 / pcs.len() as f64
    );
}
