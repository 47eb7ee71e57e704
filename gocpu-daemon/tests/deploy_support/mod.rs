//! Shared by the deploy tests: the PromQL in deploy/ (alert and recording rules, the Grafana
//! dashboard), parsed with a real PromQL parser, and the metric families a daemon exports.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use promql_parser::{
    label::MatchOp,
    parser::{self, Expr, VectorSelector},
};
use serde_json::Value as Json;
use serde_norway::Value as Yaml;

/// Series Prometheus itself creates: a query may name them although no exporter does.
pub const PROMETHEUS_SERIES: [&str; 7] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
    "ALERTS",
    "ALERTS_FOR_STATE",
];

/// Labels whose every value a live daemon shows at once (fixed enumerations, one series per
/// value): a matcher on them must match what is exported. Others (attach_state, comm, a
/// goroutine's wait reason) depend on the moment and are not checked.
pub const ENUMERATED_LABELS: [&str; 9] = [
    "class",
    "flag",
    "ratio",
    "function",
    "kind",
    "syscall",
    "program",
    "instruction",
    "reason",
];

/// Values the dashboard's variables take when every option is selected, and Grafana's
/// interval variables at a typical value.
pub const GRAFANA_VARIABLES: [(&str, &str); 6] = [
    ("$__rate_interval", "1m"),
    ("$__interval", "30s"),
    ("$namespace", ".*"),
    ("$node", ".*"),
    ("$pod", ".*"),
    ("$pid", ".*"),
];

/// A path in the repository.
pub fn repo(path: &str) -> PathBuf {
    gocpu_testkit::workspace_root().join(path)
}

/// One PromQL expression and where it comes from.
#[derive(Clone, Debug)]
pub struct Query {
    /// Rule name or panel title.
    pub origin: String,
    /// The expression, Grafana variables substituted.
    pub expr: String,
}

/// deploy/prometheus/rules.yaml, parsed.
pub fn rules() -> Yaml {
    serde_norway::from_str(&std::fs::read_to_string(repo("deploy/prometheus/rules.yaml")).unwrap())
        .unwrap()
}

/// Every rule's expression.
pub fn rule_queries() -> Vec<Query> {
    let mut out = Vec::new();
    for g in rules()["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            let name = r.get("alert").or_else(|| r.get("record")).unwrap();
            out.push(Query {
                origin: format!("rule {}", name.as_str().unwrap()),
                expr: r["expr"].as_str().unwrap().to_string(),
            });
        }
    }
    out
}

/// Names of the recording rules (series the rules themselves create).
pub fn recorded_names() -> BTreeSet<String> {
    rules()["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .filter_map(|r| r.get("record").and_then(Yaml::as_str).map(str::to_string))
        .collect()
}

/// deploy/grafana/gocpu.json, parsed.
pub fn dashboard() -> Json {
    serde_json::from_str(&std::fs::read_to_string(repo("deploy/grafana/gocpu.json")).unwrap())
        .unwrap()
}

/// `expr` with Grafana's variables replaced by [`GRAFANA_VARIABLES`].
pub fn substitute(expr: &str) -> String {
    GRAFANA_VARIABLES
        .iter()
        .fold(expr.to_string(), |e, (var, value)| e.replace(var, value))
}

fn panels<'a>(v: &'a Json, out: &mut Vec<&'a Json>) {
    for p in v.as_array().into_iter().flatten() {
        out.push(p);
        panels(&p["panels"], out);
    }
}

/// Every panel query and every variable query (the selector inside `label_values(...)`).
pub fn dashboard_queries() -> Vec<Query> {
    let d = dashboard();
    let mut ps = Vec::new();
    panels(&d["panels"], &mut ps);
    let mut out = Vec::new();
    for p in ps {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(Query {
                origin: format!("panel {:?} {}", p["title"].as_str().unwrap(), t["refId"]),
                expr: substitute(t["expr"].as_str().unwrap()),
            });
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        let Some(q) = v["query"]["query"].as_str() else {
            continue;
        };
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.rsplit_once(','))
            .map(|(sel, _)| sel)
            .unwrap_or_else(|| panic!("variable {}: unexpected query {q}", v["name"]));
        out.push(Query {
            origin: format!("variable ${}", v["name"].as_str().unwrap()),
            expr: substitute(inner),
        });
    }
    out
}

/// One label matcher of a selector.
#[derive(Clone, Debug)]
pub struct LabelMatch {
    /// Label name.
    pub label: String,
    /// `=`, `!=`, `=~`, `!~`.
    pub op: &'static str,
    /// The value or regular expression as written.
    pub value: String,
    matcher: promql_parser::label::Matcher,
}

impl LabelMatch {
    /// Whether `value` satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        self.matcher.is_match(value)
    }
}

