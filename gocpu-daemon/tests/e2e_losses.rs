//! Root integration test of issue 12, point 5 ("count every loss"): stack capture still works
//! after more than 100 000 distinct stacks have passed through the stack maps, and the loss
//! counters say what happened meanwhile.
//!
//! `manystacks` walks 2^20 distinct recursion paths, each ending in Go CPU (CPU samples:
//! `STACKS_CPU_*`) and a cgo call (runtime.cgocall's stack: `STACKS_OFF_*`), then on SIGUSR1
//! switches to two fixed stacks. Stack ids that were never freed (the old `STACKS_OFF`) fill the
//! map within the first few thousand stacks, after which the fresh cgo caller would never be
//! captured again.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use gocpu_common::DropReason;
use gocpu_testkit::{Variant, build, debian_go, workload};
use serde_json::Value;
use support::{
    Daemon, hotspot_functions,
    metrics::{Series, metrics},
    serial, spawn, wait,
};

/// Distinct stacks that must have gone through each stack map before the check.
const DISTINCT: u64 = 100_000;

/// Every `gocpu_events_lost_total` series, by reason.
fn lost(m: &[Series]) -> std::collections::BTreeMap<String, f64> {
    m.iter()
        .filter(|s| s.name == "gocpu_events_lost_total")
        .map(|s| (s.labels["reason"].clone(), s.value))
        .collect()
}

/// runtime.cgocall entries the daemon counted for `pid`.
fn cgocalls(m: &[Series], pid: u32) -> f64 {
    let pid = pid.to_string();
    m.iter()
        .find(|s| {
            s.name == "gocpu_process_runtime_calls_total"
                && s.labels.get("pid") == Some(&pid)
                && s.labels.get("function").map(String::as_str) == Some("runtime.cgocall")
        })
        .map_or(0.0, |s| s.value)
}

#[test]
fn stack_capture_survives_100k_distinct_stacks_and_losses_are_counted() {
    let _serial = serial();
    // The fastest CPU clock the config allows (2 cores: ~2000 samples/s; samples are kept the
    // default 300 s, enough to count the whole churn), and the cgocall uprobe never
    // duty-cycled away.
    let d = Daemon::start(
        "sampling: {cpu_clock_hz: 1000}\n\
         probes: {budget: {max_overhead: 1.0}}\n",
    );
    let bin = build(&debian_go(), &workload("manystacks"), Variant::Default);
    let w = spawn(&bin, &["-goroutines", "2", "-duration", "400s"]);
    let pid = w.pid();
    d.wait_listed(pid);
    let started = Instant::now();

    // Every reason is exported from the start, kernel and user space alike.
    let reasons = lost(&metrics(&d));
    for r in DropReason::ALL {
        assert!(
            reasons.contains_key(r.as_str()),
            "{r:?} missing: {reasons:?}"
        );
    }
    for r in ["thread_evicted", "futex_stack_overflow"] {
        assert!(reasons.contains_key(r), "{r} missing: {reasons:?}");
    }

    // Churn until more than DISTINCT cgo calls, each one stack capture on another path, went
    // through STACKS_OFF_*, and more than 5 000 CPU samples through STACKS_CPU_* (each on another
    // path: consecutive samples are ~100 paths apart). How long each takes depends on how fast
    // the box runs the workload and how the cgocall uprobe is duty-cycled, so both are waited
    // for; 100k CPU samples at the ~1500/s a saturated 2-core box gives would take minutes, so
    // they are counted, not waited for.
    let (calls, samples) = wait(
        "100k cgo calls of distinct stacks counted and 5000 CPU samples kept",
        Duration::from_secs(240),
        || {
            std::thread::sleep(Duration::from_secs(3));
            let calls = cgocalls(&metrics(&d), pid) as u64;
            let v = d.json(&format!("/processes/{pid}/hotspots?seconds=300&top=5"));
            let samples = v["hotspots"]["samples"].as_u64().unwrap_or(0);
            eprintln!(
                "{:>5.1} s: {calls} cgo calls counted, {samples} CPU samples kept",
                started.elapsed().as_secs_f64()
            );
            (calls > DISTINCT && samples > 5_000).then_some((calls, samples))
        },
    );
    let churned = lost(&metrics(&d));
    eprintln!("after the churn ({samples} samples, {calls} cgo calls): lost {churned:?}");
    // More distinct stacks per generation than a stack map has ids: collisions happened, and
    // were counted rather than silently overwriting ids still in keys.
    assert!(churned["stack_id_collision"] > 0.0, "{churned:?}");

    // Fresh phase: two fixed stacks.
    w.signal(libc::SIGUSR1);
    std::thread::sleep(Duration::from_secs(3));
    let before = lost(&metrics(&d));
    std::thread::sleep(Duration::from_secs(6));
    let v = d.json(&format!("/processes/{pid}/hotspots?seconds=5&top=15"));
    let after = lost(&metrics(&d));
    let by_self = hotspot_functions(&v, "by_self");
    let by_cum = hotspot_functions(&v, "by_cumulative");
    eprintln!("fresh phase: by_self {by_self:?}\nby_cumulative {by_cum:?}");
    // CPU stacks: captured and symbolized.
    assert!(by_self.iter().any(|f| f == "main.freshGoSpin"), "{v}");
    assert!(
        by_self
            .iter()
            .any(|f| f.starts_with("gocpu_many_fresh_spin")),
        "{v}"
    );
    // The cgo caller's stack (STACKS_OFF) was captured after the churn: the C function's
    // samples, which cannot be unwound, carry the Go stack that called it.
    assert!(by_cum.iter().any(|f| f == "main.freshCgoCaller"), "{v}");
    let fresh_samples = v["hotspots"]["samples"].as_u64().unwrap();
    assert!(fresh_samples > 1000, "{v}");
    let grew = |r: &str| after[r] - before[r];
    let stack_losses = grew("stack_id_collision") + grew("stack_capture");
    eprintln!(
        "fresh phase: {fresh_samples} samples in 5 s; stack losses over 6 s: {stack_losses}; lost {after:?}"
    );
    // The C spin and the vDSO clock reads under it give a few hundred distinct leaf stacks per
    // generation (200 ms), whose hashes collide now and then in 4096 buckets (~k^2/8192 per
    // generation: 1-2% of samples here). A degraded map would lose nearly every stack.
    assert!(
        stack_losses <= 0.05 * fresh_samples as f64,
        "{before:?} -> {after:?}"
    );
    // Nothing else is lost on a quiet node with one process.
    for r in [
        "event_output",
        "aggregation_full",
        "thread_insert",
        "futex_stack_overflow",
    ] {
        assert_eq!(after[r], 0.0, "{r}: {after:?}");
    }

    w.signal(libc::SIGTERM);
    let (out, status) = w.wait_output(Duration::from_secs(20));
    assert!(status.success(), "{status}: {out}");
    let truth: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    eprintln!("workload: {truth}");
    // The workload's own count of distinct paths (distinct stacks) it went through.
    assert!(
        truth["churn_distinct_paths"].as_u64().unwrap() > DISTINCT,
        "{truth}"
    );
    assert!(truth["fresh_cgo_calls"].as_u64().unwrap() > 0, "{truth}");
    d.stop();
}
