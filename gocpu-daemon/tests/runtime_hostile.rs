//! The runtime-state readers on fake memory: a synthetic runtime image whose contents the test
//! chooses (exact counts expected), then hostile images — random garbage, a looping m list,
//! huge lengths, unreadable arrays, a forged allp — which must give errors, never a panic, a
//! hang or a made-up number. No root needed.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;

use gocpu_daemon::runtime::{
    MemError, ProcessMemory, ReadError, RuntimeLayout, census::MAX_ALLGLEN, read_census, read_ms,
    read_sched,
};
use gocpu_gobin::offsets::{
    OffsetsSource, StructOffsets, for_version, names,
    symbols::{Located, RuntimeSymbols, SymbolSource},
};

/// Sparse memory: regions at fixed addresses; anything else is unreadable.
#[derive(Default)]
struct FakeMem {
    regions: BTreeMap<u64, Vec<u8>>,
}

impl FakeMem {
    fn region(&mut self, addr: u64, len: usize) -> &mut Vec<u8> {
        self.regions.entry(addr).or_insert_with(|| vec![0; len])
    }

    fn put(&mut self, addr: u64, bytes: &[u8]) {
        let (&base, region) = self.regions.range_mut(..=addr).next_back().unwrap();
        let off = (addr - base) as usize;
        region[off..off + bytes.len()].copy_from_slice(bytes);
    }

    fn put_u64(&mut self, addr: u64, v: u64) {
        self.put(addr, &v.to_le_bytes());
    }

    fn put_field(&mut self, base: u64, f: gocpu_gobin::offsets::Field, v: u64) {
        self.put(
            base + u64::from(f.offset),
            &v.to_le_bytes()[..f.size as usize],
        );
    }
}

impl ProcessMemory for FakeMem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let err = MemError::Unreadable {
            addr,
            len: buf.len(),
        };
        let (&base, region) = self.regions.range(..=addr).next_back().ok_or(err.clone())?;
        let off = usize::try_from(addr - base).map_err(|_| err.clone())?;
        let src = region.get(off..off + buf.len()).ok_or(err)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

const VERSION: &str = "go1.25.5";
const ALLGS: u64 = 0x50_0000;
const ALLGLEN: u64 = 0x50_0100;
const ALLM: u64 = 0x50_0200;
const GOMAXPROCS: u64 = 0x50_0300;
const ALLP: u64 = 0x50_0400;
const SCHED: u64 = 0x50_1000;
const HEAP: u64 = 0xc0_0000_0000;
const G_SIZE: u64 = 512;
const SYSTEM_START: u64 = 0x40_1000;
const USER_START: u64 = 0x40_2000;

fn located(vaddr: u64) -> Result<Located, gocpu_gobin::offsets::symbols::SymbolError> {
    Ok(Located {
        vaddr,
        source: SymbolSource::Symtab,
    })
}

fn layout() -> RuntimeLayout {
    RuntimeLayout::from_parts(
        offsets(),
        OffsetsSource::Dwarf,
        RuntimeSymbols {
            allgs: located(ALLGS),
            allglen: located(ALLGLEN),
            allm: located(ALLM),
            sched: located(SCHED),
            gomaxprocs: located(GOMAXPROCS),
            allp: located(ALLP),
        },
        Ok(names::for_version(VERSION).unwrap()),
        vec![SYSTEM_START],
    )
}

fn offsets() -> StructOffsets {
    for_version(VERSION).unwrap()
}

/// Status value of the constant `name` in the release's table.
fn status(name: &str) -> u64 {
    let n = names::for_version(VERSION).unwrap();
    u64::from(
        n.statuses
            .iter()
            .find(|s| s.constant == name)
            .unwrap()
            .value,
    )
}

fn reason(text: &str) -> u64 {
    let n = names::for_version(VERSION).unwrap();
    n.wait_reasons.iter().position(|r| *r == text).unwrap() as u64
}

