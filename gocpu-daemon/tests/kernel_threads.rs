//! Root integration test: the scheduler hooks follow a thread of a tracked process from its
//! first switch to its exit, with this kernel's `sched_switch` program and with the one for
//! kernels before 5.18 (which a newer kernel also accepts), on this test's own threads.
#![allow(clippy::unwrap_used)]

use std::{sync::mpsc, time::Duration};

use gocpu_common::ThreadStats;
use gocpu_daemon::{
    config::Config,
    preflight::KernelVersion,
    probes::loader::{AggregateMaps, HostSetup, KernelProbes, sched_switch_program},
};

/// Naps the worker takes, each a blocking switch.
const NAPS: u64 = 20;
const NAP: Duration = Duration::from_millis(5);

fn entry(aggs: &mut AggregateMaps, tid: u32) -> Option<ThreadStats> {
    aggs.threads()
        .into_iter()
        .find(|(t, _)| *t == tid)
        .map(|(_, s)| s)
}

#[test]
fn threads_are_followed_from_first_switch_to_exit() {
    gocpu_testkit::require_root("the kernel thread-state test");
    let config = Config::parse_overlay(None, "test").unwrap();
    for kernel in [None, Some(KernelVersion(5, 15, 0))] {
        let program = sched_switch_program(kernel);
        let host = HostSetup {
            kernel,
            ..HostSetup::detect(&config).unwrap()
        };
        let mut kp = KernelProbes::load(&config, &host)
            .unwrap_or_else(|e| panic!("{program}: loading the kernel side failed: {e}"));
        let me = std::process::id();
        let cpus = aya::util::nr_cpus().unwrap();
        kp.track(me, cpus).unwrap();
        let mut aggs = kp.take_aggregates().unwrap();

        // A worker blocks NAPS times, says who it is, and waits to be let go.
        let (tid_tx, tid_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            for _ in 0..NAPS {
                std::thread::sleep(NAP);
            }
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() } as u32).unwrap();
            go_rx.recv().unwrap();
        });
        let tid = tid_rx.recv().unwrap();
        let s = entry(&mut aggs, tid).unwrap_or_else(|| panic!("{program}: no entry for {tid}"));
        assert_eq!((s.tgid, s.tid), (me, tid), "{program}: {s:?}");
        assert!(s.voluntary_switches >= NAPS, "{program}: {s:?}");
        let napped = (NAP * NAPS as u32).as_nanos() as u64;
        assert!(
            s.blocked_ns >= napped * 9 / 10,
            "{program}: blocked {} ns, napped {napped} ns: {s:?}",
            s.blocked_ns
        );
        assert!(s.oncpu_ns > 0, "{program}: {s:?}");

        // The entry goes at the thread's last switch, which may come just after join returns
        // (the joiner is woken from inside the exit path).
        go_tx.send(()).unwrap();
        worker.join().unwrap();
        let gone = (0..100).any(|_| {
            let gone = entry(&mut aggs, tid).is_none();
            if !gone {
                std::thread::sleep(Duration::from_millis(10));
            }
            gone
        });
        assert!(gone, "{program}: the exited thread {tid} kept its entry");
        // The process's own counters saw the same switches.
        let total = kp.procs.get(&me, 0).unwrap();
        let blocked: u64 = total.iter().map(|p| p.blocked_ns).sum();
        assert!(
            blocked >= napped * 9 / 10,
            "{program}: process blocked {blocked} ns"
        );
    }
}
