//! Scheduler gauges read from outside, against the runtime's own `GODEBUG=schedtrace` output
//! and the program's GOMAXPROCS.
//!
//! 1. A still program (`goroutineleak` after its leak is complete) prints schedtrace every
//!    100 ms; between two prints its scheduler does not change, so the gauges read in between
//!    must equal what the next line prints: gomaxprocs and threads every time, idle Ps, idle
//!    and spinning Ms and the run queues in most reads (a ticker wakes the program 10 times a
//!    second). Every test toolchain, stripped and PIE.
//! 2. `schedstorm -gomaxprocs 3` (channel ping-pong storm): gomaxprocs is 3 as the program
//!    reports, idle Ps and spinning Ms stay within [0, gomaxprocs], one local run queue per P,
//!    and `threads` equals the Ms in `allm` and the threads in /proc/<pid>/task.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod runtime_support;

use std::{collections::HashMap, time::Duration};

use gocpu_daemon::runtime::{SchedGauges, read_ms, read_sched};
use gocpu_testkit::{Variant, test_toolchains};
use runtime_support::{Target, retry};

/// The key=value fields of the last `SCHED` line in `text`, and how many lines there were.
fn last_schedtrace(text: &str) -> (usize, HashMap<String, i64>) {
    // The runtime prints a SCHED line in several writes: a read can end inside one (seen once
    // in a clean-clone run: the per-P queues not yet printed). Only complete lines count.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let lines: Vec<&str> = complete
        .lines()
        .filter(|l| l.starts_with("SCHED "))
        .collect();
    let mut fields = HashMap::new();
    if let Some(l) = lines.last() {
        for kv in l.split_whitespace() {
            if let Some((k, v)) = kv.split_once('=')
                && let Ok(v) = v.parse()
            {
                fields.insert(k.to_string(), v);
            }
        }
        // The bracketed per-P run queues: "[0 0]".
        if let (Some(a), Some(b)) = (l.find('['), l.find(']')) {
            let q: Vec<i64> = l[a + 1..b]
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            fields.insert("local_sum".into(), q.iter().sum());
            fields.insert("local_len".into(), q.len() as i64);
        }
    }
    (lines.len(), fields)
}

fn ours(g: &SchedGauges) -> HashMap<&'static str, i64> {
    let runqs = g.local_runqs.as_ref().unwrap();
    HashMap::from([
        ("gomaxprocs", *g.gomaxprocs.as_ref().unwrap()),
        ("idleprocs", *g.idle_ps.as_ref().unwrap()),
        ("threads", *g.threads.as_ref().unwrap()),
        ("spinningthreads", *g.spinning_ms.as_ref().unwrap()),
        ("idlethreads", *g.idle_ms.as_ref().unwrap()),
        ("runqueue", *g.global_runq.as_ref().unwrap()),
        ("local_sum", runqs.iter().map(|&n| i64::from(n)).sum()),
        ("local_len", runqs.len() as i64),
    ])
}

#[test]
fn gauges_equal_schedtrace_of_a_still_program() {
    for tc in test_toolchains() {
        for variant in [Variant::Stripped, Variant::Pie] {
            let dir = tempfile::tempdir().unwrap();
            let err_path = dir.path().join("stderr");
            let t = Target::start_with_stderr(
                &tc,
                "goroutineleak",
                variant,
                &["-rate", "1000", "-max", "50"],
                &[("GODEBUG", "schedtrace=100")],
                Duration::from_millis(500),
                Some(std::fs::File::create(&err_path).unwrap()),
            );
            let read_trace = || last_schedtrace(&std::fs::read_to_string(&err_path).unwrap());
            let (mut all_equal, attempts) = (0, 10);
            for _ in 0..attempts {
                let before = read_trace().0;
                let g = read_sched(&t.mem, &t.layout, t.bias).unwrap();
                let ours = ours(&g);
                // The first line printed after our read describes the same still state.
                let trace = retry(Duration::from_secs(5), || {
                    let (n, f) = read_trace();
                    if n > before {
                        Ok(f)
                    } else {
                        Err("no new SCHED line".into())
                    }
                });
                for key in ["gomaxprocs", "threads", "local_len"] {
                    assert_eq!(Some(&ours[key]), trace.get(key), "{}: {key}", t.label);
                }
                if ours.iter().all(|(k, v)| trace.get(*k) == Some(v)) {
                    all_equal += 1;
                } else {
                    println!("{}: differs: ours {ours:?} trace {trace:?}", t.label);
                }
            }
            println!(
                "{}: {all_equal}/{attempts} reads equal schedtrace in every field",
                t.label
            );
            assert!(all_equal * 2 > attempts, "{}", t.label);
            drop(t.stop());
        }
    }
}

#[test]
fn storm_gauges_stay_in_bounds_and_threads_match_ms_and_tasks() {
    for tc in test_toolchains() {
        let t = Target::start(
            &tc,
            "schedstorm",
            Variant::Stripped,
            &["-gomaxprocs", "3", "-pairs", "4"],
            &[],
            Duration::from_millis(500),
        );
        let (mut spinning_seen, mut idle_seen) = (0, 0);
        for _ in 0..40 {
            let g = read_sched(&t.mem, &t.layout, t.bias).unwrap();
            let procs = g.gomaxprocs.clone().unwrap();
            assert_eq!(procs, 3, "{}", t.label);
            let idle = g.idle_ps.clone().unwrap();
            let spinning = g.spinning_ms.clone().unwrap();
            assert!((0..=procs).contains(&idle), "{}: idle Ps {idle}", t.label);
            assert!(
                (0..=procs).contains(&spinning),
                "{}: spinning {spinning}",
                t.label
            );
            assert_eq!(g.local_runqs.clone().unwrap().len(), 3, "{}", t.label);
            assert!(g.global_runq.clone().unwrap() >= 0);
            spinning_seen += usize::from(spinning > 0);
            idle_seen += usize::from(idle > 0);
            std::thread::sleep(Duration::from_millis(25));
        }
        // Ms are created rarely once the storm runs: retry until a read sees no change.
        let threads = retry(Duration::from_secs(10), || {
            let g = read_sched(&t.mem, &t.layout, t.bias).unwrap();
            let threads = g.threads.unwrap();
            let ms = read_ms(&t.mem, &t.layout, t.bias).unwrap();
            let tasks = t.tasks();
            if threads as usize == ms.len() && tasks.len() == ms.len() {
                Ok(threads)
            } else {
                Err(format!(
                    "threads {threads}, Ms {}, tasks {}",
                    ms.len(),
                    tasks.len()
                ))
            }
        });
        let label = t.label.clone();
        let truth = t.stop();
        assert_eq!(truth["gomaxprocs"].as_i64(), Some(3), "{label}");
        println!(
            "{label}: threads {threads}; reads with spinning Ms {spinning_seen}/40, with idle Ps {idle_seen}/40"
        );
    }
}
