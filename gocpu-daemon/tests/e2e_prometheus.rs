//! The alerting path end to end with the real servers: a Prometheus server (Debian's
//! `prometheus`, loopback only) loads deploy/prometheus/rules.yaml and scrapes a live gocpu
//! while docs/pathologies.md row 1 (cgo spin) runs: GoProcessPseudoIdle reaches `firing` in
//! Prometheus's own /api/v1/alerts. With row 8 (healthy compute) as the control, busy enough to
//! pass the alert's CPU gate, it never even goes pending. Every dashboard query runs in that
//! Prometheus without error and the "CPU split by class" panel returns the cgo class.
//!
//! Time is compressed in the test copy of the rules, and only time: every `for:` becomes
//! [`FOR`] (the shipped GoProcessPseudoIdle waits 10 minutes) and every range window is divided
//! by [`TIME_SCALE`] (`[5m]` becomes `[15s]`), with scrapes and evaluations every second. The
//! windows must shrink too: `rate()` divides by the whole window, so over `[5m]` a series a
//! minute old shows a fifth of its real rate and would keep the CPU gate shut for minutes.
#![allow(clippy::unwrap_used)]

mod deploy_support;
mod support;

use std::{
    net::SocketAddr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use deploy_support::{dashboard, dashboard_queries, recorded_names, repo, substitute};
use gocpu_testkit::{
    Variant, build, debian_go, http,
    process::{KillOnDrop, free_port},
    workload,
};
use serde_json::Value;
use support::{Daemon, serial, spawn, wait};

/// `for:` of every rule in the test copy.
const FOR: &str = "5s";
/// Range windows of the test copy are the shipped ones divided by this.
const TIME_SCALE: u64 = 20;
/// How long each phase may take at most.
const BOUND: Duration = Duration::from_secs(60);
/// How long the control is watched once it passes the CPU gate (longer than FOR plus a few
/// evaluations).
const CONTROL_WATCH: Duration = Duration::from_secs(15);

struct Prometheus {
    addr: SocketAddr,
    /// Killed and reaped on drop.
    _child: KillOnDrop,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `prometheus` on loopback scraping `target` every second with the test copy of the
    /// rules, labelled like the PodMonitor labels targets (`node`).
    fn start(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let mut rules = deploy_support::rules();
        for g in rules["groups"].as_sequence_mut().unwrap() {
            for r in g["rules"].as_sequence_mut().unwrap() {
                if let Some(f) = r.get_mut("for") {
                    *f = FOR.into();
                }
                let expr = compress(r["expr"].as_str().unwrap());
                r["expr"] = expr.into();
            }
        }
        std::fs::write(
            dir.path().join("rules.yaml"),
            serde_norway::to_string(&rules).unwrap(),
        )
        .unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files: [rules.yaml]\n\
             scrape_configs:\n  - job_name: gocpu\n    static_configs:\n      - targets: ['{target}']\n        labels:\n          node: e2e-node\n"
        );
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config).unwrap();
        let check = Command::new("promtool")
            .arg("check")
            .arg("config")
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        Prometheus {
            addr,
            _child: support::prometheus::start(&cfg, dir.path(), addr, log.into()),
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path; its `data` on success.
    fn api(&self, path: &str) -> Result<Value, String> {
        let r = http::get(self.addr, path).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&r.body).map_err(|e| format!("{e}: {}", r.body))?;
        if v["status"] != "success" {
            return Err(format!("{path}: {}", r.body));
        }
        Ok(v["data"].clone())
    }

    /// An instant query's result vector.
    fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(expr)))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Active alerts (pending and firing) named `name`.
    fn alerts(&self, name: &str) -> Vec<Value> {
        self.api("/api/v1/alerts").unwrap()["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .cloned()
            .collect()
    }
}

/// `expr` with every range window `[<n><unit>]` divided by [`TIME_SCALE`] (at least 3 s).
fn compress(expr: &str) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let close = rest.find(']').unwrap();
        let window = &rest[..close];
        let (n, unit) = window.split_at(window.find(|c: char| !c.is_ascii_digit()).unwrap());
        let secs = n.parse::<u64>().unwrap()
            * match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                other => panic!("range unit {other} in {expr}"),
            };
        out.push_str(&format!("{}s", (secs / TIME_SCALE).max(3)));
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// Percent-encodes a query parameter (everything but unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn value(sample: &Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

