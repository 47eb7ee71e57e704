//! Root integration tests of the per-process API beyond /processes: hotspots name the culprit,
//! threads have roles and CPU that agree with procfs.
#![allow(clippy::unwrap_used)]

mod support;

use std::{collections::HashMap, time::Duration};

use gocpu_testkit::{Variant, build, go_bin_series, process::KillOnDrop, workload};
use serde_json::Value;
use support::{Daemon, hotspot_functions, serial, spawn};

/// utime + stime of every thread of `pid`, in seconds, by tid.
fn task_cpu(pid: u32) -> HashMap<u32, f64> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some((tid, ticks / hz))
        })
        .collect()
}

fn thread_cpu(doc: &Value) -> HashMap<u32, f64> {
    doc["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| Some((t["tid"].as_u64()? as u32, t["cpu_seconds"].as_f64()?)))
        .collect()
}

/// The daemon's per-thread CPU, procfs's, and the daemon's document, read while `pid` is
/// stopped for longer than a poll: the daemon's figures are as of its last poll and procfs's as
/// of now, which only agree when nothing runs in between.
fn threads_while_stopped(d: &Daemon, pid: u32) -> (HashMap<u32, f64>, HashMap<u32, f64>, Value) {
    let signal = |sig| {
        // SAFETY: kill has no memory preconditions; pid is this test's own child.
        assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0, "kill {pid}");
    };
    signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(2500));
    let doc = d.json(&format!("/processes/{pid}/threads"));
    let theirs = task_cpu(pid);
    signal(libc::SIGCONT);
    (thread_cpu(&doc), theirs, doc)
}

