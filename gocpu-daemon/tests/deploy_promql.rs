//! Every PromQL expression in deploy/ (alert and recording rules, every dashboard panel and
//! variable) parses, and names only metrics — and label values of the daemon's enumerated
//! labels — that a live daemon actually exports while it watches a Go process.
#![allow(clippy::unwrap_used)]

mod deploy_support;
mod support;

use std::{collections::BTreeSet, time::Duration};

use deploy_support::{
    PROMETHEUS_SERIES, Query, dashboard_queries, exported, problems, recorded_names, rule_queries,
    selectors,
};
use gocpu_testkit::{Variant, build, debian_go, http, workload};
use support::{Daemon, serial, spawn, wait};

/// What Prometheus asks for when it scrapes (2.42 prefers OpenMetrics).
const OPENMETRICS: (&str, &str) = (
    "Accept",
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
);

#[test]
fn every_deploy_query_parses() {
    let queries: Vec<Query> = rule_queries()
        .into_iter()
        .chain(dashboard_queries())
        .collect();
    assert!(queries.len() >= 30, "only {} queries found", queries.len());
    for q in &queries {
        let s = selectors(&q.expr).unwrap_or_else(|e| panic!("{}: {e}\n{}", q.origin, q.expr));
        assert!(!s.is_empty(), "{}: no selector in {}", q.origin, q.expr);
    }
}

#[test]
fn deploy_queries_name_only_what_a_live_daemon_exports() {
    let _serial = serial();
    let d = Daemon::start("");
    let bin = build(&debian_go(), &workload("cgospin"), Variant::Default);
    let w = spawn(&bin, &["-goroutines", "1", "-call-ms", "20"]);
    d.wait_listed(w.pid());
    // Per-process families appear with the first report, the goroutine growth rate with the
    // second runtime read, the hit cost after calibration, a call rate once one is bounded
    // (an interval narrower than itself: a hook within budget, or enough sampled periods).
    let flag = format!("gocpu_process_flag{{pid=\"{}\"", w.pid());
    let text = wait(
        "per-process families, the growth rate, a call rate and the calibrated hit cost",
        Duration::from_secs(40),
        || {
            let r = http::get_with(d.addr, "/metrics", &[OPENMETRICS]).ok()?;
            (r.body.contains(&flag)
                && r.body.contains("gocpu_process_ratio{")
                && r.body.contains("gocpu_process_goroutine_growth_rate{")
                && r.body.contains("gocpu_process_runtime_call_rate{")
                && r.body.contains("gocpu_uprobe_hit_cost_seconds{"))
            .then_some(r.body)
        },
    );
    let live = exported(&text);
    let mut allowed: BTreeSet<String> = recorded_names();
    allowed.extend(PROMETHEUS_SERIES.iter().map(|s| s.to_string()));

    let queries: Vec<Query> = rule_queries()
        .into_iter()
        .chain(dashboard_queries())
        .collect();
    let found = problems(&queries, &live, &allowed);
    assert!(
        found.is_empty(),
        "{} problem(s):\n{}\n\nexported: {:?}",
        found.len(),
        found.join("\n"),
        live.keys().collect::<Vec<_>>()
    );

    // The checker catches what it is for: an unknown metric, a label value the daemon never
    // sets (alone and in an alternation), a regex matching nothing, and bad syntax.
    let bad: Vec<Query> = [
        "rate(gocpu_process_cpu_second_total[5m])",
        r#"gocpu_process_flag{flag="pseudoidle"} == 1"#,
        r#"gocpu_process_flag{flag=~"cgo_spin|gc_presure"}"#,
        r#"gocpu_bpf_program_runs_total{program=~"uprobe_.+"}"#,
        "sum((gocpu_process_ratio)",
    ]
    .iter()
    .map(|e| Query {
        origin: "mutant".into(),
        expr: e.to_string(),
    })
    .collect();
    let caught = problems(&bad, &live, &allowed);
    assert_eq!(caught.len(), bad.len(), "{caught:#?}");
    drop(w);
    d.stop();
}
