//! The M list read from outside, against /proc/<pid>/task and the programs' ground truth.
//!
//! 1. A pure-Go program: every thread is an M, so the Ms' thread ids are exactly the tasks.
//! 2. `nativespin` (cgo): C pthreads spinning outside the runtime; their tids (JSON
//!    `native_tids`) are tasks but no M's, and tasks minus Ms is exactly that set.
//! 3. `cgospin` (cgo): a goroutine back to back in long C calls; some M is seen `incgo` without
//!    a P, and the Ms' cgo call counts add up to at most `runtime.NumCgoCall()` at exit.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod runtime_support;

use std::{collections::BTreeSet, time::Duration};

use gocpu_daemon::runtime::read_ms;
use gocpu_testkit::{Variant, test_toolchains};
use runtime_support::{Target, retry};

fn m_tids(t: &Target) -> Vec<gocpu_daemon::runtime::MInfo> {
    read_ms(&t.mem, &t.layout, t.bias).unwrap()
}

#[test]
fn pure_go_threads_are_exactly_the_ms() {
    for tc in test_toolchains() {
        for variant in [Variant::Default, Variant::Stripped, Variant::Pie] {
            let t = Target::start(
                &tc,
                "goroutineleak",
                variant,
                &["-rate", "100"],
                &[],
                Duration::from_millis(300),
            );
            let ms = retry(Duration::from_secs(10), || {
                let ms = m_tids(&t);
                let tids: BTreeSet<u32> = ms.iter().map(|m| m.tid).collect();
                if tids == t.tasks() {
                    Ok(ms)
                } else {
                    Err(format!("{}: Ms {tids:?} tasks {:?}", t.label, t.tasks()))
                }
            });
            let ids: BTreeSet<i64> = ms.iter().map(|m| m.id).collect();
            assert_eq!(ids.len(), ms.len(), "{}: duplicate m.id", t.label);
            assert!(ids.contains(&0), "{}: no m0", t.label);
            let m0 = ms.iter().find(|m| m.id == 0).unwrap();
            assert_eq!(m0.tid, t.child.pid(), "{}: m0 is the main thread", t.label);
            assert!(
                ms.iter().all(|m| !m.incgo && m.ncgocalls == 0),
                "{}",
                t.label
            );
            println!("{}: {} Ms = tasks", t.label, ms.len());
            drop(t.stop());
        }
    }
}

#[test]
fn native_threads_are_not_ms() {
    for tc in test_toolchains() {
        let t = Target::start(
            &tc,
            "nativespin",
            Variant::CgoExternal,
            &["-threads", "2"],
            &[],
            Duration::from_millis(500),
        );
        let (ms, tasks) = retry(Duration::from_secs(10), || {
            let ms = m_tids(&t);
            let tasks = t.tasks();
            let started: BTreeSet<u32> = ms.iter().map(|m| m.tid).filter(|&t| t != 0).collect();
            // Stable when two reads see the same threads.
            let again: BTreeSet<u32> = m_tids(&t)
                .iter()
                .map(|m| m.tid)
                .filter(|&t| t != 0)
                .collect();
            if again == started && started.is_subset(&tasks) {
                Ok((started, tasks))
            } else {
                Err(format!("{}: Ms {started:?} tasks {tasks:?}", t.label))
            }
        });
        let label = t.label.clone();
        let truth = t.stop();
        let native: BTreeSet<u32> = truth["native_tids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(native.len(), 2, "{label}");
        assert!(
            native.is_disjoint(&ms),
            "{label}: native {native:?} among Ms {ms:?}"
        );
        let not_ms: BTreeSet<u32> = tasks.difference(&ms).copied().collect();
        assert_eq!(not_ms, native, "{label}: tasks that are not Ms");
        println!(
            "{label}: {} Ms, native threads {native:?} not among them",
            ms.len()
        );
    }
}

#[test]
fn cgo_calls_show_incgo_ms() {
    for tc in test_toolchains() {
        let t = Target::start(
            &tc,
            "cgospin",
            Variant::CgoExternal,
            &["-goroutines", "1", "-call-ms", "200"],
            &[],
            Duration::from_millis(300),
        );
        // A cgo call enters a syscall keeping its P; sysmon hands the P off only after the
        // call has run for a sysmon tick or two (up to ~20 ms), so an M read early in a call
        // still has one. Within 200 ms calls, some read must see the M without it.
        let m = retry(Duration::from_secs(10), || {
            let ms = m_tids(&t);
            ms.iter()
                .find(|m| m.incgo && !m.has_p)
                .cloned()
                .ok_or_else(|| format!("{}: no M in cgo without a P: {ms:?}", t.label))
        });
        assert!(m.has_curg && m.ncgocalls >= 1, "{}: {m:?}", t.label);
        assert!(t.tasks().contains(&m.tid), "{}", t.label);
        let calls: u64 = m_tids(&t).iter().map(|m| m.ncgocalls).sum();
        let label = t.label.clone();
        let truth = t.stop();
        let total = truth["cgo_calls"].as_u64().unwrap();
        assert!(
            calls >= 1 && calls <= total,
            "{label}: Ms {calls}, NumCgoCall {total}"
        );
        println!(
            "{label}: M {} in cgo; Ms' cgo calls {calls} <= NumCgoCall {total}",
            m.id
        );
    }
}