/// The first query of the dashboard panel titled `title`, variables substituted, `$pid` set.
fn panel_query(title: &str, pid: u32) -> String {
    let d = dashboard();
    let mut stack = vec![&d["panels"]];
    while let Some(ps) = stack.pop() {
        for p in ps.as_array().into_iter().flatten() {
            if p["title"] == title {
                let expr = p["targets"][0]["expr"].as_str().unwrap();
                // What Grafana makes of $__rate_interval with a 1 s scrape interval (4 × 1 s,
                // at least step + scrape interval): a few seconds, like the compressed rules.
                let expr = expr
                    .replace("$pid", &pid.to_string())
                    .replace("$__rate_interval", "10s");
                return substitute(&expr);
            }
            stack.push(&p["panels"]);
        }
    }
    panic!("no panel {title:?} in the dashboard");
}

#[test]
fn pseudo_idle_alert_fires_in_prometheus_for_cgo_spin_and_not_for_compute() {
    let _serial = serial();
    let started = Instant::now();
    let d = Daemon::start("");
    let prom = Prometheus::start(d.addr);
    let ctx = |what: &str| {
        format!(
            "{what}\n--- prometheus log:\n{}\n--- gocpu log:\n{}",
            prom.log(),
            d.log_text()
        )
    };
    let tc = debian_go();
    let cgospin = build(&tc, &workload("cgospin"), Variant::Default);
    let compute = build(&tc, &workload("compute"), Variant::Default);
    // Scraped at all: Prometheus sees the daemon up.
    wait("gocpu up in Prometheus", BOUND, || {
        prom.query(r#"up{job="gocpu"} == 1"#)
            .ok()
            .filter(|r| !r.is_empty())
    });

    // Row 1: cgo spin, two goroutines (busy enough for the CPU gate on a shared 2-core box).
    let spin = spawn(&cgospin, &["-goroutines", "2", "-call-ms", "20"]);
    let pid = spin.pid().to_string();
    d.wait_listed(spin.pid());
    let t0 = Instant::now();
    let fired = wait_opt(BOUND, || {
        prom.alerts("GoProcessPseudoIdle")
            .into_iter()
            .find(|a| a["labels"]["pid"] == pid.as_str() && a["state"] == "firing")
    })
    .unwrap_or_else(|| {
        let seen = prom.query(&format!("{{pid=\"{pid}\",__name__=~\"gocpu_process_(flag|pseudo_idle_score|cpu_seconds_total)\"}}"));
        panic!("{}", ctx(&format!("GoProcessPseudoIdle never fired for cgospin (pid {pid}); its series: {seen:?}; alerts: {:?}", prom.alerts("GoProcessPseudoIdle"))))
    });
    eprintln!(
        "GoProcessPseudoIdle firing {:.1} s after cgospin started: {fired}",
        t0.elapsed().as_secs_f64()
    );
    let labels = &fired["labels"];
    // comm: the kernel's 15-byte copy of the executable's name.
    let exe = cgospin.file_name().unwrap().to_str().unwrap();
    assert_eq!(labels["comm"], &exe[..exe.len().min(15)], "{fired}");
    assert_eq!(labels["node"], "e2e-node", "{fired}");
    assert_eq!(labels["severity"], "warning", "{fired}");
    let score: f64 = fired["value"].as_str().unwrap().parse().unwrap();
    assert!(
        score >= 0.6,
        "the alert's value is the pseudo-idle score: {fired}"
    );
    assert!(
        fired["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains(&format!("/processes/{pid}/hotspots")),
        "{fired}"
    );
    // The cgo-specific alert agrees.
    wait("GoCgoSpin firing", BOUND, || {
        prom.alerts("GoCgoSpin")
            .into_iter()
            .find(|a| a["labels"]["pid"] == pid.as_str() && a["state"] == "firing")
    });

    // A dashboard panel's query returns data: the CPU split, dominated by cgo.
    let split = panel_query("CPU split by class (cores)", spin.pid());
    let rows = prom.query(&split).unwrap_or_else(|e| panic!("{}", ctx(&e)));
    let cgo = rows
        .iter()
        .find(|r| r["metric"]["class"] == "cgo")
        .unwrap_or_else(|| panic!("no cgo class in {rows:?}"));
    let total: f64 = rows.iter().map(value).sum();
    assert!(
        value(cgo) > 0.3 && value(cgo) >= 0.7 * total,
        "CPU split {rows:?}"
    );
    // Every dashboard query is valid PromQL for this Prometheus, and every metric the
    // dashboard and the rules name is one Prometheus has scraped or recorded.
    for q in dashboard_queries() {
        prom.query(&q.expr)
            .unwrap_or_else(|e| panic!("{}: {e}", q.origin));
    }
    let names: Vec<String> =
        serde_json::from_value(prom.api("/api/v1/label/__name__/values").unwrap()).unwrap();
    let recorded = recorded_names();
    for q in deploy_support::rule_queries()
        .into_iter()
        .chain(dashboard_queries())
    {
        for s in deploy_support::selectors(&q.expr).unwrap() {
            let known = names.contains(&s.metric) || recorded.contains(&s.metric);
            assert!(
                known,
                "{}: Prometheus has no series {} (scraped: {names:?})",
                q.origin, s.metric
            );
        }
    }
    spin.signal(15);
    let _ = spin.wait_output(Duration::from_secs(10));

    // Row 8: healthy compute at two goroutines. Watched once it is flagged (0) and past the
    // alert's CPU gate, so that the only thing keeping the alert quiet is the verdict.
    let work = spawn(&compute, &["-goroutines", "2"]);
    let cpid = work.pid().to_string();
    d.wait_listed(work.pid());
    let gate = format!(
        r#"gocpu_process_flag{{pid="{cpid}",flag="pseudo_idle"}} == 0 and on (instance, pid) rate(gocpu_process_cpu_seconds_total{{pid="{cpid}"}}[15s]) > 0.5"#
    );
    wait("compute judged and over the CPU gate", BOUND, || {
        prom.query(&gate).ok().filter(|r| !r.is_empty())
    });
    // Watched for longer than FOR: never pending, never firing. The gate is checked along:
    // had the verdict been pseudo_idle at any of those moments, the alert would have gone
    // pending, so the watch is not vacuous even when a loaded machine starves the control now
    // and then.
    let watch = Instant::now();
    let mut gate_open = 0;
    while watch.elapsed() < CONTROL_WATCH {
        for name in [
            "GoProcessPseudoIdle",
            "GoCgoSpin",
            "GoSchedulerStorm",
            "GoNativeThreadSpin",
            "GoGCPressure",
        ] {
            let hit: Vec<Value> = prom
                .alerts(name)
                .into_iter()
                .filter(|a| a["labels"]["pid"] == cpid.as_str())
                .collect();
            assert!(
                hit.is_empty(),
                "{}",
                ctx(&format!(
                    "control compute (pid {cpid}) raised {name}: {hit:?}"
                ))
            );
        }
        gate_open += usize::from(!prom.query(&gate).unwrap().is_empty());
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        gate_open >= 5,
        "{}",
        ctx(&format!(
            "compute was over the CPU gate in only {gate_open} checks"
        ))
    );
    work.signal(15);
    let _ = work.wait_output(Duration::from_secs(10));
    drop(prom);
    d.stop();
    eprintln!(
        "e2e Prometheus test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn wait_opt<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn compress_scales_every_range_window() {
    assert_eq!(
        compress("avg_over_time(x[5m]) and rate(y[10m]) > 0 and delta(z[1h]) and w[30s]"),
        "avg_over_time(x[15s]) and rate(y[30s]) > 0 and delta(z[180s]) and w[3s]"
    );
}

#[test]
fn encode_escapes_promql_punctuation() {
    assert_eq!(
        encode(r#"up{job="a b"}[5m]"#),
        "up%7Bjob%3D%22a%20b%22%7D%5B5m%5D"
    );
    assert!(Path::new(&repo("deploy/prometheus/rules.yaml")).is_file());
}