#[test]
fn per_thread_cpu_matches_procfs_and_roles_are_named() {
    let _serial = serial();
    let d = Daemon::start("");
    let bin = build(
        &go_bin_series("1.25"),
        &workload("gcpressure"),
        Variant::Default,
    );
    // GOMAXPROCS 4: the runtime then runs one dedicated mark worker (a quarter of the Ps) for
    // the whole mark phase, so one thread at a time is mostly GC. With 2 it runs fractional
    // workers only, this workload's GC is then mostly assists spread over the allocating
    // threads, and no thread's top class is GC in most windows (seen in clean-clone CI).
    let p = KillOnDrop::spawn(
        std::process::Command::new(&bin)
            .args(["-goroutines", "2", "-duration", "60s"])
            .env("GOMAXPROCS", "4"),
    );
    let pid = p.pid();
    d.wait_listed(pid);
    std::thread::sleep(Duration::from_secs(2));
    let (ours0, theirs0, _) = threads_while_stopped(&d, pid);
    std::thread::sleep(Duration::from_secs(5));
    // Roles come from what threads did over the window: read them while the workload runs.
    let running = d.json(&format!("/processes/{pid}/threads"));
    let (ours1, theirs1, doc) = threads_while_stopped(&d, pid);
    let mut checked = 0;
    for (tid, t1) in &theirs1 {
        let theirs = t1 - theirs0.get(tid).copied().unwrap_or(0.0);
        if theirs < 0.5 {
            continue; // too little CPU for 10 ms ticks to be precise within 10%
        }
        let ours = ours1.get(tid).copied().unwrap_or(0.0) - ours0.get(tid).copied().unwrap_or(0.0);
        let err = (ours - theirs).abs() / theirs;
        assert!(
            err <= 0.10,
            "tid {tid}: {ours:.3} s vs procfs {theirs:.3} s ({:.1}% off)\n{doc}",
            err * 100.0
        );
        checked += 1;
    }
    assert!(
        checked >= 1,
        "no thread used enough CPU to compare: {theirs1:?}"
    );
    let roles_of = |doc: &serde_json::Value| -> Vec<String> {
        doc["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["role"].as_str().unwrap().to_string())
            .collect()
    };
    // A role is the thread's top class over the window. The dedicated mark worker's P can move
    // between Ms from one GC cycle to the next: read the roles a second apart for up to 15 s.
    let mut roles = roles_of(&running);
    for _ in 0..15 {
        if roles.iter().any(|r| r == "gc_worker") && roles.iter().any(|r| r == "sysmon") {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        roles = roles_of(&d.json(&format!("/processes/{pid}/threads")));
    }
    assert!(roles.iter().any(|r| r == "gc_worker"), "{roles:?}");
    assert!(roles.iter().any(|r| r == "sysmon"), "{roles:?}");
    d.stop();
}

#[test]
fn hotspots_name_the_culprit() {
    let _serial = serial();
    let d = Daemon::start("");
    let tc = go_bin_series("1.25");
    let compute = spawn(
        &build(&tc, &workload("compute"), Variant::Stripped),
        &["-goroutines", "1", "-duration", "60s"],
    );
    let cgo = spawn(
        &build(&tc, &workload("cgospin"), Variant::Default),
        &["-goroutines", "1", "-duration", "60s"],
    );
    let storm = spawn(
        &build(&tc, &workload("schedstorm"), Variant::Default),
        &["-mode", "pingpong", "-duration", "60s"],
    );
    for p in [&compute, &cgo, &storm] {
        d.wait_listed(p.pid());
    }
    std::thread::sleep(Duration::from_secs(7));
    let hot = |pid: u32| d.json(&format!("/processes/{pid}/hotspots?seconds=5&top=15"));

    // Healthy compute, stripped binary: the hashing function, with its file:line.
    let v = hot(compute.pid());
    let top = &v["hotspots"]["by_cumulative"].as_array().unwrap();
    let hash = top
        .iter()
        .find(|h| h["function"] == "main.hashLoop")
        .unwrap_or_else(|| panic!("{v}"));
    assert!(hash["cumulative_share"].as_f64().unwrap() > 0.8, "{v}");
    assert_eq!(hash["class"], "user");
    assert!(v["verdict"]["flags"].as_array().unwrap().is_empty(), "{v}");

    // cgo spin: the C function's frame (named from the ELF symbols) and its Go caller.
    let v = hot(cgo.pid());
    let by_self = hotspot_functions(&v, "by_self");
    assert!(by_self[0].starts_with("gocpu_cgo_spin"), "{by_self:?}");
    assert!(
        hotspot_functions(&v, "by_cumulative")
            .iter()
            .any(|n| n.starts_with("main.")),
        "{v}"
    );
    assert_eq!(v["hotspots"]["by_self"][0]["class"], "cgo", "{v}");

    // Scheduler storm: the runtime's scheduler and channel machinery, and the Go code causing it.
    let v = hot(storm.pid());
    let cum = hotspot_functions(&v, "by_cumulative");
    assert!(
        cum.iter().any(|n| n == "runtime.selectgo"
            || n == "runtime.findRunnable"
            || n == "runtime.park_m"
            || n == "runtime.schedule"),
        "{cum:?}"
    );
    assert!(cum.iter().any(|n| n.starts_with("main.")), "{cum:?}");

    // Text rendering for humans.
    let text = d.get(&format!(
        "/processes/{}/hotspots?format=text",
        compute.pid()
    ));
    assert_eq!(text.status, 200);
    assert!(
        text.content_type
            .unwrap_or_default()
            .starts_with("text/plain")
    );
    assert!(text.body.contains("main.hashLoop"), "{}", text.body);
    d.stop();
}

#[test]
fn api_contract_errors_are_4xx_json() {
    let _serial = serial();
    let d = Daemon::start("");
    let p = spawn(
        &build(&go_bin_series("1.25"), &workload("idle"), Variant::Default),
        &["-duration", "60s"],
    );
    let pid = p.pid();
    d.wait_listed(pid);
    for (path, status, needle) in [
        (
            format!("/processes/{pid}/hotspots?seconds=0"),
            400,
            "seconds",
        ),
        (
            format!("/processes/{pid}/hotspots?seconds=999999"),
            400,
            "seconds",
        ),
        (
            format!("/processes/{pid}/hotspots?seconds=abc"),
            400,
            "seconds",
        ),
        (format!("/processes/{pid}/hotspots?top=0"), 400, "top"),
        (
            format!("/processes/{pid}/hotspots?format=xml"),
            400,
            "format",
        ),
        (format!("/processes/{pid}/hotspots?bogus=1"), 400, "bogus"),
        ("/processes/abc/hotspots".to_string(), 400, "pid"),
        ("/processes/".to_string(), 404, "endpoint"),
        ("/processes//threads".to_string(), 400, "pid"),
        ("/processes/-3/threads".to_string(), 400, "pid"),
        ("/processes/4194304/hotspots".to_string(), 404, "4194304"),
        ("/processes/1/threads".to_string(), 404, "1"),
    ] {
        let r = d.get(&path);
        assert_eq!(r.status, status, "{path}: {}", r.body);
        let v: Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|_| panic!("{path}: not JSON: {}", r.body));
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{path}: {v}"
        );
    }
    d.stop();
}

