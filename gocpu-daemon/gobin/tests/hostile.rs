//! Hostile input: truncated files at many cut points, a file that shrinks while being read,
//! garbage, forged huge counts, sizes and offsets, cyclic inline trees. Everything must end in
//! an error (or a partial answer), never a panic, a hang or a huge allocation.
#![allow(clippy::unwrap_used, clippy::print_stdout)]
mod common;

use std::{
    fs::OpenOptions,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use common::{
    fixture,
    synth::{self, Fmt},
    toolchain,
};
use gocpu_gobin::{BinaryCache, ByteSource, GoBinary, GobinError, SourceError, fuzzing, identify};
use gocpu_testkit::Variant;

fn sample(fmt: Fmt) -> Vec<u8> {
    synth::sample_elf(fmt, "go1.25.5", true, true, 16)
}

fn le64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Offset of the section header named `name` in a synthetic ELF.
fn shdr(elf: &[u8], name: &str) -> usize {
    let u16at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let (shoff, shnum, shstrndx) = (u64at(40), u16at(60), u16at(62));
    let strtab = u64at(shoff + shstrndx * 64 + 24);
    (0..shnum)
        .map(|i| shoff + i * 64)
        .find(|&h| {
            let n = u32::from_le_bytes(elf[h..h + 4].try_into().unwrap()) as usize;
            elf[strtab + n..].starts_with(name.as_bytes()) && elf[strtab + n + name.len()] == 0
        })
        .unwrap()
}

fn pclntab_offset(elf: &[u8]) -> usize {
    let h = shdr(elf, ".gopclntab");
    u64::from_le_bytes(elf[h + 24..h + 32].try_into().unwrap()) as usize
}

#[test]
fn synthetic_files_truncated_at_every_byte() {
    for fmt in [Fmt::Go12, Fmt::Go116, Fmt::Go118, Fmt::Go120] {
        let full = sample(fmt);
        assert!(GoBinary::parse(full.clone()).is_ok());
        for cut in 0..full.len() {
            let part = full[..cut].to_vec();
            fuzzing::elf_file(&part);
            // The section headers are at the end: any cut loses them or the pclntab.
            assert!(
                GoBinary::parse(part).is_err(),
                "{fmt:?} cut at {cut} parsed"
            );
        }
    }
}

#[test]
fn real_binary_truncated_at_many_points() {
    let path = fixture(&toolchain("1.25"), Variant::Default);
    let full = std::fs::read(&path).unwrap();
    let mut cuts: Vec<usize> = (0..256).collect();
    cuts.extend((256..full.len()).step_by(7919));
    let (mut ok, mut err) = (0, 0);
    for &cut in &cuts {
        match GoBinary::parse(full[..cut].to_vec()) {
            Ok(b) => {
                ok += 1;
                // Whatever parsed must answer queries without panicking.
                for f in b.functions().step_by(97) {
                    let _ = b.symbolize(f.entry + 1);
                    let mut buf = [0u8; 32];
                    let _ = b.read_vaddr(f.entry, &mut buf);
                }
            }
            Err(_) => err += 1,
        }
    }
    println!(
        "{} cuts: {ok} parsed (cut after the pclntab), {err} errors",
        cuts.len()
    );
    assert!(err > 0);
}

/// A file that shrinks (to half its size) after `after` reads: the next read fails.
struct Shrinking {
    file: std::fs::File,
    path: std::path::PathBuf,
    reads: AtomicUsize,
    after: usize,
}

impl ByteSource for Shrinking {
    fn len(&self) -> u64 {
        self.file.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        if self.reads.fetch_add(1, Ordering::SeqCst) == self.after {
            let f = OpenOptions::new().write(true).open(&self.path).unwrap();
            f.set_len(self.file.len() / 2).unwrap();
        }
        self.file.read_at(offset, buf)
    }
}

#[test]
fn file_shrinking_while_being_read_is_an_error() {
    let src = fixture(&toolchain("1.25"), Variant::Stripped);
    let dir = std::env::temp_dir().join(format!("gobin-shrink-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut errors = 0;
    for after in 0..12 {
        let path = dir.join(format!("bin{after}"));
        std::fs::copy(&src, &path).unwrap();
        let s = Shrinking {
            file: std::fs::File::open(&path).unwrap(),
            path: path.clone(),
            reads: AtomicUsize::new(0),
            after,
        };
        match GoBinary::parse(s) {
            Err(GobinError::Source(SourceError::Truncated { .. }))
            | Err(GobinError::MalformedPclntab { .. })
            | Err(GobinError::NotGo { .. }) => errors += 1,
            Err(e) => panic!("after {after} reads: unexpected error {e}"),
            // Shrinking after the last read leaves a complete parse.
            Ok(_) => {}
        }
    }
    assert!(errors >= 3, "only {errors} shrinks were noticed");
    // A parsed binary whose file shrinks later: reads fail with an error, no SIGBUS.
    let path = dir.join("later");
    std::fs::copy(&src, &path).unwrap();
    let bin = GoBinary::open(&path).unwrap();
    let f = bin.function("main.main").unwrap();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(
        bin.read_vaddr(f.entry, &mut buf),
        Err(GobinError::Source(SourceError::Truncated { .. }))
    ));
    // The function table is in memory and keeps answering.
    assert_eq!(
        bin.symbolize(f.entry).unwrap().last().unwrap().function,
        "main.main"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn garbage_and_non_go_files_get_distinct_errors() {
    let mut state = 0x1234_5678_9abc_def0u64;
    for len in [0usize, 1, 3, 4, 15, 16, 63, 64, 65, 1000, 100_000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert!(
            matches!(GoBinary::parse(bytes.clone()), Err(GobinError::NotElf)),
            "{len}"
        );
        let mut elf = bytes;
        if elf.len() >= 64 {
            elf[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
            fuzzing::elf_file(&elf);
            assert!(GoBinary::parse(elf).is_err());
        }
    }
    // A real ELF that is not Go.
    let not_go = std::fs::File::open("/bin/true").unwrap();
    assert!(matches!(identify(&not_go), Err(GobinError::NotGo { .. })));
    assert!(matches!(
        GoBinary::open(std::path::Path::new("/bin/true")),
        Err(GobinError::NotGo { .. })
    ));
    assert!(matches!(
        GoBinary::open(std::path::Path::new("/nonexistent/gobin")),
        Err(GobinError::Open { .. })
    ));
    // Unsupported class / byte order / version.
    for (at, v) in [(4usize, 3u8), (5, 9), (6, 2)] {
        let mut elf = sample(Fmt::Go120);
        elf[at] = v;
        assert!(matches!(
            GoBinary::parse(elf),
            Err(GobinError::UnsupportedElf { .. })
        ));
    }
}

#[test]
fn forged_counts_sizes_and_offsets_are_rejected() {
    let base = sample(Fmt::Go120);
    let check = |elf: Vec<u8>, what: &str| {
        fuzzing::elf_file(&elf);
        let r = GoBinary::parse(elf);
        assert!(r.is_err(), "{what}: parsed");
        println!("{what}: {}", r.err().unwrap());
    };
    // Program and section header counts and offsets.
    let mut e = base.clone();
    e[56..58].copy_from_slice(&0xfffeu16.to_le_bytes());
    check(e, "65534 program headers");
    let mut e = base.clone();
    le64(&mut e, 32, u64::MAX - 8);
    check(e, "program headers at u64::MAX");
    let mut e = base.clone();
    le64(&mut e, 40, u64::MAX - 100);
    check(e, "section headers at u64::MAX");
    let mut e = base.clone();
    e[60..62].copy_from_slice(&0u16.to_le_bytes());
    // shnum 0 with shoff set: extended numbering reads the count from section 0 (size field).
    let shoff = u64::from_le_bytes(e[40..48].try_into().unwrap()) as usize;
    le64(&mut e, shoff + 32, 1 << 40);
    check(e, "2^40 sections via extended numbering");
    // .gopclntab section claiming to be huge.
    let mut e = base.clone();
    let h = shdr(&e, ".gopclntab");
    le64(&mut e, h + 32, u64::MAX);
    check(e, ".gopclntab of u64::MAX bytes");
    let mut e = base.clone();
    le64(&mut e, h + 24, u64::MAX - 3);
    check(e, ".gopclntab at offset u64::MAX");
    // pclntab header: huge function count, offsets out of range, unsorted functab.
    let p = pclntab_offset(&base);
    for (word, value, what) in [
        (0usize, 1u64 << 40, "2^40 functions"),
        (0, (1 << 24) - 1, "16M functions in a tiny table"),
        (3, u64::MAX, "funcnametab offset u64::MAX"),
        (7, 1 << 31, "pcln offset beyond the table"),
    ] {
        let mut e = base.clone();
        le64(&mut e, p + 8 + word * 8, value);
        check(e, what);
    }
    let mut e = base.clone();
    let pcln = u64::from_le_bytes(e[p + 8 + 7 * 8..p + 16 + 7 * 8].try_into().unwrap()) as usize;
    // Second function's entry offset far above the third's.
    e[p + pcln + 8..p + pcln + 12].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    check(e, "unsorted function table");
}

#[test]
fn hostile_tables_inside_a_valid_header_give_partial_answers() {
    // Point every function's pcfile/pcln offsets at the end of the table: lookups find no
    // line information instead of reading out of bounds.
    let mut t = synth::sample_table(Fmt::Go120);
    t.funcs[1].inl[1].parent_pc = 0x28; // leaf's parent PC inside leaf itself: a cycle.
    t.funcs[1].inl[0].parent_pc = 0x28;
    let w = synth::write(&t, synth::PCLNTAB, synth::FUNCDATA);
    let mut input = (w.pclntab.len() as u32).to_le_bytes().to_vec();
    input.extend(&w.pclntab);
    input.extend(&w.funcdata);
    fuzzing::inline_tree(&input);
    let tab = gocpu_gobin::Pclntab::parse(w.pclntab.clone(), synth::PCLNTAB).unwrap();
    let f = tab.func(1).unwrap();
    assert!(f.file_line(f.entry() + 0x28).is_some());
    // Through a whole binary: the cyclic tree stops at the depth limit with the real function
    // last.
    let mut elf = synth::sample_elf(Fmt::Go120, "go1.25.5", true, true, 16);
    let pos = elf
        .windows(w.funcdata.len())
        .position(|win| {
            win == synth::write(
                &synth::sample_table(Fmt::Go120),
                synth::PCLNTAB,
                synth::FUNCDATA,
            )
            .funcdata
            .as_slice()
        })
        .unwrap();
    elf[pos..pos + w.funcdata.len()].copy_from_slice(&w.funcdata);
    let bin = GoBinary::parse(elf).unwrap();
    let frames = bin.symbolize(synth::TEXT + 0x20 + 0x28).unwrap();
    assert!(frames.len() <= 257, "{} frames", frames.len());
    assert_eq!(frames.last().unwrap().function, "main.caller");
    assert!(!frames.last().unwrap().inlined);
}

#[test]
fn buildinfo_with_forged_lengths_is_ignored_not_fatal() {
    let mut elf = sample(Fmt::Go120);
    let h = shdr(&elf, ".go.buildinfo");
    let off = u64::from_le_bytes(elf[h + 24..h + 32].try_into().unwrap()) as usize;
    // Version length varint: 10 bytes of 0xff -> overflow; then a huge but valid length.
    let mut e = elf.clone();
    e[off + 32..off + 42].fill(0xff);
    let bin = GoBinary::parse(e).unwrap();
    assert!(bin.build_info().is_none());
    elf[off + 32..off + 37].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let bin = GoBinary::parse(elf).unwrap();
    assert!(bin.build_info().is_none());
    assert_eq!(bin.function_count(), 3);
}

#[test]
fn cache_keys_on_file_identity() {
    let src = fixture(&toolchain("1.25"), Variant::Stripped);
    let dir = std::env::temp_dir().join(format!("gobin-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::copy(&src, &a).unwrap();
    std::fs::copy(&src, &b).unwrap();
    let cache = BinaryCache::new(1);
    let (ka, x) = cache.open(&a).unwrap();
    let (ka2, y) = cache.open(&a).unwrap();
    assert_eq!(ka, ka2);
    assert!(Arc::ptr_eq(&x, &y), "same file: one parse");
    // Same bytes, another inode: its own entry (build IDs are not trusted as keys); with
    // capacity 1 it evicts the first.
    let (kb, z) = cache.open(&b).unwrap();
    assert_ne!(ka, kb);
    assert!(!Arc::ptr_eq(&x, &z));
    assert_eq!(cache.len(), 1);
    assert!(cache.get(&ka).is_none());
    // Rewriting the file changes its key.
    std::fs::copy(&src, &b).unwrap();
    let f = OpenOptions::new().append(true).open(&b).unwrap();
    f.set_len(f.len() + 1).unwrap();
    let (kb2, _) = cache.open(&b).unwrap();
    assert_ne!(kb, kb2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_wrong_or_missing_text_start_is_an_error_not_shifted_addresses() {
    // Go 1.27 layout: no text start in the header, so it must come from moduledata.
    let good = synth::sample_elf(Fmt::Go120, "go1.27.3", false, true, 16);
    assert!(GoBinary::parse(good.clone()).is_ok());
    let h = shdr(&good, ".noptrdata");
    let md = u64::from_le_bytes(good[h + 24..h + 32].try_into().unwrap()) as usize;
    assert_eq!(good[md..md + 8], synth::PCLNTAB.to_le_bytes());
    // Moduledata whose text points 1 MB away: every function would move.
    let mut shifted = good.clone();
    le64(&mut shifted, md + 22 * 8, synth::TEXT + (1 << 20));
    let e = GoBinary::parse(shifted).unwrap_err();
    assert!(matches!(e, GobinError::MalformedPclntab { .. }), "{e}");
    // No moduledata at all (its first word no longer points at the pclntab), no symbols.
    let mut gone = good;
    le64(&mut gone, md, 0);
    let e = GoBinary::parse(gone).unwrap_err();
    assert!(e.to_string().contains("no text start"), "{e}");
}