/// A consistent runtime image: `gs` = (status, wait reason, start), 2 Ps, 3 Ms.
fn image(gs: &[(u64, u64, u64)]) -> FakeMem {
    let o = offsets();
    let mut m = FakeMem::default();
    m.region(ALLGS, 0x1000);
    m.region(SCHED, 0x1000);
    let array = HEAP;
    m.region(array, gs.len() * 8);
    m.region(HEAP + 0x10_0000, gs.len() * G_SIZE as usize + 0x1000);
    m.put_u64(ALLGLEN, gs.len() as u64);
    m.put_u64(ALLGS + u64::from(o.allgs_array.offset), array);
    m.put_u64(ALLGS + u64::from(o.allgs_len.offset), gs.len() as u64);
    for (i, &(st, wr, start)) in gs.iter().enumerate() {
        let g = HEAP + 0x10_0000 + i as u64 * G_SIZE;
        m.put_u64(array + i as u64 * 8, g);
        m.put_field(g, o.g_atomicstatus, st);
        m.put_field(g, o.g_waitreason, wr);
        m.put_field(g, o.g_goid, i as u64 + 1);
        m.put_field(g, o.g_startpc, start);
    }
    // Ps.
    let parray = HEAP + 0x20_0000;
    m.region(parray, 0x10000);
    m.put_u64(GOMAXPROCS, 2);
    m.put_u64(ALLP + u64::from(o.allgs_array.offset), parray);
    m.put_u64(ALLP + u64::from(o.allgs_len.offset), 2);
    for i in 0..2u64 {
        let p = parray + 0x1000 + i * 0x1000;
        m.put_u64(parray + i * 8, p);
        m.put_field(p, o.p_id, i);
        m.put_field(p, o.p_runqhead, 10);
        m.put_field(p, o.p_runqtail, 10 + 3 * i);
    }
    // sched counters.
    m.put_field(SCHED, o.sched_goidgen, 1000);
    m.put_field(SCHED, o.sched_mnext, 4);
    m.put_field(SCHED, o.sched_nmfreed, 1);
    m.put_field(SCHED, o.sched_nmidle, 1);
    m.put_field(SCHED, o.sched_nmsys, 1);
    m.put_field(SCHED, o.sched_npidle, 1);
    m.put_field(SCHED, o.sched_nmspinning, 0);
    m.put_field(SCHED, o.sched_runqsize, 7);
    // Ms: allm -> m2 -> m1 -> m0.
    let ms = HEAP + 0x30_0000;
    m.region(ms, 0x4000);
    let maddr = |i: u64| ms + i * 0x1000;
    m.put_u64(ALLM, maddr(2));
    for i in 0..3u64 {
        let a = maddr(i);
        m.put_field(a, o.m_id, i);
        m.put_field(a, o.m_procid, 1000 + i);
        m.put_field(a, o.m_alllink, if i == 0 { 0 } else { maddr(i - 1) });
        m.put_field(a, o.m_spinning, u64::from(i == 1));
    }
    // m0 holds P 1 and runs the first g.
    m.put_field(maddr(0), o.m_p, parray + 0x2000);
    m.put_field(maddr(0), o.m_curg, HEAP + 0x10_0000);
    m
}

fn sample_gs() -> Vec<(u64, u64, u64)> {
    let (w, r, d) = (status("_Gwaiting"), status("_Grunning"), status("_Gdead"));
    let scan = u64::from(names::for_version(VERSION).unwrap().scan_bit);
    let mut gs = vec![(r, 0, USER_START)];
    gs.extend((0..40).map(|_| (w, reason("chan receive"), USER_START)));
    gs.extend((0..3).map(|_| (w | scan, reason("select"), USER_START)));
    gs.extend((0..2).map(|_| (w, reason("GC worker (idle)"), SYSTEM_START)));
    gs.extend((0..5).map(|_| (d, 0, USER_START)));
    gs.push((w, 250, USER_START)); // an index past the table
    gs
}

