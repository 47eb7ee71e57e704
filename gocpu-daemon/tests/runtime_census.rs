//! The goroutine census read from outside, against the program's own count.
//!
//! `goroutineleak` leaks goroutines blocked on "chan receive" up to `-max`, then stays still;
//! at SIGTERM it prints `runtime.NumGoroutine()` (read before it releases them) and how many it
//! leaked. Read from outside while it is still, the census's user goroutines must equal the
//! runtime's own count and "chan receive" must hold exactly the leaked ones — on every test
//! toolchain, with symbols, stripped (code anchors, table offsets) and as a PIE (load bias).
//! With a steady leak rate, the growth window's slope must match `-rate`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod runtime_support;

use std::time::{Duration, Instant};

use gocpu_daemon::runtime::{Census, GrowthWindow, read_census, read_sched};
use gocpu_testkit::{Variant, test_toolchains};
use runtime_support::{Target, retry};

const LEAK: u64 = 300;

fn user(c: &Census) -> u64 {
    c.named.as_ref().map(|n| n.user).unwrap_or(0)
}

#[test]
fn census_matches_num_goroutine_on_every_toolchain_and_variant() {
    let mut checked = 0;
    for tc in test_toolchains() {
        for variant in [Variant::Default, Variant::Stripped, Variant::Pie] {
            let t = Target::start(
                &tc,
                "goroutineleak",
                variant,
                &["-rate", "3000", "-max", &LEAK.to_string()],
                &[],
                Duration::from_millis(300),
            );
            // Wait until the leak is complete and two reads agree (the program is still).
            let mut last = None;
            let census = retry(Duration::from_secs(20), || {
                let c = read_census(&t.mem, &t.layout, t.bias).map_err(|e| e.to_string())?;
                let n = user(&c);
                let stable = last == Some(n) && n >= LEAK;
                last = Some(n);
                if stable {
                    Ok(c)
                } else {
                    Err(format!("{}: user {n}", t.label))
                }
            });
            // sched.goidgen (sched found independently of allgs) covers every goid seen.
            let goidgen = read_sched(&t.mem, &t.layout, t.bias)
                .unwrap()
                .goidgen
                .unwrap();
            assert!(
                census.max_goid <= goidgen && census.max_goid > LEAK,
                "{}: max goid {} vs sched.goidgen {goidgen}",
                t.label,
                census.max_goid
            );
            let label = t.label.clone();
            let named = census.named.clone().unwrap();
            // The leaked goroutines' start function, named from the binary: the `go`
            // statement's wrapper in main.main (main.main.func2, or gowrap2 since Go 1.21).
            let (&pc, &top) = named.by_start.iter().max_by_key(|(_, n)| **n).unwrap();
            let start_fn = t
                .binary
                .function_at_pc(pc)
                .map(|f| f.name)
                .unwrap_or_default();
            assert!(
                start_fn.starts_with("main.main."),
                "{label}: top start {start_fn}"
            );
            let truth = t.stop();
            let goroutines = truth["goroutines"].as_u64().unwrap();
            let leaked = truth["leaked_goroutines"].as_u64().unwrap();
            assert_eq!(leaked, LEAK, "{label}");
            assert_eq!(named.user, goroutines, "{label}: {named:?}");
            assert_eq!(named.live, named.user + named.system, "{label}");
            assert!(
                named.system >= 3,
                "{label}: system goroutines {}",
                named.system
            );
            assert_eq!(census.unreadable, 0, "{label}");
            assert_eq!(named.unknown_status, 0, "{label}");
            let chan = named
                .by_wait_reason
                .get("chan receive")
                .copied()
                .unwrap_or(0);
            assert_eq!(chan, leaked, "{label}: {:?}", named.by_wait_reason);
            let waiting: u64 = named.by_wait_reason.values().sum();
            assert!(
                chan * 10 > waiting * 9,
                "{label}: chan receive does not dominate"
            );
            assert_eq!(top, leaked, "{label}: goroutines started by {start_fn}");
            println!(
                "{label}: user {} = NumGoroutine {goroutines}, chan receive {chan}, system {}",
                named.user, named.system
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 15);
}

#[test]
fn growth_window_sees_the_leak_rate() {
    for tc in [
        test_toolchains().remove(0),
        test_toolchains().pop().unwrap(),
    ] {
        let rate = 200.0;
        let t = Target::start(
            &tc,
            "goroutineleak",
            Variant::Stripped,
            &["-rate", "200"],
            &[],
            Duration::from_millis(300),
        );
        let mut w = GrowthWindow::new(10.0);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            let c = read_census(&t.mem, &t.layout, t.bias).unwrap();
            w.push(start.elapsed().as_secs_f64(), user(&c));
            std::thread::sleep(Duration::from_millis(100));
        }
        let g = w.growth().unwrap();
        let label = t.label.clone();
        let truth = t.stop();
        let measured = truth["leaked_per_second"].as_f64().unwrap();
        println!(
            "{label}: slope {:.1}/s, program {measured:.1}/s, {g:?}",
            g.per_second
        );
        assert!(
            (g.per_second - rate).abs() < rate * 0.2,
            "{label}: slope {} vs -rate {rate}",
            g.per_second
        );
        assert!(g.rising_fraction > 0.5, "{label}: {g:?}");
    }
}
