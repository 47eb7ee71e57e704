//! Cached, parallel-safe builds of Go programs.
use std::{
    collections::hash_map::DefaultHasher,
    fs,
    hash::{Hash, Hasher},
    path::{Path, PathBuf},
};

use crate::{GoToolchain, workspace_root};

/// How to build: the variants production binaries come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// `go build` with default flags (symbols and DWARF kept).
    Default,
    /// `-ldflags=-s -w`: no .symtab, no DWARF (what distributions ship).
    Stripped,
    /// `-buildmode=pie`.
    Pie,
    /// cgo with external linking (`-ldflags=-linkmode=external`, CGO_ENABLED=1); the program
    /// directory must contain cgo code for this to differ from Default.
    CgoExternal,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 4] = [
        Variant::Default,
        Variant::Stripped,
        Variant::Pie,
        Variant::CgoExternal,
    ];

    /// Short name for file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Default => "default",
            Variant::Stripped => "stripped",
            Variant::Pie => "pie",
            Variant::CgoExternal => "cgo-external",
        }
    }

    fn args(self) -> Vec<String> {
        match self {
            Variant::Default => vec![],
            Variant::Stripped => vec!["-ldflags=-s -w".into()],
            Variant::Pie => vec!["-buildmode=pie".into()],
            Variant::CgoExternal => vec!["-ldflags=-linkmode=external".into()],
        }
    }
}

fn hash_dir(dir: &Path, h: &mut DefaultHasher) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            hash_dir(&p, h);
        } else {
            p.file_name().hash(h);
            fs::read(&p).unwrap_or_default().hash(h);
        }
    }
}

/// Hashes what a program shares with its module when the module root (the nearest directory with
/// a go.mod, walking up) is not the program's own directory: the root's go.mod and its
/// `internal/` packages. Programs that are their own module keep their cache keys.
fn hash_shared(src_dir: &Path, h: &mut DefaultHasher) {
    let Some(root) = src_dir.ancestors().find(|d| d.join("go.mod").is_file()) else {
        return;
    };
    if root == src_dir {
        return;
    }
    fs::read(root.join("go.mod")).unwrap_or_default().hash(h);
    let internal = root.join("internal");
    if internal.is_dir() {
        hash_dir(&internal, h);
    }
}

/// Hashes everything a build of the program in `src_dir` reads from the tree.
fn hash_sources(src_dir: &Path, h: &mut DefaultHasher) {
    hash_dir(src_dir, h);
    hash_shared(src_dir, h);
}

/// Whether the program in `dir` has C sources or imports "C".
pub fn uses_cgo(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        match p.extension().and_then(|x| x.to_str()) {
            Some("c" | "h") => true,
            Some("go") => fs::read_to_string(&p).is_ok_and(|t| t.contains("import \"C\"")),
            _ => false,
        }
    })
}

/// Builds the Go program in `src_dir` with `tc` and `variant`; returns the binary's path.
pub fn build(tc: &GoToolchain, src_dir: &Path, variant: Variant) -> PathBuf {
    build_with(tc, src_dir, variant, &[])
}

/// As [`build`], with extra `go build` arguments (e.g. `-gcflags=-l`).
pub fn build_with(tc: &GoToolchain, src_dir: &Path, variant: Variant, extra: &[&str]) -> PathBuf {
    // Programs with C code need cgo in every variant; the others build without it (the common
    // case for static Go binaries) except in the external-linking variant. Part of the key: the
    // same sources give a different binary with and without cgo.
    let cgo = variant == Variant::CgoExternal || uses_cgo(src_dir);
    let mut h = DefaultHasher::new();
    hash_sources(src_dir, &mut h);
    tc.version.hash(&mut h);
    variant.hash(&mut h);
    extra.hash(&mut h);
    cgo.hash(&mut h);
    let name = src_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "prog".into());
    let out_dir = workspace_root().join("target").join("go-builds");
    fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(format!(
        "{name}-go{}-{}-{:016x}",
        tc.version,
        variant.name(),
        h.finish()
    ));
    if out.is_file() {
        return out;
    }
    // Parallel tests may ask for the same build: serialize on a lock file next to the output.
    // Not `with_extension`: the name holds version dots ("go1.25.5"), which it would cut at.
    let sibling = |ext: &str| PathBuf::from(format!("{}.{ext}", out.display()));
    let lock = fs::File::create(sibling("lock")).unwrap();
    lock.lock().unwrap();
    if out.is_file() {
        return out;
    }
    let tmp = sibling("tmp");
    let mut cmd = tc.command();
    cmd.current_dir(src_dir)
        .arg("build")
        .arg("-o")
        .arg(&tmp)
        .args(variant.args())
        .args(extra)
        .arg(".");
    cmd.env("CGO_ENABLED", if cgo { "1" } else { "0" });
    let res = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tc.go.display()));
    assert!(
        res.status.success(),
        "go {} build of {} ({}) failed:\n{}",
        tc.version,
        src_dir.display(),
        variant.name(),
        String::from_utf8_lossy(&res.stderr)
    );
    fs::rename(&tmp, &out).unwrap();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_key(dir: &Path) -> u64 {
        let mut h = DefaultHasher::new();
        hash_sources(dir, &mut h);
        h.finish()
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// A module with a program in `prog/` and shared code in `internal/shared/`, under a fresh
    /// temporary directory.
    fn module(name: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("gocpu-testkit-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        write(&root.join("go.mod"), "module example.com/m\n\ngo 1.19\n");
        write(
            &root.join("internal/shared/shared.go"),
            "package shared\n\nconst N = 1\n",
        );
        write(
            &root.join("prog/main.go"),
            "package main\n\nfunc main() {}\n",
        );
        root
    }

    #[test]
    fn shared_package_and_module_file_are_part_of_a_programs_key() {
        let root = module("shared");
        let prog = root.join("prog");
        let k0 = source_key(&prog);
        write(
            &root.join("internal/shared/shared.go"),
            "package shared\n\nconst N = 2\n",
        );
        let k1 = source_key(&prog);
        assert_ne!(k0, k1, "an edit of internal/ must invalidate the build");
        write(&root.join("internal/shared/more.go"), "package shared\n");
        let k2 = source_key(&prog);
        assert_ne!(k1, k2, "a new file in internal/ must invalidate the build");
        write(&root.join("go.mod"), "module example.com/m\n\ngo 1.21\n");
        assert_ne!(
            k2,
            source_key(&prog),
            "an edit of go.mod must invalidate the build"
        );
        // What is neither internal/ nor go.mod (another program) does not.
        let k3 = source_key(&prog);
        write(&root.join("other/main.go"), "package main\n");
        assert_eq!(k3, source_key(&prog));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_program_that_is_its_own_module_hashes_only_its_directory() {
        let root = module("own");
        let prog = root.join("prog");
        write(&prog.join("go.mod"), "module example.com/prog\n\ngo 1.19\n");
        let k0 = source_key(&prog);
        write(
            &root.join("internal/shared/shared.go"),
            "package shared\n\nconst N = 3\n",
        );
        assert_eq!(
            k0,
            source_key(&prog),
            "the outer module is not this program's"
        );
        let mut h = DefaultHasher::new();
        hash_dir(&prog, &mut h);
        assert_eq!(
            k0,
            h.finish(),
            "cache keys of standalone modules must not change"
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
