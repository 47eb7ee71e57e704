//! The Prometheus text exposition the daemon serves, parsed for assertions.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::Daemon;

/// One series of the Prometheus text exposition.
#[derive(Clone, Debug)]
pub struct Series {
    /// Metric name.
    pub name: String,
    /// Label names and values.
    pub labels: BTreeMap<String, String>,
    /// Sample value.
    pub value: f64,
}

/// Every series of `text`, a Prometheus text exposition.
pub fn parse_metrics(text: &str) -> Vec<Series> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (head, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').unwrap()),
            None => (head, ""),
        };
        let mut map = BTreeMap::new();
        let mut chars = labels.chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            assert_eq!(chars.next(), Some('"'), "{line}");
            let mut v = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => v.push(chars.next().unwrap()),
                    '"' => break,
                    c => v.push(c),
                }
            }
            map.insert(key.trim_start_matches(',').to_string(), v);
            if chars.peek() == Some(&',') {
                chars.next();
            }
        }
        out.push(Series {
            name: name.to_string(),
            labels: map,
            value: value.parse().unwrap(),
        });
    }
    out
}

/// The series of `name` whose `program` label is `program`.
pub fn program_series<'a>(m: &'a [Series], name: &str, program: &str) -> Option<&'a Series> {
    m.iter()
        .find(|s| s.name == name && s.labels.get("program").map(String::as_str) == Some(program))
}

/// Every series `d` serves on /metrics.
pub fn metrics(d: &Daemon) -> Vec<Series> {
    let r = d.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    parse_metrics(&r.body)
}