#[test]
fn synthetic_image_gives_exact_counts() {
    let l = layout();
    let mem = image(&sample_gs());
    let c = read_census(&mem, &l, 0).unwrap();
    assert_eq!(
        (c.allglen, c.read, c.unreadable, c.max_goid),
        (52, 52, 0, 52)
    );
    let n = c.named.unwrap();
    assert_eq!((n.live, n.user, n.system, n.scanning), (47, 45, 2, 3));
    assert_eq!(n.by_status.get("running"), Some(&1));
    assert_eq!(n.by_status.get("waiting"), Some(&46));
    assert_eq!(n.by_status.get("dead"), None);
    assert_eq!(n.by_wait_reason.get("chan receive"), Some(&40));
    assert_eq!(n.by_wait_reason.get("select"), Some(&3));
    assert_eq!(n.by_wait_reason.get("unknown wait reason"), Some(&1));
    assert_eq!(n.by_start.get(&USER_START), Some(&45));
    assert_eq!(c.by_raw.values().sum::<u64>(), 52);

    let s = read_sched(&mem, &l, 0).unwrap();
    assert_eq!(s.gomaxprocs, Ok(2));
    assert_eq!(s.idle_ps, Ok(1));
    assert_eq!(s.spinning_ms, Ok(0));
    assert_eq!(s.idle_ms, Ok(1));
    assert_eq!(s.system_ms, Ok(1));
    assert_eq!(s.threads, Ok(3));
    assert_eq!(s.global_runq, Ok(7));
    assert_eq!(s.goidgen, Ok(1000));
    assert_eq!(s.local_runqs, Ok(vec![0, 3]));

    let ms = read_ms(&mem, &l, 0).unwrap();
    let tids: Vec<u32> = ms.iter().map(|m| m.tid).collect();
    assert_eq!(tids, [1002, 1001, 1000]);
    assert!(ms[1].spinning && !ms[0].spinning);
    assert_eq!((ms[2].p_id, ms[2].curg_goid), (Some(1), Some(1)));
    assert!(!ms[0].has_p && !ms[0].has_curg);
}

#[test]
fn a_load_bias_moves_every_address() {
    let mut mem = image(&sample_gs());
    // Move the module's variables by the bias; heap pointers stay where they are.
    let bias = 0x5555_0000_0000;
    let moved: BTreeMap<u64, Vec<u8>> = mem
        .regions
        .into_iter()
        .map(|(a, r)| (if a < HEAP { a + bias } else { a }, r))
        .collect();
    mem.regions = moved;
    let l = layout();
    assert!(read_census(&mem, &l, 0).is_err());
    let c = read_census(&mem, &l, bias).unwrap();
    // Start PCs in the gs are link-time here, so with a bias nothing is a system start.
    assert_eq!(c.named.unwrap().live, 47);
    assert_eq!(read_sched(&mem, &l, bias).unwrap().threads, Ok(3));
    assert_eq!(read_ms(&mem, &l, bias).unwrap().len(), 3);
}

#[test]
fn unknown_release_keeps_counts_by_index() {
    let l = layout();
    let l = RuntimeLayout::from_parts(
        *l.offsets(),
        OffsetsSource::Dwarf,
        l.symbols().clone(),
        names::for_version("go1.99.0").map_err(gocpu_daemon::runtime::Unavailable::Names),
        vec![],
    );
    let c = read_census(&image(&sample_gs()), &l, 0).unwrap();
    let e = c.named.unwrap_err();
    assert!(e.to_string().contains("go1.99.0"), "{e}");
    let key = (status("_Gwaiting") as u32, reason("chan receive") as u8);
    assert_eq!(c.by_raw.get(&key), Some(&40));
}

#[test]
fn looping_m_list_is_an_error() {
    let o = offsets();
    let mut mem = image(&sample_gs());
    let m0 = HEAP + 0x30_0000;
    mem.put_field(m0, o.m_alllink, m0 + 0x2000); // m0 -> m2 -> m1 -> m0
    assert_eq!(
        read_ms(&mem, &layout(), 0),
        Err(ReadError::Cycle {
            what: "runtime.allm"
        })
    );
    mem.put_field(m0, o.m_alllink, 0xdead_beef); // misaligned garbage
    assert_eq!(
        read_ms(&mem, &layout(), 0).unwrap_err().kind(),
        "implausible"
    );
    mem.put_field(m0, o.m_alllink, 0x7000_0000_0000); // aligned, unmapped
    assert_eq!(
        read_ms(&mem, &layout(), 0).unwrap_err().kind(),
        "unreadable"
    );
}

