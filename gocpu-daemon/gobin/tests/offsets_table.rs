//! The committed offset table against its generator and the installed toolchains, and the
//! rules for versions without a row.
//!
//! Regenerating from the installed toolchains must give exactly the committed text: every
//! installed toolchain's row (the probe built with it, read with our DWARF reader, rendered by
//! the generator's renderer) must appear verbatim, and when the installed set is the table's
//! set, the whole file must be byte-identical. So the data cannot drift from its generator.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support_sites;

use gocpu_gobin::{
    dwarf::read_fields_from_elf,
    offsets::{
        Unsupported, for_version, parse_release,
        render::{RenderRow, render_row, render_table},
        table, table_row,
    },
};
use gocpu_testkit::{Variant, build, toolchains};
use support_sites::{assert_regenerated, early_patch_toolchains, testdata};

const COMMITTED: &str = include_str!("../src/offsets/table.rs");

#[test]
fn table_matches_installed_toolchains() {
    let mut all = toolchains();
    all.extend(early_patch_toolchains());
    assert!(all.len() >= 5, "run `cargo xtask setup`");
    let mut rows = Vec::new();
    for tc in &all {
        let version = format!("go{}", tc.version);
        let r = parse_release(&version).unwrap();
        let bin = build(tc, &testdata("offsets-probe"), Variant::Default);
        let fields = read_fields_from_elf(&std::fs::read(&bin).unwrap()).unwrap();
        let row = RenderRow {
            generated_from: version.clone(),
            release: (r.major, r.minor, r.patch),
            fields,
        };
        assert!(
            COMMITTED.contains(&render_row(&row)),
            "{version}: its row differs from src/offsets/table.rs: run `cargo xtask offsets`"
        );
        let m = table_row(&version).unwrap();
        assert_eq!(m.row.generated_from, version);
        rows.push(row);
    }
    rows.sort_by_key(|r| r.release);
    assert_regenerated(
        "offset table",
        rows.iter().map(|r| r.release).collect(),
        table().iter().map(|r| r.release).collect(),
        || render_table(&rows),
        COMMITTED,
    );
}

#[test]
fn unknown_versions_are_unsupported() {
    let label = |v: &str| for_version(v).map_err(|e| e.label());
    assert_eq!(label("go1.99.0"), Err("unknown_series"));
    assert_eq!(label("go1.18"), Err("unknown_series"));
    assert_eq!(label("go1.20.5"), Err("unknown_series"));
    assert_eq!(label("go2.0.0"), Err("unknown_series"));
    for garbage in [
        "",
        "hello",
        "go",
        "go1.x",
        "1.25.5",
        "go1.25.5.7",
        "\u{0}\u{ff}",
    ] {
        assert_eq!(label(garbage), Err("malformed"), "{garbage:?}");
    }
    assert_eq!(label("go1.26rc1"), Err("prerelease"));
    assert_eq!(label("devel go1.27-abcdef Mon Jan 1"), Err("devel"));
    assert_eq!(label("go1.25.5 X:greenteagc"), Err("suffix"));
    let e = for_version("go1.99.0").unwrap_err();
    assert!(e.to_string().starts_with("unsupported: "), "{e}");
    assert!(matches!(
        e,
        Unsupported::UnknownSeries {
            major: 1,
            minor: 99,
            ..
        }
    ));
}

/// Patch releases without a row: served between two identical rows of the series, refused
/// between differing rows and outside the generated range.
#[test]
fn patch_releases_follow_the_bracket_rule() {
    let rows = table();
    let (mut served, mut refused) = (0, 0);
    for pair in rows.windows(2) {
        let (lo, hi) = (&pair[0], &pair[1]);
        if (lo.release.0, lo.release.1) != (hi.release.0, hi.release.1) {
            continue;
        }
        for patch in lo.release.2 + 1..hi.release.2 {
            let v = format!("go{}.{}.{patch}", lo.release.0, lo.release.1);
            match table_row(&v) {
                Ok(m) => {
                    assert_eq!(lo.offsets, hi.offsets, "{v} served between differing rows");
                    assert_eq!(m.row.generated_from, lo.generated_from);
                    assert_eq!(
                        m.bracketed_by.map(|r| r.generated_from),
                        Some(hi.generated_from)
                    );
                    served += 1;
                }
                Err(e) => {
                    assert_ne!(
                        lo.offsets, hi.offsets,
                        "{v} refused between identical rows: {e}"
                    );
                    assert_eq!(e.label(), "unverified_patch");
                    refused += 1;
                }
            }
        }
    }
    assert!(
        served > 0 && refused > 0,
        "the table should exercise both cases"
    );
    let newest = rows.last().unwrap().release;
    let after = format!("go{}.{}.{}", newest.0, newest.1, newest.2 + 1);
    assert_eq!(
        for_version(&after).map_err(|e| e.label()),
        Err("unverified_patch")
    );
    let early = rows
        .iter()
        .find(|r| r.release.2 > 0 && r.release.1 >= 23)
        .unwrap();
    let before = format!(
        "go{}.{}.{}",
        early.release.0,
        early.release.1,
        early.release.2 - 1
    );
    if !rows
        .iter()
        .any(|r| r.release < early.release && (r.release.1 == early.release.1))
    {
        assert_eq!(
            for_version(&before).map_err(|e| e.label()),
            Err("unverified_patch")
        );
    }
    println!("{served} patch releases served by brackets, {refused} refused");
}
