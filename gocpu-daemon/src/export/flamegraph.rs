//! An interactive flame graph SVG (inferno) of a process's samples, coloured by class: each
//! frame takes the colour of the class most of the samples it appears in belong to.
use std::collections::{HashMap, HashSet};

use inferno::flamegraph::{
    self, Options,
    color::{Color, PaletteMap},
};

use crate::{classify::CpuClass, export::pprof::Samples, symbolize::SymFrame};

fn frame_name(f: &SymFrame) -> String {
    let raw = match f {
        SymFrame::Go { function, .. } => function.to_string(),
        SymFrame::Native {
            object,
            offset,
            symbol,
        } => match symbol {
            Some(s) => format!("{s} [{}]", object.as_deref().unwrap_or("?")),
            None => format!("{}+{offset:#x}", object.as_deref().unwrap_or("[unmapped]")),
        },
    };
    // ';' separates frames in folded stacks.
    raw.replace(';', ":")
}

/// The fill colour of a class.
pub fn class_color(c: CpuClass) -> (u8, u8, u8) {
    match c {
        CpuClass::User => (0x4c, 0x9a, 0x2a),
        CpuClass::Scheduler => (0xd6, 0x45, 0x2b),
        CpuClass::Futex => (0xe8, 0x91, 0x2d),
        CpuClass::Syscall => (0x3b, 0x73, 0xb9),
        CpuClass::Locks => (0xb0, 0x3a, 0x9c),
        CpuClass::Gc => (0x8c, 0x6d, 0x31),
        CpuClass::Cgo => (0x80, 0x80, 0x80),
        CpuClass::Native => (0x44, 0x44, 0x44),
    }
}

/// Renders `samples` as a flame graph titled `title`.
pub fn render(samples: &Samples, title: &str) -> Result<Vec<u8>, String> {
    let mut folded: HashMap<String, u64> = HashMap::new();
    let mut classes: HashMap<String, [u64; CpuClass::ALL.len()]> = HashMap::new();
    for (stack, _tid, class, n) in samples {
        let names: Vec<String> = stack.frames.iter().rev().map(frame_name).collect();
        let line = if names.is_empty() {
            "[no stack]".to_string()
        } else {
            names.join(";")
        };
        let unique: HashSet<&String> = names.iter().collect();
        for name in unique {
            classes.entry(name.clone()).or_default()[class.index()] += n;
        }
        *folded.entry(line).or_default() += n;
    }
    let mut palette = PaletteMap::default();
    for (func, counts) in &classes {
        let class = CpuClass::ALL
            .iter()
            .copied()
            .max_by_key(|c| counts[c.index()])
            .unwrap_or(CpuClass::User);
        let (r, g, b) = class_color(class);
        palette.insert(func, Color { r, g, b });
    }
    let mut opts = Options::default();
    opts.title = title.to_string();
    opts.subtitle = Some(format!(
        "colour = class: {}",
        CpuClass::ALL
            .iter()
            .map(|c| {
                let (r, g, b) = class_color(*c);
                format!("{} #{r:02x}{g:02x}{b:02x}", c.as_str())
            })
            .collect::<Vec<_>>()
            .join(", ")
    ));
    opts.count_name = "samples".to_string();
    opts.palette_map = Some(&mut palette);
    let mut lines: Vec<String> = folded
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    lines.sort();
    let mut svg = Vec::new();
    flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), &mut svg)
        .map_err(|e| e.to_string())?;
    Ok(svg)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;
    use crate::model::profile::Stack;

    #[test]
    fn draws_frames_coloured_by_class() {
        let go = |n: &str| SymFrame::Go {
            function: Arc::from(n),
            file: Arc::from("f.go"),
            line: 1,
            inlined: false,
        };
        let samples = vec![
            (
                Arc::new(Stack {
                    frames: vec![go("main.hash"), go("main.main")],
                    class: Some(CpuClass::User),
                }),
                1,
                CpuClass::User,
                30,
            ),
            (
                Arc::new(Stack {
                    frames: vec![go("runtime.schedule"), go("runtime.mcall")],
                    class: Some(CpuClass::Scheduler),
                }),
                1,
                CpuClass::Scheduler,
                10,
            ),
        ];
        let svg = String::from_utf8(render(&samples, "t").unwrap()).unwrap();
        assert!(svg.starts_with("<?xml"), "{}", &svg[..100]);
        assert!(svg.contains("main.hash"));
        assert!(svg.contains("runtime.schedule"));
        assert!(
            svg.contains("rgb(76,154,42)") || svg.contains("rgb(76, 154, 42)"),
            "user colour missing"
        );
        assert!(
            svg.contains("rgb(214,69,43)") || svg.contains("rgb(214, 69, 43)"),
            "scheduler colour missing"
        );
    }
}