#[test]
fn huge_and_inconsistent_lengths_are_refused() {
    let o = offsets();
    let l = layout();
    let mut mem = image(&sample_gs());
    mem.put_u64(ALLGLEN, MAX_ALLGLEN + 1);
    assert_eq!(read_census(&mem, &l, 0).unwrap_err().kind(), "too_many");
    mem.put_u64(ALLGLEN, u64::MAX);
    assert_eq!(read_census(&mem, &l, 0).unwrap_err().kind(), "too_many");
    mem.put_u64(ALLGLEN, 0);
    assert_eq!(read_census(&mem, &l, 0).unwrap_err().kind(), "implausible");
    // allglen beyond len(allgs), then an array pointer into nothing.
    mem.put_u64(ALLGLEN, 1000);
    assert_eq!(read_census(&mem, &l, 0).unwrap_err().kind(), "implausible");
    mem.put_u64(ALLGLEN, 52);
    mem.put_u64(ALLGS + u64::from(o.allgs_array.offset), 0x6000_0000_0000);
    assert_eq!(read_census(&mem, &l, 0).unwrap_err().kind(), "unreadable");
    // A huge allp and gomaxprocs: implausible, and the other gauges still read.
    mem.put_u64(ALLP + u64::from(o.allgs_len.offset), 1 << 40);
    mem.put_u64(GOMAXPROCS, u64::from(u32::MAX));
    let s = read_sched(&mem, &l, 0).unwrap();
    assert_eq!(s.local_runqs.unwrap_err().kind(), "implausible");
    assert_eq!(s.gomaxprocs.unwrap_err().kind(), "implausible");
    assert_eq!(s.threads, Ok(3));
}

#[test]
fn unreadable_gs_are_counted_not_guessed() {
    let o = offsets();
    let mut mem = image(&sample_gs());
    mem.put_u64(HEAP + 8, 0x7777_0000_0000); // allgs[1] points nowhere
    mem.put_u64(HEAP + 16, HEAP + 0x10_0000 + 3); // allgs[2] misaligned
    let c = read_census(&mem, &layout(), 0).unwrap();
    assert_eq!((c.read, c.unreadable), (50, 2));
    assert_eq!(
        c.named.unwrap().by_wait_reason.get("chan receive"),
        Some(&38)
    );
    // A forged allp whose ids do not match their index.
    let p1 = HEAP + 0x20_0000 + 0x2000;
    mem.put_field(p1, o.p_id, 7);
    let s = read_sched(&mem, &layout(), 0).unwrap();
    assert_eq!(s.local_runqs.unwrap_err().kind(), "implausible");
}

#[test]
fn coalesced_reads_across_a_hole_fall_back_to_single_gs() {
    let mut mem = image(&sample_gs());
    let gbase = HEAP + 0x10_0000;
    let end = 52 * G_SIZE;
    let g0: Vec<u8> = mem.regions[&gbase][..G_SIZE as usize].to_vec();
    mem.regions.get_mut(&gbase).unwrap().truncate(end as usize);
    // A copy of g 0 (running) 8 bytes past the end of the region: close enough to the last g
    // to be read in the same range, which then fails on the hole.
    let moved = gbase + end + 8;
    mem.regions.insert(moved, g0);
    mem.put_u64(HEAP + 5 * 8, moved);
    let c = read_census(&mem, &layout(), 0).unwrap();
    assert_eq!((c.read, c.unreadable), (52, 0));
    let n = c.named.unwrap();
    assert_eq!(n.by_status.get("running"), Some(&2));
    assert_eq!(n.by_wait_reason.get("chan receive"), Some(&39));
}

#[test]
fn unavailable_variables_are_reported_with_the_reason() {
    let l = layout();
    let mut syms = l.symbols().clone();
    syms.sched = Err(gocpu_gobin::offsets::symbols::SymbolError::NotX86);
    syms.gomaxprocs = Err(gocpu_gobin::offsets::symbols::SymbolError::NoFunction {
        function: "runtime.(*scavengerState).init.func4",
    });
    let l = RuntimeLayout::from_parts(*l.offsets(), OffsetsSource::Dwarf, syms, l.names(), vec![]);
    let s = read_sched(&image(&sample_gs()), &l, 0).unwrap();
    for e in [&s.idle_ps, &s.spinning_ms, &s.threads, &s.gomaxprocs] {
        let e = e.as_ref().unwrap_err();
        assert_eq!(e.kind(), "symbol", "{e}");
    }
    assert!(
        s.gomaxprocs
            .unwrap_err()
            .to_string()
            .contains("scavengerState")
    );
    assert_eq!(s.local_runqs, Ok(vec![0, 3]));
    assert_eq!(l.unavailable().len(), 2);
}

