//! The pprof profile format (github.com/google/pprof/proto/profile.proto), the subset gocpu
//! writes, as prost messages declared by hand (no code generation at build time).
use std::{collections::HashMap, io::Write as _, sync::Arc};

use prost::Message;

use crate::{classify::CpuClass, model::profile::Stack, symbolize::SymFrame};

/// `Profile`.
#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    /// What each sample value counts.
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    /// The samples.
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    /// Mapped objects.
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    /// Locations (one per frame here).
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    /// Functions.
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Every string, index 0 being "".
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// Collection time, ns since the epoch.
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    /// Collection duration, ns.
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    /// Unit of `period`.
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    /// Sampling period.
    #[prost(int64, tag = "12")]
    pub period: i64,
    /// Free-form comments (string indexes).
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
}

/// `ValueType`.
#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    /// Type name (string index).
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// Unit (string index).
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// `Sample`.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// Locations, leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One value per `sample_type`.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    /// Labels (thread id, class).
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// `Label`.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    /// Key (string index).
    #[prost(int64, tag = "1")]
    pub key: i64,
    /// String value (string index), or 0.
    #[prost(int64, tag = "2")]
    pub str: i64,
    /// Numeric value.
    #[prost(int64, tag = "3")]
    pub num: i64,
}

/// `Mapping`.
#[derive(Clone, PartialEq, Message)]
pub struct Mapping {
    /// Id (1-based).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// File name (string index).
    #[prost(int64, tag = "5")]
    pub filename: i64,
    /// Functions are symbolized.
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    /// File names are known.
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    /// Line numbers are known.
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    /// Inlined frames are expanded.
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

/// `Location`.
#[derive(Clone, PartialEq, Message)]
pub struct Location {
    /// Id (1-based).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Mapping id.
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    /// Lines, innermost first.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

/// `Line`.
#[derive(Clone, PartialEq, Message)]
pub struct Line {
    /// Function id.
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    /// Line number.
    #[prost(int64, tag = "2")]
    pub line: i64,
}

/// `Function`.
#[derive(Clone, PartialEq, Message)]
pub struct Function {
    /// Id (1-based).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Name (string index).
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// System name (string index).
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    /// Source file (string index).
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

#[derive(Default)]
struct Builder {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<Function>,
    function_ids: HashMap<(String, String), u64>,
    locations: Vec<Location>,
    location_ids: HashMap<(String, String, u32), u64>,
}

impl Builder {
    fn string(&mut self, s: &str) -> i64 {
        if self.strings.is_empty() {
            self.strings.push(String::new());
            self.string_ids.insert(String::new(), 0);
        }
        if let Some(id) = self.string_ids.get(s) {
            return *id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    fn function(&mut self, name: &str, file: &str) -> u64 {
        let key = (name.to_string(), file.to_string());
        if let Some(id) = self.function_ids.get(&key) {
            return *id;
        }
        let id = self.functions.len() as u64 + 1;
        let (n, f) = (self.string(name), self.string(file));
        self.functions.push(Function {
            id,
            name: n,
            system_name: n,
            filename: f,
        });
        self.function_ids.insert(key, id);
        id
    }

    fn location(&mut self, frame: &SymFrame) -> u64 {
        let (name, file, line) = match frame {
            SymFrame::Go {
                function,
                file,
                line,
                ..
            } => (function.to_string(), file.to_string(), *line),
            SymFrame::Native {
                object,
                offset,
                symbol,
            } => {
                let object = object.as_deref().unwrap_or("unmapped");
                let name = match symbol {
                    Some(s) => s.to_string(),
                    None => format!("{object}+{offset:#x}"),
                };
                (name, object.to_string(), 0)
            }
        };
        let key = (name.clone(), file.clone(), line);
        if let Some(id) = self.location_ids.get(&key) {
            return *id;
        }
        let function_id = self.function(&name, &file);
        let id = self.locations.len() as u64 + 1;
        self.locations.push(Location {
            id,
            mapping_id: 1,
            line: vec![Line {
                function_id,
                line: i64::from(line),
            }],
        });
        self.location_ids.insert(key, id);
        id
    }
}

/// What to export: stacks with their thread, class and sample count.
pub type Samples = Vec<(Arc<Stack>, u32, CpuClass, u64)>;

/// Builds a gzipped pprof profile of `samples` taken every `period_ns` over `duration_ns`,
/// for executable `exe`.
pub fn encode(
    samples: &Samples,
    period_ns: i64,
    duration_ns: i64,
    exe: &str,
) -> std::io::Result<Vec<u8>> {
    let mut b = Builder::default();
    let samples_t = ValueType {
        r#type: b.string("samples"),
        unit: b.string("count"),
    };
    let cpu_t = ValueType {
        r#type: b.string("cpu"),
        unit: b.string("nanoseconds"),
    };
    let (tid_k, class_k) = (b.string("thread"), b.string("class"));
    let mut out = Vec::with_capacity(samples.len());
    for (stack, tid, class, n) in samples {
        let location_id = stack.frames.iter().map(|f| b.location(f)).collect();
        let class_s = b.string(class.as_str());
        let n = i64::try_from(*n).unwrap_or(i64::MAX);
        out.push(Sample {
            location_id,
            value: vec![n, n.saturating_mul(period_ns)],
            label: vec![
                Label {
                    key: tid_k,
                    str: 0,
                    num: i64::from(*tid),
                },
                Label {
                    key: class_k,
                    str: class_s,
                    num: 0,
                },
            ],
        });
    }
    let filename = b.string(exe);
    let comment = b.string("gocpu: user stacks sampled on the CPU clock, symbolized from .gopclntab (inline frames expanded) and ELF symbols");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let profile = Profile {
        sample_type: vec![samples_t, cpu_t.clone()],
        sample: out,
        mapping: vec![Mapping {
            id: 1,
            filename,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        }],
        location: b.locations,
        function: b.functions,
        string_table: b.strings,
        time_nanos: now.saturating_sub(duration_ns),
        duration_nanos: duration_ns,
        period_type: Some(cpu_t),
        period: period_ns,
        comment: vec![comment],
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&profile.encode_to_vec())?;
    gz.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Read as _;

    use super::*;

    #[test]
    fn round_trips_through_prost_and_gzip() {
        let stack = Arc::new(Stack {
            frames: vec![
                SymFrame::Go {
                    function: Arc::from("main.hot"),
                    file: Arc::from("/src/main.go"),
                    line: 12,
                    inlined: true,
                },
                SymFrame::Go {
                    function: Arc::from("main.main"),
                    file: Arc::from("/src/main.go"),
                    line: 30,
                    inlined: false,
                },
            ],
            class: Some(CpuClass::User),
        });
        let samples = vec![(Arc::clone(&stack), 7, CpuClass::User, 5)];
        let gz = encode(&samples, 10_101_010, 5_000_000_000, "/bin/x").unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .unwrap();
        let p = Profile::decode(&raw[..]).unwrap();
        assert_eq!(p.sample.len(), 1);
        assert_eq!(p.sample[0].value, vec![5, 50_505_050]);
        assert_eq!(p.sample[0].location_id.len(), 2);
        let leaf = &p.location[(p.sample[0].location_id[0] - 1) as usize];
        let f = &p.function[(leaf.line[0].function_id - 1) as usize];
        assert_eq!(p.string_table[f.name as usize], "main.hot");
        assert_eq!(leaf.line[0].line, 12);
        assert_eq!(p.string_table[0], "");
    }
}
