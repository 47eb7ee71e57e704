//! Uprobes through BPF `uprobe_multi` links (BPF_LINK_CREATE with attach type
//! BPF_TRACE_UPROBE_MULTI, Linux 6.6+).
//!
//! Why: creating a uprobe through `perf_event_open` needs CAP_SYS_ADMIN again on current kernels
//! (a security fix, backported to the stable series, reverted `perf_uprobe_event_init` from
//! CAP_PERFMON to CAP_SYS_ADMIN), while a `uprobe_multi` link needs only CAP_BPF and
//! CAP_PERFMON. One link carries any number of offsets in one file, and closing it detaches them
//! all.
//!
//! aya 0.14 can neither load a program with that expected attach type nor create the link (aya
//! 0.15+ can, but needs a newer compiler than the one pinned for bpf-linker), so this module does
//! both with bpf(2): it parses the same embedded object with aya-obj, points every map reference
//! at the map aya already created (so both sides share PROCS, THREADS and the load-time globals),
//! and loads the named programs as BPF_PROG_TYPE_KPROBE expecting BPF_TRACE_UPROBE_MULTI.
use std::{
    collections::{HashMap, HashSet},
    ffi::CString,
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::Path,
};

use aya_obj::generated::{
    bpf_attach_type::BPF_TRACE_UPROBE_MULTI, bpf_attr, bpf_cmd, bpf_insn,
    bpf_prog_type::BPF_PROG_TYPE_KPROBE,
};

/// Errors of the `uprobe_multi` path.
#[derive(Debug, thiserror::Error)]
pub enum MultiError {
    /// The embedded object could not be parsed or relinked.
    #[error("relinking the eBPF object: {0}")]
    Object(String),
    /// A program the caller asked for is not in the object.
    #[error("program {0} is not in the eBPF object")]
    MissingProgram(String),
    /// A map the object references was not created by the main loader.
    #[error("map {0} of the eBPF object was not created")]
    MissingMap(String),
    /// The kernel refused the program.
    #[error("loading {name} for uprobe_multi: {source}{log}")]
    Load {
        /// Program name.
        name: String,
        /// The kernel's answer.
        source: io::Error,
        /// The verifier's last lines, when it gave any (starts with a newline).
        log: String,
    },
    /// The kernel refused the link.
    #[error("uprobe_multi link on {path} at {offsets:x?}: {source}")]
    Link {
        /// The probed file.
        path: String,
        /// File offsets.
        offsets: Vec<u64>,
        /// The kernel's answer.
        source: io::Error,
    },
}

/// Whether this kernel creates `uprobe_multi` links for this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    /// It does.
    Available,
    /// The kernel predates them (6.6) or lacks CONFIG_UPROBES for BPF.
    NotInKernel,
    /// The kernel refused the probe for another reason (usually a missing capability).
    Refused(String),
}

/// bpf(2): the command's non-negative return value (also for `grace.rs`, the other raw
/// bpf(2) user).
pub(crate) fn sys_bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<i64> {
    // SAFETY: `attr` is a valid, fully initialised bpf_attr of the size passed; the kernel reads
    // (and for some commands writes) only within it and the buffers it points at, which the
    // callers keep alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            std::ptr::from_mut(attr),
            std::mem::size_of::<bpf_attr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// bpf(2) for a command that returns a new file descriptor.
fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<OwnedFd> {
    let fd = i32::try_from(sys_bpf(cmd, attr)?)
        .map_err(|_| io::Error::other("bpf(2) returned no fd"))?;
    // SAFETY: on success these commands return a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One instruction with opcode `code` and every operand zero.
fn insn(code: u8) -> bpf_insn {
    // SAFETY: bpf_insn is plain integers (and bitfields of them); all-zero is valid.
    let mut i: bpf_insn = unsafe { std::mem::zeroed() };
    i.code = code;
    i
}

/// `r0 = 0; exit`: the smallest program the verifier accepts.
fn trivial_program() -> [bpf_insn; 2] {
    [insn(0xb7), insn(0x95)]
}

fn zeroed_attr() -> bpf_attr {
    // SAFETY: bpf_attr is a plain C union of integers and arrays; all-zero is its documented
    // "unset" state.
    unsafe { std::mem::zeroed() }
}

/// Loads `insns` as a KPROBE program expecting BPF_TRACE_UPROBE_MULTI links. On failure, loads
/// again with the verifier log on to say why.
fn load_program(name: &str, insns: &[bpf_insn], license: &CString) -> Result<OwnedFd, MultiError> {
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut attr = zeroed_attr();
        // SAFETY: writing the BPF_PROG_LOAD member of a zeroed union.
        let a = unsafe { &mut attr.__bindgen_anon_3 };
        a.prog_type = BPF_PROG_TYPE_KPROBE as u32;
        a.expected_attach_type = BPF_TRACE_UPROBE_MULTI as u32;
        a.insns = insns.as_ptr() as u64;
        a.insn_cnt = u32::try_from(insns.len()).unwrap_or(u32::MAX);
        a.license = license.as_ptr() as u64;
        for (dst, src) in a.prog_name.iter_mut().zip(name.bytes().take(15)) {
            *dst = src as libc::c_char;
        }
        if let Some(buf) = log {
            a.log_level = 1;
            a.log_buf = buf.as_mut_ptr() as u64;
            a.log_size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        }
        bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr)
    };
    attempt(None).map_err(|source| {
        let mut buf = vec![0u8; 1 << 20];
        let _ = attempt(Some(&mut buf));
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end_matches('\0').trim();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        let log = tail
            .into_iter()
            .rev()
            .fold(String::new(), |acc, l| acc + "\n  " + l);
        MultiError::Load {
            name: name.to_string(),
            source,
            log,
        }
    })
}

