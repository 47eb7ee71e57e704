//! Goroutine status names and wait reasons per Go release.
//!
//! `g.atomicstatus` and `g.waitreason` are small integers whose meaning is defined by each
//! release's runtime source: the `_Gidle = iota` and `waitReasonZero waitReason = iota` constant
//! blocks of `runtime/runtime2.go`, `waitReasonStrings` (same file) and `gStatusStrings`
//! (`runtime/traceback.go`). Wait reasons are inserted in the middle between releases (Go 1.21
//! moved "chan receive" from 14 to 15 or so), so an index means nothing without its release.
//!
//! `cargo xtask runtime-names` parses those files of every installed toolchain ([`source`]) and
//! writes [`table()`]; the test `runtime_names_table` regenerates it and checks it against the
//! strings the compiled runtime itself holds. Lookup follows the struct-offset table's rule: an
//! exact release, or a release between two generated releases of its series whose names are
//! identical; anything else is [`Unsupported`], never a nearby row.

pub mod source;
mod table;

use super::{
    Unsupported,
    version::{ReleaseRow, bracket},
};

/// One goroutine status value (without the `_Gscan` bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GStatus {
    /// The value of `g.atomicstatus &^ _Gscan`.
    pub value: u32,
    /// The runtime constant, e.g. "_Gwaiting".
    pub constant: &'static str,
    /// The name tracebacks print (`gStatusStrings`), else the constant without `_G`.
    pub name: &'static str,
    /// A `_Gdead*` status: the g is unused (free list, or parked for a cgo callback).
    pub dead: bool,
}

/// The status and wait-reason names of one Go release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeNames {
    /// Release `(major, minor, patch)`.
    pub release: (u32, u32, u32),
    /// `go version` of the toolchain whose sources the row was generated from.
    pub generated_from: &'static str,
    /// The `_Gscan` bit ORed into a status while the GC scans the stack.
    pub scan_bit: u32,
    /// Every status constant of the `_Gidle = iota` block below `_Gscan`, by value.
    pub statuses: &'static [GStatus],
    /// `waitReasonStrings`, indexed by `g.waitreason`.
    pub wait_reasons: &'static [&'static str],
}

impl RuntimeNames {
    /// The status whose value is `status` with the scan bit cleared.
    pub fn status(&self, status: u32) -> Option<&'static GStatus> {
        let plain = status & !self.scan_bit;
        self.statuses.iter().find(|s| s.value == plain)
    }

    /// The wait reason string of index `reason` (None past the end of `waitReasonStrings`,
    /// which the runtime prints as "unknown wait reason").
    pub fn wait_reason(&self, reason: u8) -> Option<&'static str> {
        self.wait_reasons.get(usize::from(reason)).copied()
    }

    /// Whether the names of two rows are identical (what makes a bracket valid).
    fn same_names(&self, other: &RuntimeNames) -> bool {
        self.scan_bit == other.scan_bit
            && self.statuses == other.statuses
            && self.wait_reasons == other.wait_reasons
    }
}

/// Every row of the generated table, oldest release first.
pub fn table() -> &'static [RuntimeNames] {
    table::TABLE
}

/// The names for `go_version` (as build info records it, "go1.25.5"): see the module docs.
pub fn for_version(go_version: &str) -> Result<&'static RuntimeNames, Unsupported> {
    lookup(table::TABLE, go_version)
}

/// [`for_version`] over any table sorted by release (separate for testing the bracket rule).
pub fn lookup(
    rows: &'static [RuntimeNames],
    go_version: &str,
) -> Result<&'static RuntimeNames, Unsupported> {
    bracket(
        rows,
        go_version,
        RuntimeNames::same_names,
        "between generated releases whose runtime names differ",
    )
    .map(|(row, _)| row)
}

impl ReleaseRow for RuntimeNames {
    fn release(&self) -> (u32, u32, u32) {
        self.release
    }
    fn generated_from(&self) -> &'static str {
        self.generated_from
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{GStatus, RuntimeNames, lookup};

    const A: &[GStatus] = &[GStatus {
        value: 0,
        constant: "_Gidle",
        name: "idle",
        dead: false,
    }];

    static ROWS: &[RuntimeNames] = &[
        RuntimeNames {
            release: (1, 30, 1),
            generated_from: "go1.30.1",
            scan_bit: 0x1000,
            statuses: A,
            wait_reasons: &["", "x"],
        },
        RuntimeNames {
            release: (1, 30, 5),
            generated_from: "go1.30.5",
            scan_bit: 0x1000,
            statuses: A,
            wait_reasons: &["", "x"],
        },
        RuntimeNames {
            release: (1, 31, 1),
            generated_from: "go1.31.1",
            scan_bit: 0x1000,
            statuses: A,
            wait_reasons: &["", "x"],
        },
        RuntimeNames {
            release: (1, 31, 5),
            generated_from: "go1.31.5",
            scan_bit: 0x1000,
            statuses: A,
            wait_reasons: &["", "x", "y"],
        },
    ];

    #[test]
    fn brackets_serve_only_between_identical_rows() {
        let label = |v: &str| {
            lookup(ROWS, v)
                .map(|r| r.generated_from)
                .map_err(|e| e.label())
        };
        assert_eq!(label("go1.30.1"), Ok("go1.30.1"));
        assert_eq!(label("go1.30.3"), Ok("go1.30.1"));
        assert_eq!(label("go1.30.0"), Err("unverified_patch"));
        assert_eq!(label("go1.30.6"), Err("unverified_patch"));
        assert_eq!(label("go1.31.3"), Err("unverified_patch"));
        assert_eq!(label("go1.31.5"), Ok("go1.31.5"));
        assert_eq!(label("go1.32.0"), Err("unknown_series"));
        assert_eq!(label("go1.30.2 X:foo"), Err("suffix"));
    }

    #[test]
    fn scan_bit_is_cleared_and_unknown_values_are_none() {
        let r = &ROWS[0];
        assert_eq!(r.status(0x1000).map(|s| s.name), Some("idle"));
        assert_eq!(r.status(7), None);
        assert_eq!(r.wait_reason(1), Some("x"));
        assert_eq!(r.wait_reason(2), None);
        assert_eq!(r.wait_reason(255), None);
    }
}
