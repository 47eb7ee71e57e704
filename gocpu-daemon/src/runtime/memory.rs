//! Reading another process's memory without stopping it.
//!
//! [`ProcessMemory`] is the seam: the decoders above it only ever ask for byte ranges, so tests
//! feed them fake memory (garbage, cycles, holes) and the daemon feeds them [`ProcessVm`], which
//! uses `process_vm_readv(2)`: no ptrace attach, no signal, the target keeps running. Reads are
//! bounded ([`MAX_READ`]) and addresses outside the user half of the address space are refused
//! before any syscall.
use thiserror::Error;

/// Largest single read accepted (the biggest legitimate one is a chunk of the `allgs` array).
pub const MAX_READ: usize = 4 << 20;

/// Highest user-space address plus one on x86-64 with 5-level paging (57-bit).
const USER_END: u64 = 1 << 56;

/// `IOV_MAX` on Linux: iovecs per `process_vm_readv` call.
const IOV_MAX: usize = 1024;

/// Most bytes copied by one `process_vm_readv` call (keeps each syscall short).
const MAX_CALL: usize = 16 << 20;

/// Why a read of the target's memory failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MemError {
    /// The range is not mapped readable in the target (or is not a user-space address).
    #[error("cannot read {len} bytes at {addr:#x}")]
    Unreadable {
        /// First address.
        addr: u64,
        /// Length asked for.
        len: usize,
    },
    /// The process no longer exists.
    #[error("the process is gone")]
    Gone,
    /// The kernel refuses access (needs CAP_SYS_PTRACE or the same user; Yama's ptrace_scope).
    #[error("reading the process's memory is not permitted")]
    Denied,
    /// A read larger than [`MAX_READ`].
    #[error("a read of {len} bytes exceeds the limit of {MAX_READ}")]
    TooLarge {
        /// Length asked for.
        len: usize,
    },
    /// Any other OS error.
    #[error("process_vm_readv failed: errno {errno}")]
    Os {
        /// The errno.
        errno: i32,
    },
}

impl MemError {
    /// Whether the whole process is unreadable (gone or denied), not just one range.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            MemError::Gone | MemError::Denied | MemError::Os { .. }
        )
    }

    /// A stable, low-cardinality name of the variant (for metric labels).
    pub fn kind(&self) -> &'static str {
        match self {
            MemError::Unreadable { .. } => "unreadable",
            MemError::Gone => "gone",
            MemError::Denied => "denied",
            MemError::TooLarge { .. } => "too_large",
            MemError::Os { .. } => "os",
        }
    }
}

/// Whether `[addr, addr + len)` is a plausible user-space range (non-null, no wrap-around).
pub fn plausible_range(addr: u64, len: usize) -> bool {
    addr >= 4096
        && (len as u64)
            .checked_add(addr)
            .is_some_and(|end| end <= USER_END)
}

/// Reads of another process's memory.
pub trait ProcessMemory {
    /// Fills `buf` from `addr`, entirely or not at all.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError>;

    /// Reads each `(addr, len)` of `reqs` into consecutive slots of `out` (request `i` right
    /// after request `i - 1`); `ok[i]` tells whether request `i` was read. Errors only when
    /// the whole process is unreadable ([`MemError::is_fatal`]) or `out` is too short.
    fn read_vectored(
        &self,
        reqs: &[(u64, usize)],
        out: &mut [u8],
        ok: &mut [bool],
    ) -> Result<(), MemError> {
        let mut rest = out;
        for (&(addr, len), ok) in reqs.iter().zip(ok) {
            let (slot, tail) = std::mem::take(&mut rest)
                .split_at_mut_checked(len)
                .ok_or(MemError::TooLarge { len })?;
            rest = tail;
            *ok = match self.read(addr, slot) {
                Ok(()) => true,
                Err(e) if e.is_fatal() => return Err(e),
                Err(_) => false,
            };
        }
        Ok(())
    }
}

