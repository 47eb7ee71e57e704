//! What the parser reads, and the path for binaries without section headers, on real
//! fixtures: identification reads a few small pieces, a full parse reads about the pclntab and
//! no code; with the section header table removed (as `sstrip` does) the magic scan, the
//! build-info search in writable segments, PT_NOTE build IDs and the moduledata scan give the
//! same answers as the section headers did.
#![allow(clippy::unwrap_used, clippy::print_stdout)]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use gocpu_gobin::{ByteSource, Found, GoBinary, SourceError, identify};
use gocpu_testkit::Variant;

/// Counts what is read through it.
struct Counting {
    inner: std::fs::File,
    bytes: AtomicU64,
    reads: AtomicU64,
}

impl ByteSource for Counting {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.read_at(offset, buf)
    }
}

fn counting(path: &std::path::Path) -> Counting {
    Counting {
        inner: std::fs::File::open(path).unwrap(),
        bytes: AtomicU64::new(0),
        reads: AtomicU64::new(0),
    }
}

#[test]
fn identify_and_parse_read_only_what_they_need() {
    for series in ["1.19", "1.27"] {
        let tc = toolchain(series);
        for variant in Variant::ALL {
            let path = fixture(&tc, variant);
            let size = std::fs::metadata(&path).unwrap().len();
            let c = counting(&path);
            identify(&c).unwrap();
            let (bytes, reads) = (
                c.bytes.load(Ordering::Relaxed),
                c.reads.load(Ordering::Relaxed),
            );
            assert!(
                bytes < 96 << 10 && reads < 16,
                "identify read {bytes} bytes in {reads} reads"
            );
            let c = std::sync::Arc::new(counting(&path));
            let bin = GoBinary::parse(c.clone()).unwrap();
            let parse_bytes = c.bytes.load(Ordering::Relaxed);
            let writable: u64 = bin
                .load_segments()
                .filter(|s| s.flags & 2 != 0)
                .map(|s| s.filesz)
                .sum();
            let budget = bin.pclntab_size() as u64 + writable + (128 << 10);
            assert!(
                parse_bytes <= budget && parse_bytes < size,
                "go{} {}: parse read {parse_bytes} of {size} bytes (pclntab {})",
                tc.version,
                variant.name(),
                bin.pclntab_size()
            );
            println!(
                "go{} {}: identify {bytes} B / {reads} reads; parse {parse_bytes} B of {size} (pclntab {})",
                tc.version,
                variant.name(),
                bin.pclntab_size()
            );
        }
    }
}

/// The file with its section header table removed (e_shoff, e_shnum, e_shstrndx zeroed).
fn without_sections(path: &std::path::Path) -> Vec<u8> {
    let mut b = std::fs::read(path).unwrap();
    b[0x28..0x30].fill(0);
    b[0x3c..0x40].fill(0);
    b
}

#[test]
fn binaries_without_section_headers_give_the_same_answers() {
    for series in ["1.19", "1.21", "1.23", "1.25", "1.27"] {
        let tc = toolchain(series);
        for variant in Variant::ALL {
            let path = fixture(&tc, variant);
            let label = format!("go{} {}", tc.version, variant.name());
            let with = GoBinary::open(&path).unwrap();
            let bare = GoBinary::parse(without_sections(&path)).unwrap();
            assert_eq!(bare.pclntab_found(), Found::MagicScan, "{label}");
            assert_eq!(with.pclntab_found(), Found::Section, "{label}");
            assert!(bare.stripped() && !bare.has_dwarf());
            assert_eq!(bare.go_version(), with.go_version(), "{label}");
            assert_eq!(bare.build_info(), with.build_info(), "{label}");
            assert_eq!(bare.go_build_id(), with.go_build_id(), "{label}");
            // Go's linker covers only its own note with PT_NOTE; the GNU note (Go 1.26+ or
            // external linking) is reachable through sections only, unless the external
            // linker's PT_NOTE holds it.
            assert!(
                bare.gnu_build_id().is_none() || bare.gnu_build_id() == with.gnu_build_id(),
                "{label}"
            );
            assert_eq!(bare.text_start(), with.text_start(), "{label}");
            assert_eq!(bare.moduledata(), with.moduledata(), "{label}");
            assert!(
                bare.functions().eq(with.functions()),
                "{label}: function tables differ"
            );
            for pc in sample_pcs(&with, 300) {
                assert_eq!(bare.symbolize(pc), with.symbolize(pc), "{label} at {pc:#x}");
            }
        }
    }
}