/// xorshift64*: deterministic garbage.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn random_garbage_never_panics_or_hangs() {
    let l = layout();
    let (mut errors, mut oks) = (0, 0);
    for seed in 0..300u64 {
        let mut mem = FakeMem::default();
        // Garbage where the variables live, in a small "heap", and (for half the seeds)
        // pointers from the variables into that heap so the walkers get past the first read.
        mem.regions.insert(ALLGS, garbage(seed, 0x1000));
        mem.regions.insert(HEAP, garbage(seed ^ 0xabc, 0x4_0000));
        if seed % 2 == 0 {
            let o = offsets();
            mem.put_u64(ALLGLEN, seed % 64 + 1);
            mem.put_u64(
                ALLGS + u64::from(o.allgs_array.offset),
                HEAP + (seed % 8) * 8,
            );
            mem.put_u64(ALLGS + u64::from(o.allgs_len.offset), 1 << 20);
            mem.put_u64(ALLM, HEAP + 0x100 * (seed % 16) * 8);
            mem.put_u64(ALLP + u64::from(o.allgs_array.offset), HEAP);
            mem.put_u64(ALLP + u64::from(o.allgs_len.offset), seed % 5);
        }
        mem.regions.insert(SCHED, garbage(seed ^ 0x5ced, 0x1000));
        for r in [
            read_census(&mem, &l, 0).map(|_| ()),
            read_sched(&mem, &l, 0).map(|_| ()),
            read_ms(&mem, &l, 0).map(|_| ()),
        ] {
            match r {
                Ok(()) => oks += 1,
                Err(_) => errors += 1,
            }
        }
    }
    println!("garbage: {errors} errors, {oks} reads that passed validation");
    assert!(errors > 0);
}

#[test]
fn load_bias_needs_consistent_mappings_of_the_executable() {
    use gocpu_daemon::{
        discovery::maps::parse_maps,
        runtime::{BiasError, load_bias},
    };
    let tc = gocpu_testkit::go_bin_series("1.25");
    let bin = gocpu_testkit::build(
        &tc,
        &gocpu_testkit::workload("goroutineleak"),
        gocpu_testkit::Variant::Pie,
    );
    let gb = gocpu_gobin::GoBinary::open(&bin).unwrap();
    let segs: Vec<_> = gb.load_segments().cloned().collect();
    assert!(segs.len() >= 2 && gb.is_pie());
    let base = 0x5600_0000_0000u64;
    let line = |s: &gocpu_gobin::Segment, start: u64, inode: u64| {
        format!(
            "{:x}-{:x} r-xp {:08x} fd:01 {inode} /bin/prog\n",
            start + (s.vaddr & !0xfff),
            start + ((s.vaddr + s.memsz + 0xfff) & !0xfff),
            s.offset & !0xfff
        )
    };
    let good: String = segs.iter().map(|s| line(s, base, 42)).collect();
    assert_eq!(load_bias(&gb, 42, &parse_maps(&good)), Ok(base));
    // Another file's mappings (other inode) and garbage lines do not count.
    let mixed = format!("{}garbage\n{}", line(&segs[0], 0x7000_0000_0000, 7), good);
    assert_eq!(load_bias(&gb, 42, &parse_maps(&mixed)), Ok(base));
    assert_eq!(
        load_bias(&gb, 42, &parse_maps(&line(&segs[0], base, 7))),
        Err(BiasError::NotMapped { inode: 42 })
    );
    assert_eq!(
        load_bias(&gb, 0, &parse_maps(&good)),
        Err(BiasError::NotMapped { inode: 0 })
    );
    let split = format!(
        "{}{}",
        line(&segs[0], base, 42),
        line(&segs[1], base + 0x1000, 42)
    );
    assert!(matches!(
        load_bias(&gb, 42, &parse_maps(&split)),
        Err(BiasError::Inconsistent { .. })
    ));
    // The executable file mapped once more elsewhere (a program reading itself): the majority
    // of mappings still decides.
    let extra = format!("{good}{}", line(&segs[0], 0x7100_0000_0000, 42));
    assert_eq!(load_bias(&gb, 42, &parse_maps(&extra)), Ok(base));
}