/// Reads a little-endian u64 at `addr`.
pub fn read_u64(mem: &dyn ProcessMemory, addr: u64) -> Result<u64, MemError> {
    let mut b = [0u8; 8];
    mem.read(addr, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// A live process's memory through `process_vm_readv(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessVm {
    pid: libc::pid_t,
}

impl ProcessVm {
    /// Memory of process `pid`. The caller keeps the pid meaningful (a `ProcKey` check after
    /// reading), since a pid can be reused once the process exits.
    pub fn new(pid: u32) -> Option<ProcessVm> {
        libc::pid_t::try_from(pid)
            .ok()
            .filter(|&p| p > 0)
            .map(|pid| ProcessVm { pid })
    }

    fn errno_error() -> MemError {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        match errno {
            libc::ESRCH => MemError::Gone,
            libc::EPERM | libc::EACCES => MemError::Denied,
            errno => MemError::Os { errno },
        }
    }

    /// One `process_vm_readv` call; returns the bytes read (whole remote iovecs only).
    fn readv(&self, local: &[libc::iovec], remote: &[libc::iovec]) -> Result<usize, MemError> {
        // SAFETY: every local iovec points into a live, exclusively borrowed buffer of at least
        // iov_len bytes (built by the callers from `&mut [u8]`); remote iovecs are only read by
        // the kernel, which validates them against the target's address space.
        let n = unsafe {
            libc::process_vm_readv(
                self.pid,
                local.as_ptr(),
                local.len() as libc::c_ulong,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        usize::try_from(n).map_err(|_| ProcessVm::errno_error())
    }
}

fn iovec(base: *mut libc::c_void, len: usize) -> libc::iovec {
    libc::iovec {
        iov_base: base,
        iov_len: len,
    }
}

impl ProcessMemory for ProcessVm {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        if buf.len() > MAX_READ {
            return Err(MemError::TooLarge { len: buf.len() });
        }
        if buf.is_empty() {
            return Ok(());
        }
        let unreadable = MemError::Unreadable {
            addr,
            len: buf.len(),
        };
        if !plausible_range(addr, buf.len()) {
            return Err(unreadable);
        }
        let local = [iovec(buf.as_mut_ptr().cast(), buf.len())];
        let remote = [iovec(addr as *mut libc::c_void, buf.len())];
        match self.readv(&local, &remote) {
            Ok(n) if n == buf.len() => Ok(()),
            Ok(_)
            | Err(MemError::Os {
                errno: libc::EFAULT,
            }) => Err(unreadable),
            Err(e) => Err(e),
        }
    }

    fn read_vectored(
        &self,
        reqs: &[(u64, usize)],
        out: &mut [u8],
        ok: &mut [bool],
    ) -> Result<(), MemError> {
        let total = reqs.iter().try_fold(0usize, |a, &(_, l)| a.checked_add(l));
        let Some(total) = total.filter(|&t| t <= out.len()) else {
            return Err(MemError::TooLarge { len: out.len() });
        };
        let count = reqs.len().min(ok.len());
        // Byte offset of each request inside `out`.
        let mut offsets = Vec::with_capacity(count);
        let mut at = 0usize;
        for (&(_, len), ok) in reqs.iter().zip(ok.iter_mut()).take(count) {
            offsets.push(at);
            at += len;
            *ok = len == 0;
        }
        debug_assert!(at <= total);
        let base = out.as_mut_ptr();
        let mut next = 0usize;
        while next < count {
            // One call: up to IOV_MAX plausible requests of at most MAX_READ bytes each, up to
            // MAX_CALL bytes. An implausible request would fail the whole call: it is left out.
            let mut batch: Vec<usize> = Vec::with_capacity(IOV_MAX);
            let mut bytes = 0usize;
            while next < count && batch.len() < IOV_MAX {
                let (addr, len) = reqs.get(next).copied().unwrap_or((0, 0));
                if len > 0 && len <= MAX_READ && plausible_range(addr, len) {
                    if bytes + len > MAX_CALL && !batch.is_empty() {
                        break;
                    }
                    batch.push(next);
                    bytes += len;
                }
                next += 1;
            }
            let mut start = 0usize;
            while start < batch.len() {
                let todo = batch.get(start..).unwrap_or_default();
                let mut local = Vec::with_capacity(todo.len());
                let mut remote = Vec::with_capacity(todo.len());
                for &r in todo {
                    let (addr, len) = reqs.get(r).copied().unwrap_or((0, 0));
                    let off = offsets.get(r).copied().unwrap_or(0);
                    // SAFETY: off + len <= total <= out.len() (checked above), so the slot
                    // lies inside `out`, which is exclusively borrowed for this call.
                    let slot = unsafe { base.add(off) };
                    local.push(iovec(slot.cast(), len));
                    remote.push(iovec(addr as *mut libc::c_void, len));
                }
                let mut n = match self.readv(&local, &remote) {
                    Ok(n) => n,
                    Err(MemError::Os {
                        errno: libc::EFAULT,
                    }) => 0,
                    Err(e) => return Err(e),
                };
                // The kernel copies whole iovecs in order and stops at the first failing one.
                let mut done = 0usize;
                for &r in todo {
                    let len = reqs.get(r).map_or(0, |q| q.1);
                    if n < len {
                        break;
                    }
                    n -= len;
                    if let Some(o) = ok.get_mut(r) {
                        *o = true;
                    }
                    done += 1;
                }
                start += done + 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{MemError, ProcessMemory, ProcessVm, plausible_range};

    #[test]
    fn reads_own_memory_and_reports_holes_per_record() {
        let me = ProcessVm::new(std::process::id()).unwrap();
        let data: Vec<u64> = (0..64).map(|i| i * 3 + 1).collect();
        let base = data.as_ptr() as u64;
        let mut b = [0u8; 8];
        me.read(base + 16, &mut b).unwrap();
        assert_eq!(u64::from_le_bytes(b), 7);
        assert!(matches!(
            me.read(8, &mut b),
            Err(MemError::Unreadable { .. })
        ));
        // Records: readable, unmapped page, readable, kernel address, readable.
        let addrs = [base, 0x1000, base + 8, 0xffff_8000_0000_0000, base + 504];
        let reqs: Vec<(u64, usize)> = addrs.iter().map(|&a| (a, 8)).collect();
        let mut out = vec![0u8; 8 * addrs.len()];
        let mut ok = vec![false; addrs.len()];
        me.read_vectored(&reqs, &mut out, &mut ok).unwrap();
        assert_eq!(ok, [true, false, true, false, true]);
        let word = |i: usize| u64::from_le_bytes(out[i * 8..i * 8 + 8].try_into().unwrap());
        assert_eq!((word(0), word(2), word(4)), (1, 4, 64 * 3 - 2));
    }

    #[test]
    fn many_requests_cross_iov_max_batches() {
        let me = ProcessVm::new(std::process::id()).unwrap();
        let data: Vec<u32> = (0..5000).collect();
        let base = data.as_ptr() as u64;
        let reqs: Vec<(u64, usize)> = (0..5000u64)
            .map(|i| (if i % 997 == 0 { 0x10 } else { base + i * 4 }, 4))
            .collect();
        let mut out = vec![0u8; 4 * reqs.len()];
        let mut ok = vec![false; reqs.len()];
        me.read_vectored(&reqs, &mut out, &mut ok).unwrap();
        for (i, o) in ok.iter().enumerate() {
            assert_eq!(*o, i % 997 != 0, "{i}");
            if *o {
                let v = u32::from_le_bytes(out[i * 4..i * 4 + 4].try_into().unwrap());
                assert_eq!(v as usize, i);
            }
        }
    }

    #[test]
    fn requests_of_different_lengths_land_back_to_back() {
        let me = ProcessVm::new(std::process::id()).unwrap();
        let data: Vec<u8> = (0..=255).collect();
        let base = data.as_ptr() as u64;
        let reqs = [
            (base + 10, 3),
            (0x10, 5),
            (base, 0),
            (base + 200, 6),
            (base + 250, 7),
        ];
        let mut out = vec![0xaau8; 21];
        let mut ok = vec![false; reqs.len()];
        me.read_vectored(&reqs, &mut out, &mut ok).unwrap();
        // The last request runs past `data` into whatever follows: readable or not, it must
        // not disturb the others.
        assert_eq!(&ok[..4], [true, false, true, true]);
        assert_eq!(&out[..3], [10, 11, 12]);
        assert_eq!(&out[3..8], [0xaa; 5]);
        assert_eq!(&out[8..14], [200, 201, 202, 203, 204, 205]);
        let mut short = vec![0u8; 20];
        assert!(me.read_vectored(&reqs, &mut short, &mut ok).is_err());
    }

    #[test]
    fn a_dead_pid_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let mem = ProcessVm::new(pid).unwrap();
        let mut b = [0u8; 8];
        assert_eq!(mem.read(0x400000, &mut b), Err(MemError::Gone));
        assert!(ProcessVm::new(0).is_none());
        assert!(!plausible_range(0, 8) && !plausible_range(u64::MAX - 4, 8));
    }
}
