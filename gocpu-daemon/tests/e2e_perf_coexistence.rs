//! Root integration test: gocpu's syscall tracepoint programs leave the events to the other
//! perf users of the node. A BPF program returning 0 on a tracepoint drops the event for every
//! perf consumer of it, and aya's `#[tracepoint]` entry returns 0 whatever the body says: while
//! gocpu was attached, `perf stat -e syscalls:sys_enter_futex` counted nothing at all. Here the
//! syscall group stays attached (ungoverned) and perf's count of the tracepoint must equal its
//! count of the same calls through `raw_syscalls:sys_enter`, which gocpu does not use, over the
//! same 3 s.
#![allow(clippy::unwrap_used)]

mod support;

use std::{
    process::{Command, Stdio},
    thread,
};

use support::{Daemon, pingpong, serial, wait_runtime_calls};

/// `perf stat` of `event` (with `filter`) for `pid` over 3 s; the count.
fn perf_count(pid: u32, event: &str, filter: Option<&str>) -> u64 {
    let mut cmd = Command::new("perf");
    cmd.args(["stat", "-x,", "-p", &pid.to_string(), "-e", event]);
    if let Some(f) = filter {
        cmd.args(["--filter", f]);
    }
    let out = cmd
        .args(["--", "sleep", "3"])
        .stdout(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("perf (Debian's linux-perf) cannot run: {e}"));
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.lines()
        .find(|l| l.contains(event))
        .and_then(|l| l.split(',').next()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count for {event} in perf's output:\n{text}"))
}

#[test]
fn perf_sees_every_syscall_event_while_gocpu_is_attached() {
    let _g = serial();
    let d = Daemon::start("probes:\n  budget:\n    governed: false\n");
    let w = pingpong(&["-pairs", "2"]);
    d.wait_listed(w.pid());
    wait_runtime_calls(&d, w.pid());
    let pid = w.pid();
    let tp = thread::spawn(move || perf_count(pid, "syscalls:sys_enter_futex", None));
    let raw = perf_count(pid, "raw_syscalls:sys_enter", Some("id == 202"));
    let tp = tp.join().unwrap();
    let after = d.json(&format!("/processes/{}", w.pid()));
    // gocpu's own program counted these calls meanwhile, attached throughout.
    let waits = after["futex"]["wait_per_second"].as_f64().unwrap_or(0.0);
    assert!(waits > 100.0, "{after}");
    assert!(raw > 1000, "pingpong made only {raw} futex calls in 3 s");
    let ratio = tp as f64 / raw as f64;
    assert!(
        (0.99..=1.01).contains(&ratio),
        "perf counted {tp} syscalls:sys_enter_futex events but {raw} futex syscalls"
    );
    d.stop();
}