#[test]
fn pprof_export_opens_in_go_tool_pprof_and_the_flame_graph_renders() {
    let _serial = serial();
    let d = Daemon::start("");
    let tc = go_bin_series("1.25");
    let p = spawn(
        &build(&tc, &workload("compute"), Variant::Stripped),
        &["-goroutines", "1", "-duration", "60s"],
    );
    let pid = p.pid();
    d.wait_listed(pid);
    std::thread::sleep(Duration::from_secs(6));
    let ours = d.json(&format!("/processes/{pid}/hotspots?seconds=5"));
    let r = d.get(&format!("/processes/{pid}/pprof?seconds=5"));
    assert_eq!(r.status, 200, "{}", r.body);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cpu.pb.gz");
    std::fs::write(&file, &r.bytes).unwrap();
    let top = tc.tool(
        "pprof",
        &[
            "-top",
            "-symbolize=none",
            "-nodecount=5",
            &file.to_string_lossy(),
        ],
    );
    // The first row after the header names the top function by flat samples.
    let rows: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .collect();
    let first = rows.first().unwrap_or_else(|| panic!("no rows in:\n{top}"));
    let theirs = first.split_whitespace().last().unwrap();
    let mine = ours["hotspots"]["by_self"][0]["function"].as_str().unwrap();
    assert_eq!(
        theirs, mine,
        "go tool pprof -top:\n{top}\nours: {}",
        ours["hotspots"]
    );
    assert!(top.contains("main.hashLoop"), "{top}");

    let svg = d.get(&format!("/processes/{pid}/flamegraph.svg?seconds=5"));
    assert_eq!(svg.status, 200);
    assert_eq!(svg.content_type.as_deref(), Some("image/svg+xml"));
    assert!(
        svg.body.contains("<svg") && svg.body.contains("main.hashLoop"),
        "{}",
        &svg.body[..200.min(svg.body.len())]
    );
    // Coloured by class: the user class colour fills main.hashLoop's frames.
    assert!(
        svg.body.contains("rgb(76,154,42)"),
        "no user-class fill in the SVG"
    );
    d.stop();
}

#[test]
fn metrics_pass_promtool_and_cardinality_stays_per_process() {
    let _serial = serial();
    let d = Daemon::start("");
    let tc = go_bin_series("1.25");
    let p = spawn(
        &build(&tc, &workload("schedstorm"), Variant::Default),
        &["-duration", "60s"],
    );
    d.wait_listed(p.pid());
    std::thread::sleep(Duration::from_secs(3));
    let m = d.get("/metrics");
    assert!(
        m.content_type
            .unwrap_or_default()
            .starts_with("text/plain; version=0.0.4")
    );
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian prometheus package; `cargo xtask setup` installs it)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), m.body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Bounded cardinality: no thread or function-name labels (those live in the API).
    for line in m.body.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.contains("tid=") && !line.contains("thread="),
            "per-thread series: {line}"
        );
    }
    let per_pid = m
        .body
        .lines()
        .filter(|l| l.contains(&format!("pid=\"{}\"", p.pid())))
        .count();
    assert!(
        per_pid > 10 && per_pid < 80,
        "{per_pid} series for one process"
    );
    d.stop();
}

#[test]
fn inspect_cli_prints_the_report_and_fails_clearly() {
    let _serial = serial();
    let d = Daemon::start("");
    let p = spawn(
        &build(
            &go_bin_series("1.25"),
            &workload("compute"),
            Variant::Default,
        ),
        &["-goroutines", "1", "-duration", "60s"],
    );
    d.wait_listed(p.pid());
    std::thread::sleep(Duration::from_secs(4));
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gocpu"))
            .arg("inspect")
            .args(args)
            .args(["--addr", &d.addr.to_string()])
            .output()
            .unwrap()
    };
    let out = run(&[&p.pid().to_string(), "--seconds", "3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "state: busy",
        "split: user",
        "main.hashLoop",
        "runtime calls:",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let out = run(&["1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.stop();
}
