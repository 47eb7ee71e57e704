//! Root integration tests: the daemon run with exactly the capabilities the default overlay's
//! DaemonSet grants (read from the manifests kubectl renders, applied with capsh as root: the
//! bounding set is cut to them, so root's exec keeps only those) attaches every uprobe, counts
//! the runtime's calls, measures its own cost, and its start-up report says what really
//! happened. Preflight's opinion alone is not evidence.
#![allow(clippy::unwrap_used)]

mod support;

use std::{collections::BTreeSet, process::Command, time::Duration};

use gocpu_testkit::rendered_overlay;
use serde::Deserialize;
use support::{
    Daemon, capsh_dropping,
    metrics::{metrics, program_series},
    pingpong, private_namespace, serial, wait, wait_runtime_calls,
};

/// The gocpu container's added capabilities in the rendered default overlay, as capsh names
/// them (`cap_bpf`, ...); its `drop` must be ALL, or the list would not be the whole set.
fn manifest_caps() -> BTreeSet<String> {
    let text = rendered_overlay("default");
    for doc in serde_norway::Deserializer::from_str(&text) {
        let v = serde_norway::Value::deserialize(doc).unwrap();
        if v["kind"] != "DaemonSet" {
            continue;
        }
        let caps =
            &v["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"];
        assert_eq!(caps["drop"][0], "ALL", "{caps:?}");
        return caps["add"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| format!("cap_{}", c.as_str().unwrap().to_ascii_lowercase()))
            .collect();
    }
    panic!("no DaemonSet in the rendered default overlay");
}

/// Every capability this kernel knows, by libcap's names.
fn all_caps() -> BTreeSet<String> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    decode(&format!("{:x}", (1u64 << (last + 1)) - 1))
}

/// libcap's decoding of a capability mask (as /proc prints it).
fn decode(hex: &str) -> BTreeSet<String> {
    let out = Command::new("capsh")
        .arg(format!("--decode={hex}"))
        .output()
        .expect("capsh (libcap2-bin, installed by cargo xtask setup)");
    let text = String::from_utf8(out.stdout).unwrap();
    let names = text.trim().split_once('=').unwrap().1;
    names.split(',').map(str::to_string).collect()
}

/// A command prefix running the daemon with exactly `keep`: a private mount namespace where
/// tracefs is mounted at /sys/kernel/tracing (the pod's hostPath mount of the node's), then
/// capsh dropping every other capability from the bounding set before the exec.
fn with_only(keep: &BTreeSet<String>) -> Vec<String> {
    let drop: Vec<String> = all_caps().difference(keep).cloned().collect();
    private_namespace(
        "mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing;",
        &capsh_dropping(&drop.join(",")),
    )
}

/// The daemon process's effective capabilities, decoded by libcap.
fn effective(pid: u32) -> BTreeSet<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim()
        .to_string();
    decode(&hex)
}