/// Creates a link running `prog` at each of `offsets` in the file at `path`; for every process
/// when `pid` is `None`, else for that process only. Closing the link detaches every offset.
pub fn attach(
    prog: BorrowedFd<'_>,
    path: &Path,
    offsets: &[u64],
    pid: Option<u32>,
) -> Result<OwnedFd, MultiError> {
    let err = |source| MultiError::Link {
        path: path.display().to_string(),
        offsets: offsets.to_vec(),
        source,
    };
    let cpath = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let cnt = u32::try_from(offsets.len())
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| err(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let mut attr = zeroed_attr();
    // SAFETY: writing the BPF_LINK_CREATE member of a zeroed union.
    let l = unsafe { &mut attr.link_create };
    l.__bindgen_anon_1.prog_fd = prog.as_raw_fd() as u32;
    l.attach_type = BPF_TRACE_UPROBE_MULTI as u32;
    // SAFETY: writing the uprobe_multi member of the zeroed link_create union.
    let m = unsafe { &mut l.__bindgen_anon_3.uprobe_multi };
    m.path = cpath.as_ptr() as u64;
    m.offsets = offsets.as_ptr() as u64;
    m.cnt = cnt;
    m.pid = pid.unwrap_or(0);
    bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr).map_err(err)
}

/// Asks the kernel whether it creates `uprobe_multi` links for this process, without probing
/// anything: a trivial program is loaded for the attach type, and a link on a directory must fail
/// at the file check (EBADF) on a kernel that knows the attach type, at the attach type (EINVAL)
/// on one that does not.
pub fn support() -> Support {
    let prog = match load_program("gocpu_probe", &trivial_program(), &c"GPL".to_owned()) {
        Ok(fd) => fd,
        Err(MultiError::Load { source, .. }) => {
            return match source.raw_os_error() {
                Some(libc::EINVAL | libc::E2BIG) => Support::NotInKernel,
                _ => Support::Refused(format!("loading a uprobe_multi program: {source}")),
            };
        }
        Err(e) => return Support::Refused(e.to_string()),
    };
    match attach(prog.as_fd(), Path::new("/"), &[0], None) {
        Ok(_) => Support::Refused("a uprobe_multi link on \"/\" was accepted".into()),
        Err(MultiError::Link { source, .. }) => match source.raw_os_error() {
            Some(libc::EBADF) => Support::Available,
            Some(libc::EINVAL | libc::EOPNOTSUPP) => Support::NotInKernel,
            _ => Support::Refused(format!("creating a uprobe_multi link: {source}")),
        },
        Err(e) => Support::Refused(e.to_string()),
    }
}

/// The kernel's run-time statistics of one program (zero while statistics are off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunStats {
    /// Time spent running it.
    pub run_time: std::time::Duration,
    /// Number of runs.
    pub runs: u64,
}

/// Reads `prog`'s run-time statistics (BPF_OBJ_GET_INFO_BY_FD).
pub fn run_stats(prog: BorrowedFd<'_>) -> io::Result<RunStats> {
    // SAFETY: bpf_prog_info is plain integers; the kernel fills in what fits in info_len.
    let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr = zeroed_attr();
    // SAFETY: writing the BPF_OBJ_GET_INFO_BY_FD member of a zeroed union.
    let i = unsafe { &mut attr.info };
    i.bpf_fd = prog.as_raw_fd() as u32;
    i.info_len = u32::try_from(std::mem::size_of_val(&info)).unwrap_or(u32::MAX);
    i.info = std::ptr::from_mut(&mut info) as u64;
    sys_bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(RunStats {
        run_time: std::time::Duration::from_nanos(info.run_time_ns),
        runs: info.run_cnt,
    })
}

