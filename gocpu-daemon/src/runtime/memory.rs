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

    /// Reads one record of `len` bytes from each of `addrs` into consecutive `len`-byte slots
    /// of `out`; `ok[i]` tells whether record `i` was read. Errors only when the whole process
    /// is unreadable ([`MemError::is_fatal`]).
    fn read_records(
        &self,
        addrs: &[u64],
        len: usize,
        out: &mut [u8],
        ok: &mut [bool],
    ) -> Result<(), MemError> {
        for ((&addr, slot), ok) in addrs.iter().zip(out.chunks_exact_mut(len)).zip(ok) {
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

    fn read_records(
        &self,
        addrs: &[u64],
        len: usize,
        out: &mut [u8],
        ok: &mut [bool],
    ) -> Result<(), MemError> {
        if len == 0 || len > MAX_READ {
            return Err(MemError::TooLarge { len });
        }
        let count = addrs.len().min(ok.len()).min(out.len() / len);
        ok.iter_mut().for_each(|o| *o = false);
        let mut next = 0usize;
        while next < count {
            // Implausible addresses are skipped here: one would fail the whole call.
            let mut batch: Vec<usize> = Vec::with_capacity(IOV_MAX);
            let mut i = next;
            while i < count && batch.len() < IOV_MAX {
                if addrs.get(i).is_some_and(|&a| plausible_range(a, len)) {
                    batch.push(i);
                }
                i += 1;
            }
            next = i;
            let mut start = 0usize;
            while start < batch.len() {
                let todo = batch.get(start..).unwrap_or_default();
                let mut local = Vec::with_capacity(todo.len());
                let mut remote = Vec::with_capacity(todo.len());
                let base = out.as_mut_ptr();
                for &r in todo {
                    // SAFETY: r < count <= out.len() / len, so [r*len, (r+1)*len) is inside `out`.
                    let slot = unsafe { base.add(r * len) };
                    local.push(iovec(slot.cast(), len));
                    remote.push(iovec(addrs.get(r).copied().unwrap_or(0) as *mut _, len));
                }
                let done = match self.readv(&local, &remote) {
                    Ok(n) => n / len,
                    Err(MemError::Os {
                        errno: libc::EFAULT,
                    }) => 0,
                    Err(e) => return Err(e),
                };
                for &r in todo.iter().take(done) {
                    if let Some(o) = ok.get_mut(r) {
                        *o = true;
                    }
                }
                // The record after the last whole one failed: skip it and go on.
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
        let mut out = vec![0u8; 8 * addrs.len()];
        let mut ok = vec![false; addrs.len()];
        me.read_records(&addrs, 8, &mut out, &mut ok).unwrap();
        assert_eq!(ok, [true, false, true, false, true]);
        let word = |i: usize| u64::from_le_bytes(out[i * 8..i * 8 + 8].try_into().unwrap());
        assert_eq!((word(0), word(2), word(4)), (1, 4, 64 * 3 - 2));
    }

    #[test]
    fn many_records_cross_iov_max_batches() {
        let me = ProcessVm::new(std::process::id()).unwrap();
        let data: Vec<u32> = (0..5000).collect();
        let base = data.as_ptr() as u64;
        let addrs: Vec<u64> = (0..5000u64)
            .map(|i| if i % 997 == 0 { 0x10 } else { base + i * 4 })
            .collect();
        let mut out = vec![0u8; 4 * addrs.len()];
        let mut ok = vec![false; addrs.len()];
        me.read_records(&addrs, 4, &mut out, &mut ok).unwrap();
        for (i, o) in ok.iter().enumerate() {
            assert_eq!(*o, i % 997 != 0, "{i}");
            if *o {
                let v = u32::from_le_bytes(out[i * 4..i * 4 + 4].try_into().unwrap());
                assert_eq!(v as usize, i);
            }
        }
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
