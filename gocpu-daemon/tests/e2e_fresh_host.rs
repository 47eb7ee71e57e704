//! Root integration tests: the daemon starts on a host as freshly booted, whatever earlier work
//! left mounted. Each runs the real daemon in a private mount namespace (`unshare --mount
//! --propagation private`) where every tracefs and debugfs mount was undone first, so the result
//! does not depend on this machine's state, and checks that the host's mounts stay as they were.
#![allow(clippy::unwrap_used)]

mod support;

use std::{process::Command, time::Duration};

use gocpu_daemon::probes::tracefs::tracefs_mounts;
use gocpu_testkit::process::proc_cpu_seconds;
use support::{Daemon, capsh_dropping, pingpong, private_namespace, serial, wait_runtime_calls};

/// Mount points of every tracefs and debugfs in `pid`'s mount namespace, deepest first.
fn tracing_mounts(pid: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fs = right.split_whitespace().next()?;
            (fs == "tracefs" || fs == "debugfs").then(|| left.split_whitespace().nth(4))?
        })
        .map(str::to_string)
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.len()));
    out
}

/// A command prefix: a private mount namespace without tracefs or debugfs, `setup` run in it,
/// then the daemon exec'd through `launcher` (see [`private_namespace`]).
fn fresh_namespace(setup: &str, launcher: &str) -> Vec<String> {
    let unmount: String = tracing_mounts("self")
        .iter()
        .map(|m| format!("umount -l '{m}'; "))
        .collect();
    private_namespace(&format!("{unmount}{setup}"), launcher)
}

/// The pingpong workload, and what the daemon counts of it over 5 s against the kernel's own CPU
/// accounting (±20%, as in e2e_tracking).
fn assert_tracks(d: &Daemon, pid: u32) {
    let entry = d.wait_listed(pid);
    assert_eq!(entry["attach_state"], "attached", "{entry}");
    let oncpu = |d: &Daemon| {
        d.json(&format!("/processes/{pid}"))["totals"]["oncpu_seconds"]
            .as_f64()
            .unwrap()
    };
    std::thread::sleep(Duration::from_secs(1));
    let (cpu0, proc0) = (oncpu(d), proc_cpu_seconds(pid));
    std::thread::sleep(Duration::from_secs(5));
    let (cpu1, proc1) = (oncpu(d), proc_cpu_seconds(pid));
    let (ours, theirs) = (cpu1 - cpu0, proc1 - proc0);
    assert!(theirs > 0.5, "workload barely ran ({theirs} s)");
    assert!(
        (ours - theirs).abs() / theirs <= 0.20,
        "on-CPU {ours:.3} s vs /proc {theirs:.3} s\n{}",
        d.log_text()
    );
    wait_runtime_calls(d, pid);
}

#[test]
fn mounts_tracefs_where_none_is_and_only_in_its_own_namespace() {
    let _serial = serial();
    let w = pingpong(&["-pairs", "1", "-duration", "60s"]);
    let host = tracing_mounts("self");
    let d = Daemon::start_wrapped("", &fresh_namespace("", ""));
    let daemon_mounts =
        tracefs_mounts(&std::fs::read_to_string(format!("/proc/{}/mountinfo", d.pid())).unwrap());
    assert_eq!(
        daemon_mounts,
        vec![std::path::PathBuf::from("/sys/kernel/tracing")],
        "{}",
        d.log_text()
    );
    let v = d.json("/daemon");
    let pre = &v["preflight"];
    assert_eq!(pre["tracefs"]["path"], "/sys/kernel/tracing", "{v}");
    assert_eq!(pre["tracefs"]["mounted_by_gocpu"], true, "{v}");
    assert_eq!(pre["placement"]["environment"], "host", "{v}");
    assert!(d.log_text().contains("tracefs was not mounted; mounted it"));
    assert_tracks(&d, w.pid());
    assert_eq!(tracing_mounts("self"), host, "the host's mounts changed");
    d.stop();
    assert_eq!(tracing_mounts("self"), host, "the host's mounts changed");
}

#[test]
fn uses_tracefs_under_debugfs_as_it_is() {
    let _serial = serial();
    let w = pingpong(&["-pairs", "1", "-duration", "60s"]);
    let host = tracing_mounts("self");
    let d = Daemon::start_wrapped(
        "",
        &fresh_namespace("mount -t debugfs nodev /sys/kernel/debug;", ""),
    );
    let v = d.json("/daemon");
    assert_eq!(
        v["preflight"]["tracefs"]["path"], "/sys/kernel/debug/tracing",
        "{v}"
    );
    assert_eq!(v["preflight"]["tracefs"]["mounted_by_gocpu"], false, "{v}");
    let daemon_mounts =
        tracefs_mounts(&std::fs::read_to_string(format!("/proc/{}/mountinfo", d.pid())).unwrap());
    assert!(
        !daemon_mounts.contains(&"/sys/kernel/tracing".into()),
        "gocpu mounted a second tracefs: {daemon_mounts:?}"
    );
    assert_tracks(&d, w.pid());
    d.stop();
    assert_eq!(tracing_mounts("self"), host, "the host's mounts changed");
}

#[test]
fn a_start_up_failure_is_one_error_and_its_fix_without_a_backtrace() {
    let _serial = serial();
    gocpu_testkit::require_root("the start-up failure test");
    // No tracefs and no CAP_SYS_ADMIN to mount one: fatal, even with RUST_BACKTRACE set.
    let prefix = fresh_namespace("", &capsh_dropping("cap_sys_admin"));
    let out = Command::new(&prefix[0])
        .args(&prefix[1..])
        .arg(env!("CARGO_BIN_EXE_gocpu"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("gocpu:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with("gocpu: cannot start: tracefs")
            && errors[0].contains("CAP_SYS_ADMIN"),
        "{stderr}"
    );
    assert!(
        stderr.contains("  fix: ") && stderr.contains("mount -t tracefs nodev /sys/kernel/tracing"),
        "{stderr}"
    );
    for noise in ["backtrace", "panicked", "Stack", "ERROR"] {
        assert!(!stderr.contains(noise), "{noise:?} in:\n{stderr}");
    }
}