#[test]
fn the_daemonsets_capabilities_attach_every_uprobe_and_time_every_program() {
    let _serial = serial();
    let keep = manifest_caps();
    let w = pingpong(&["-pairs", "1", "-duration", "60s"]);
    let d = Daemon::start_wrapped("", &with_only(&keep));
    assert_eq!(effective(d.pid()), keep, "capsh did not apply the set");
    let log = || d.log_text();

    // Every hook of the binary attached (no failure) and measured at least once.
    let pid = w.pid();
    d.wait_listed(pid);
    let hooks = wait("every hook measured", Duration::from_secs(20), || {
        let v = d.json(&format!("/processes/{pid}"));
        let hooks = v["probes"].as_array()?.clone();
        let measured = hooks.len() == 4 && hooks.iter().all(|h| !h["duty"].is_null());
        let failed = hooks.iter().any(|h| h["state"] != "governed");
        assert!(
            !failed,
            "a hook failed under {keep:?}: {hooks:?}\n{}",
            log()
        );
        measured.then_some(hooks)
    });
    let functions: BTreeSet<&str> = hooks
        .iter()
        .map(|h| h["function"].as_str().unwrap())
        .collect();
    assert_eq!(
        functions,
        BTreeSet::from([
            "runtime.cgocall",
            "runtime.futex",
            "runtime.mcall",
            "runtime.usleep"
        ])
    );
    // Counts of the runtime's calls grow.
    wait_runtime_calls(&d, pid);
    // Calibration went the same way.
    assert!(log().contains("uprobe hit cost calibrated"), "{}", log());

    // The report says what worked.
    let v = d.json("/daemon");
    let pre = &v["preflight"];
    assert_eq!(decode(pre["effective"].as_str().unwrap()), keep, "{v}");
    assert_eq!(pre["uprobes"]["path"], "multi_link", "{v}");
    assert_eq!(pre["uprobes"]["usable"], true, "{v}");
    assert_eq!(v["uprobe_path"], "multi_link", "{v}");
    assert_eq!(pre["bpf_stats"], "self_timed", "{v}");
    assert_eq!(v["bpf_stats"], "self_timed", "{v}");
    let bad: Vec<&serde_json::Value> = pre["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .collect();
    assert!(bad.is_empty(), "{bad:?}");

    // Self-cost: the programs' own timing, non-zero, labelled with its source.
    let m = metrics(&d);
    for program in ["sched_switch", "runtime_mcall"] {
        let series = program_series(&m, "gocpu_bpf_program_run_seconds_total", program)
            .unwrap_or_else(|| panic!("no run time of {program}"));
        assert_eq!(series.labels["source"], "self_timed");
        assert!(series.value > 0.0, "{program}: {series:?}");
    }
    let info = m.iter().find(|s| s.name == "gocpu_daemon_info").unwrap();
    assert_eq!(info.labels["uprobe_attach"], "multi_link");
    assert_eq!(info.labels["bpf_stats"], "self_timed");
    d.stop();
}

/// The perf-event path, forced where multi links would be taken: as root it attaches and counts
/// (the fallback kernels before 6.6 get); under the DaemonSet's set the kernel refuses it
/// (EACCES: CAP_SYS_ADMIN), and the start-up report says so before any hook tries.
#[test]
fn perf_event_uprobes_work_as_root_and_are_refused_under_the_daemonsets_set() {
    let _serial = serial();
    let w = pingpong(&["-pairs", "1", "-duration", "60s"]);
    let pid = w.pid();
    let perf = "probes:\n  uprobe_attach: perf_event\n";

    let d = Daemon::start(perf);
    d.wait_listed(pid);
    let v = d.json("/daemon");
    assert_eq!(v["uprobe_path"], "perf_event", "{v}");
    assert_eq!(v["preflight"]["uprobes"]["usable"], true, "{v}");
    wait_runtime_calls(&d, pid);
    d.stop();

    let d = Daemon::start_wrapped(perf, &with_only(&manifest_caps()));
    d.wait_listed(pid);
    let v = d.json("/daemon");
    assert_eq!(v["preflight"]["uprobes"]["path"], "perf_event", "{v}");
    assert_eq!(v["preflight"]["uprobes"]["usable"], false, "{v}");
    let refused = v["preflight"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["severity"] == "degraded")
        .unwrap_or_else(|| panic!("no degraded finding: {v}"));
    let problem = refused["problem"].as_str().unwrap();
    assert!(
        problem.contains("perf-event uprobe was refused") && problem.contains("CAP_SYS_ADMIN"),
        "{refused}"
    );
    // And the hooks fail as the report said they would.
    let hooks = wait("hooks tried", Duration::from_secs(15), || {
        let v = d.json(&format!("/processes/{pid}"));
        let hooks = v["probes"].as_array()?.clone();
        hooks
            .iter()
            .all(|h| h["state"] == "failed")
            .then_some(hooks)
    });
    assert!(
        hooks.iter().all(|h| h["reason"]
            .as_str()
            .unwrap_or("")
            .contains("Permission denied")),
        "{hooks:?}"
    );
    d.stop();
}

/// Sets `kernel.bpf_stats_enabled` for as long as it lives, then puts back what was there.
struct NodeStats(String);

impl NodeStats {
    const PATH: &str = "/proc/sys/kernel/bpf_stats_enabled";

    fn set(value: &str) -> NodeStats {
        let old = std::fs::read_to_string(Self::PATH).unwrap();
        std::fs::write(Self::PATH, value).unwrap();
        NodeStats(old.trim().to_string())
    }
}

impl Drop for NodeStats {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, &self.0);
    }
}

#[test]
fn where_the_node_keeps_bpf_statistics_the_daemonset_uses_them() {
    let _serial = serial();
    let keep = manifest_caps();
    let _node = NodeStats::set("1");
    let w = pingpong(&["-pairs", "1", "-duration", "30s"]);
    let d = Daemon::start_wrapped("", &with_only(&keep));
    d.wait_listed(w.pid());
    let v = d.json("/daemon");
    assert_eq!(v["preflight"]["bpf_stats"], "kernel", "{v}");
    assert_eq!(v["bpf_stats"], "kernel", "{v}");
    let runs = wait(
        "sched_switch timed by the kernel",
        Duration::from_secs(10),
        || {
            let m = metrics(&d);
            let s = program_series(&m, "gocpu_bpf_program_run_seconds_total", "sched_switch")?;
            assert_eq!(s.labels["source"], "kernel", "{s:?}");
            (s.value > 0.0).then_some(s.value)
        },
    );
    assert!(runs > 0.0);
    d.stop();
}

#[test]
fn without_cap_bpf_it_does_not_start_and_says_what_to_grant() {
    let _serial = serial();
    gocpu_testkit::require_root("the capability test");
    let mut keep = manifest_caps();
    assert!(keep.remove("cap_bpf"));
    let prefix = with_only(&keep);
    let out = Command::new(&prefix[0])
        .args(&prefix[1..])
        .arg(env!("CARGO_BIN_EXE_gocpu"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("gocpu: cannot start: missing CAP_BPF"),
        "{stderr}"
    );
    assert!(
        stderr.contains("fix: ") && stderr.contains("CAP_BPF"),
        "{stderr}"
    );
}