/// The file descriptor of an aya map, whatever its type.
fn map_fd(map: &aya::maps::Map) -> BorrowedFd<'_> {
    use aya::maps::Map as M;
    let data = match map {
        M::Array(d)
        | M::ArrayOfMaps(d)
        | M::BloomFilter(d)
        | M::CgroupArray(d)
        | M::CgroupStorage(d)
        | M::CgrpStorage(d)
        | M::CpuMap(d)
        | M::DevMap(d)
        | M::DevMapHash(d)
        | M::HashMap(d)
        | M::HashOfMaps(d)
        | M::InodeStorage(d)
        | M::LpmTrie(d)
        | M::LruHashMap(d)
        | M::PerCpuArray(d)
        | M::PerCpuCgroupStorage(d)
        | M::PerCpuHashMap(d)
        | M::PerCpuLruHashMap(d)
        | M::PerfEventArray(d)
        | M::ProgramArray(d)
        | M::Queue(d)
        | M::ReusePortSockArray(d)
        | M::RingBuf(d)
        | M::SockHash(d)
        | M::SockMap(d)
        | M::SkStorage(d)
        | M::Stack(d)
        | M::StackTraceMap(d)
        | M::Unsupported(d)
        | M::XskMap(d) => d,
    };
    data.fd().as_fd()
}

/// Loads programs `names` of `object` for `uprobe_multi` links, their map references resolved to
/// the maps of `ebpf` (the same object, loaded by aya, none of its maps taken yet).
pub fn load_programs(
    ebpf: &aya::Ebpf,
    object: &[u8],
    names: &[&'static str],
) -> Result<HashMap<&'static str, OwnedFd>, MultiError> {
    let mut obj = aya_obj::Object::parse(object).map_err(|e| MultiError::Object(e.to_string()))?;
    let fds: HashMap<&str, BorrowedFd<'_>> = ebpf.maps().map(|(n, m)| (n, map_fd(m))).collect();
    let mut refs = Vec::new();
    for (name, map) in &obj.maps {
        let fd = fds
            .get(name.as_str())
            .ok_or_else(|| MultiError::MissingMap(name.clone()))?;
        refs.push((name.clone(), fd.as_raw_fd(), map.clone()));
    }
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    obj.relocate_maps(
        refs.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)),
        &text_sections,
    )
    .map_err(|e| MultiError::Object(e.to_string()))?;
    obj.relocate_calls(&text_sections)
        .map_err(|e| MultiError::Object(e.to_string()))?;
    obj.sanitize_functions(aya::features());
    let mut out = HashMap::new();
    for &name in names {
        let prog = obj
            .programs
            .get(name)
            .ok_or_else(|| MultiError::MissingProgram(name.to_string()))?;
        let function = obj
            .functions
            .get(&prog.function_key())
            .ok_or_else(|| MultiError::MissingProgram(name.to_string()))?;
        out.insert(
            name,
            load_program(name, &function.instructions, &prog.license)?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn this_kernel_supports_multi_links_and_says_so() {
        assert!(root(), "the uprobe_multi tests need root (BPF)");
        assert_eq!(support(), Support::Available);
    }

    #[test]
    fn errors_name_the_file_and_offsets() {
        assert!(root(), "the uprobe_multi tests need root (BPF)");
        let prog = load_program("gocpu_test", &trivial_program(), &c"GPL".to_owned()).unwrap();
        let e = attach(prog.as_fd(), Path::new("/nonexistent/gocpu"), &[0x40], None).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("/nonexistent/gocpu") && text.contains("40"),
            "{text}"
        );
        let e = attach(prog.as_fd(), Path::new("/proc/self/exe"), &[], None).unwrap_err();
        assert!(e.to_string().contains("/proc/self/exe"), "{e}");
        // A program the verifier rejects (r0 never set) comes back with the verifier's words.
        let bad = [insn(0x95)];
        let e = load_program("gocpu_bad", &bad, &c"GPL".to_owned()).unwrap_err();
        assert!(e.to_string().contains("R0"), "{e}");
    }

    fn runs(prog: &OwnedFd) -> u64 {
        run_stats(prog.as_fd()).unwrap().runs
    }

    fn call(f: extern "C" fn(u64) -> u64, n: u64) {
        for i in 0..n {
            std::hint::black_box(f(std::hint::black_box(i)));
        }
    }

    #[test]
    fn a_link_runs_the_program_once_per_call_at_every_offset_of_its_process_only() {
        assert!(root(), "the uprobe_multi tests need root (BPF)");
        let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).unwrap();
        let prog = load_program("gocpu_count", &trivial_program(), &c"GPL".to_owned()).unwrap();
        let [(target_a, a), (target_b, b)] = crate::probes::calibrate::probe_targets().unwrap();
        let offsets = [a, b];
        let exe = Path::new("/proc/self/exe");

        let link = attach(prog.as_fd(), exe, &offsets, Some(std::process::id())).unwrap();
        let before = runs(&prog);
        call(target_a, 1000);
        call(target_b, 500);
        assert_eq!(runs(&prog) - before, 1500);

        // Closing the link detaches both offsets.
        drop(link);
        let before = runs(&prog);
        call(target_a, 1000);
        call(target_b, 1000);
        assert_eq!(runs(&prog), before);

        // A link for another process does not fire in this one.
        let other = attach(prog.as_fd(), exe, &offsets[..1], Some(1)).unwrap();
        call(target_a, 1000);
        assert_eq!(runs(&prog), before);
        drop(other);
    }
}