/// A metric selector found in an expression.
#[derive(Clone, Debug)]
pub struct Selector {
    /// The metric name.
    pub metric: String,
    /// Its label matchers (the name excluded).
    pub matchers: Vec<LabelMatch>,
}

/// Every selector in `expr`; `Err` when it does not parse, or a selector names no metric.
pub fn selectors(expr: &str) -> Result<Vec<Selector>, String> {
    let ast = parser::parse(expr)?;
    let mut out = Vec::new();
    walk(&ast, &mut out)?;
    Ok(out)
}

fn selector(vs: &VectorSelector) -> Result<Selector, String> {
    let mut metric = vs.name.clone();
    let mut matchers = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == "__name__" {
            match &m.op {
                MatchOp::Equal => metric = Some(m.value.clone()),
                _ => return Err(format!("__name__ matcher {m} names no single metric")),
            }
            continue;
        }
        let op = match &m.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Re(_) => "=~",
            MatchOp::NotRe(_) => "!~",
        };
        matchers.push(LabelMatch {
            label: m.name.clone(),
            op,
            value: m.value.clone(),
            matcher: m.clone(),
        });
    }
    let metric = metric.ok_or_else(|| format!("selector {vs} names no metric"))?;
    Ok(Selector { metric, matchers })
}

fn walk(e: &Expr, out: &mut Vec<Selector>) -> Result<(), String> {
    match e {
        Expr::Aggregate(a) => {
            walk(&a.expr, out)?;
            if let Some(p) = &a.param {
                walk(p, out)?;
            }
        }
        Expr::Unary(u) => walk(&u.expr, out)?,
        Expr::Binary(b) => {
            walk(&b.lhs, out)?;
            walk(&b.rhs, out)?;
        }
        Expr::Paren(p) => walk(&p.expr, out)?,
        Expr::Subquery(s) => walk(&s.expr, out)?,
        Expr::VectorSelector(vs) => out.push(selector(vs)?),
        Expr::MatrixSelector(ms) => out.push(selector(&ms.vs)?),
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, out)?;
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
    Ok(())
}

/// Metric name → label → values seen, from Prometheus text or OpenMetrics exposition.
pub type Exported = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Parses the samples of an exposition (`# ` lines skipped; label values unescaped).
pub fn exported(text: &str) -> Exported {
    let mut out = Exported::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..name_end].to_string()).or_default();
        let Some(rest) = line[name_end..].strip_prefix('{') else {
            continue;
        };
        let mut chars = rest.chars().peekable();
        loop {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            let key = key.trim_start_matches(',').trim().to_string();
            if key.is_empty() || key.starts_with('}') || chars.next() != Some('"') {
                break;
            }
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(o) => value.push(o),
                        None => break,
                    },
                    '"' => break,
                    o => value.push(o),
                }
            }
            labels.entry(key).or_default().insert(value);
        }
    }
    out
}

/// What is wrong with `queries` given what the daemon exports: metrics it does not export,
/// and label matchers on its enumerated labels that match no value it exports. `allowed`:
/// further metric names that exist (recording rules, Prometheus' own series).
pub fn problems(queries: &[Query], exported: &Exported, allowed: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for q in queries {
        let sels = match selectors(&q.expr) {
            Ok(s) => s,
            Err(e) => {
                out.push(format!("{}: does not parse: {e}\n  {}", q.origin, q.expr));
                continue;
            }
        };
        if sels.is_empty() {
            out.push(format!("{}: names no metric", q.origin));
        }
        for s in sels {
            if allowed.contains(&s.metric) {
                continue;
            }
            let Some(labels) = exported.get(&s.metric) else {
                out.push(format!(
                    "{}: {} is not exported by the daemon",
                    q.origin, s.metric
                ));
                continue;
            };
            for m in &s.matchers {
                // Labels the daemon does not set come from Prometheus (instance, job, node).
                let enumerated = ENUMERATED_LABELS.contains(&m.label.as_str());
                let Some(values) = labels.get(&m.label).filter(|_| enumerated) else {
                    continue;
                };
                let literal_alternatives = m.op == "=~"
                    && m.value.split('|').all(|a| {
                        !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    });
                let ok = match m.op {
                    "=" => values.contains(&m.value),
                    "=~" if literal_alternatives => m.value.split('|').all(|a| values.contains(a)),
                    "=~" => values.iter().any(|v| m.matches(v)),
                    _ => true,
                };
                if !ok {
                    out.push(format!(
                        "{}: {}{{{}{}{:?}}} matches none of the exported values {values:?}",
                        q.origin, s.metric, m.label, m.op, m.value
                    ));
                }
            }
        }
    }
    out
}
