//! Root integration test: SIGTERM leaves the system's BPF and uprobe state as it found it.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use gocpu_testkit::{Variant, build, go_bin_series, workload};
use support::{Daemon, serial, spawn};

fn link_ids() -> BTreeSet<u32> {
    aya::programs::loaded_links()
        .map(|l| l.unwrap().id())
        .collect()
}

/// The links loaded once at least `n` more than `before` are (or after 10 s): the governors
/// attach their hooks in their first run, just after the process is listed.
fn wait_for_links(before: &BTreeSet<u32>, n: usize) -> BTreeSet<u32> {
    let mut now = link_ids();
    for _ in 0..100 {
        if now.difference(before).count() >= n {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        now = link_ids();
    }
    now
}

fn program_ids() -> BTreeSet<u32> {
    aya::programs::loaded_programs()
        .map(|p| p.unwrap().id())
        .collect()
}

fn map_ids() -> BTreeSet<u32> {
    aya::maps::loaded_maps().map(|m| m.unwrap().id()).collect()
}

fn uprobe_events() -> String {
    std::fs::read_to_string("/sys/kernel/tracing/uprobe_events").unwrap_or_default()
}

#[test]
fn sigterm_detaches_every_probe_and_releases_every_bpf_object() {
    let _serial = serial();
    gocpu_testkit::require_root("the shutdown test");
    let bin = build(
        &go_bin_series("1.25"),
        &workload("pingpong"),
        Variant::Default,
    );
    let workload = spawn(&bin, &["-pairs", "1", "-duration", "60s"]);
    let (links0, progs0, maps0, up0) = (link_ids(), program_ids(), map_ids(), uprobe_events());

    // Ungoverned, every hook stays attached, so SIGTERM has all of them to undo (governed, a
    // hook over budget is detached 10 ms after each attach and may or may not be up).
    let d = Daemon::start("probes:\n  budget:\n    governed: false\n");
    let entry = d.wait_listed(workload.pid());
    assert_eq!(entry["attach_state"], "attached", "{entry}");
    let cpus = aya::util::online_cpus().unwrap().len();
    // 4 sched tracepoints + one CPU clock per CPU + 3 syscall tracepoints + 3 uprobes.
    let expected = 4 + cpus + 3 + 3;
    let running = wait_for_links(&links0, expected);
    assert!(
        running.difference(&links0).count() >= expected,
        "expected the daemon's {expected} links to be visible while it runs: {running:?} vs {links0:?}"
    );
    let progs = program_ids();
    assert!(
        progs.difference(&progs0).count() >= 7,
        "expected the daemon's programs while it runs: {progs:?} vs {progs0:?}"
    );
    let log = d.stop();
    assert!(log.contains("all probes detached"), "{log}");

    // The kernel frees programs and maps asynchronously (RCU, work queues) after the last fd
    // closes: give it a moment, then demand exactly the state from before.
    let settled = (0..100).any(|_| {
        let same = link_ids() == links0 && program_ids() == progs0 && map_ids() == maps0;
        if !same {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        same
    });
    assert!(
        settled,
        "BPF state did not return to the pre-start state within 10 s"
    );
    assert_eq!(link_ids(), links0, "BPF links left behind");
    assert_eq!(program_ids(), progs0, "BPF programs left behind");
    assert_eq!(map_ids(), maps0, "BPF maps left behind");
    assert_eq!(uprobe_events(), up0, "uprobe events left behind");
    // The observed process survived it all.
    let (_, status) = {
        workload.signal(15);
        workload.wait_output(std::time::Duration::from_secs(10))
    };
    assert!(status.success());
}
