//! Hotspots: the functions a process spent its sampled CPU in, by self and cumulative samples,
//! each with its class, location and whether it ran inlined.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Instant,
};

use serde::Serialize;

use crate::{
    classify::CpuClass,
    model::profile::{CLASSES, Profile},
    symbolize::SymFrame,
};

/// One function's line in the hotspots table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hotspot {
    /// Function name (Go), or `[object]+0xoffset` for code outside Go.
    pub function: String,
    /// Source location most samples were at (`file:line`), when known.
    pub location: Option<String>,
    /// Samples with this function innermost.
    pub self_samples: u64,
    /// Samples with this function anywhere on the stack.
    pub cumulative_samples: u64,
    /// `self_samples` over all samples.
    pub self_share: f64,
    /// `cumulative_samples` over all samples.
    pub cumulative_share: f64,
    /// The class most of its self samples had.
    pub class: CpuClass,
    /// Whether it was seen inlined into its caller.
    pub inlined: bool,
}

/// The hotspots of a window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hotspots {
    /// Samples in the window.
    pub samples: u64,
    /// Top functions by self samples.
    pub by_self: Vec<Hotspot>,
    /// Top functions by cumulative samples.
    pub by_cumulative: Vec<Hotspot>,
}

#[derive(Default)]
struct Acc {
    self_n: u64,
    cum_n: u64,
    classes: [u64; CLASSES],
    lines: HashMap<Arc<str>, u64>,
    inlined: bool,
}

fn frame_name(f: &SymFrame) -> (String, Option<Arc<str>>, bool) {
    match f {
        SymFrame::Go {
            function,
            file,
            line,
            inlined,
        } => (
            function.to_string(),
            Some(Arc::from(format!("{file}:{line}"))),
            *inlined,
        ),
        SymFrame::Native {
            object,
            offset,
            symbol,
        } => {
            let object = match object.as_deref() {
                Some(o) if o.starts_with('[') => o.to_string(),
                Some(o) => format!("[{o}]"),
                None => "[unmapped]".to_string(),
            };
            // C code keeps its object's name beside its symbol: "gocpu_cgo_spin [cgospin]".
            let name = match symbol {
                Some(sym) => format!("{sym} {object}"),
                None => format!("{object}+{offset:#x}"),
            };
            (name, None, false)
        }
    }
}

/// Hotspots of `profile` over the slots after `since`, `top` lines per table.
pub fn hotspots(profile: &Profile, since: Instant, top: usize) -> Hotspots {
    let mut acc: HashMap<String, Acc> = HashMap::new();
    let mut total = 0u64;
    for (stack, _tid, class, n) in profile.stacks_since(since) {
        total += n;
        if stack.frames.is_empty() {
            let a = acc.entry("[no stack]".to_string()).or_default();
            a.self_n += n;
            a.cum_n += n;
            a.classes[class.index()] += n;
            continue;
        }
        let mut seen: HashSet<String> = HashSet::new();
        for (i, f) in stack.frames.iter().enumerate() {
            let (name, loc, inlined) = frame_name(f);
            let a = acc.entry(name.clone()).or_default();
            if i == 0 {
                a.self_n += n;
                a.classes[class.index()] += n;
                if let Some(l) = &loc {
                    *a.lines.entry(Arc::clone(l)).or_default() += n;
                }
            }
            a.inlined |= inlined;
            if seen.insert(name) {
                a.cum_n += n;
            }
        }
    }
    let share = |n: u64| {
        if total > 0 {
            n as f64 / total as f64
        } else {
            0.0
        }
    };
    let rows: Vec<Hotspot> = acc
        .into_iter()
        .map(|(function, a)| {
            let class = CpuClass::ALL
                .iter()
                .copied()
                .max_by_key(|c| a.classes[c.index()])
                .unwrap_or(CpuClass::User);
            Hotspot {
                function,
                location: a
                    .lines
                    .into_iter()
                    .max_by_key(|(_, n)| *n)
                    .map(|(l, _)| l.to_string()),
                self_samples: a.self_n,
                cumulative_samples: a.cum_n,
                self_share: share(a.self_n),
                cumulative_share: share(a.cum_n),
                class,
                inlined: a.inlined,
            }
        })
        .collect();
    let mut by_self: Vec<Hotspot> = rows
        .iter()
        .filter(|h| h.self_samples > 0)
        .cloned()
        .collect();
    by_self.sort_by(|a, b| {
        b.self_samples
            .cmp(&a.self_samples)
            .then(a.function.cmp(&b.function))
    });
    by_self.truncate(top);
    let mut by_cumulative = rows;
    by_cumulative.sort_by(|a, b| {
        b.cumulative_samples
            .cmp(&a.cumulative_samples)
            .then(a.function.cmp(&b.function))
    });
    by_cumulative.truncate(top);
    Hotspots {
        samples: total,
        by_self,
        by_cumulative,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::profile::Stack;

    fn go(name: &str, line: u32, inlined: bool) -> SymFrame {
        SymFrame::Go {
            function: Arc::from(name),
            file: Arc::from("main.go"),
            line,
            inlined,
        }
    }

    #[test]
    fn self_and_cumulative_counts() {
        let t0 = Instant::now();
        let mut p = Profile::new(Duration::from_secs(60));
        p.begin(t0 + Duration::from_millis(1));
        let hash = Arc::new(Stack {
            frames: vec![
                go("main.mix", 7, true),
                go("main.hashLoop", 20, false),
                go("main.worker", 30, false),
            ],
            class: Some(CpuClass::User),
        });
        let sched = Arc::new(Stack {
            frames: vec![
                go("runtime.schedule", 1, false),
                go("main.worker", 31, false),
            ],
            class: Some(CpuClass::Scheduler),
        });
        p.add(&hash, 1, false, 6);
        p.add(&sched, 1, false, 2);
        let h = hotspots(&p, t0, 10);
        assert_eq!(h.samples, 8);
        assert_eq!(h.by_self[0].function, "main.mix");
        assert_eq!(h.by_self[0].self_samples, 6);
        assert!(h.by_self[0].inlined);
        assert_eq!(h.by_self[0].location.as_deref(), Some("main.go:7"));
        assert_eq!(h.by_self[1].class, CpuClass::Scheduler);
        assert_eq!(h.by_cumulative[0].function, "main.worker");
        assert_eq!(h.by_cumulative[0].cumulative_samples, 8);
        assert!((h.by_cumulative[0].cumulative_share - 1.0).abs() < 1e-9);
        assert_eq!(hotspots(&p, t0, 1).by_self.len(), 1);
    }
}
