//! Discovery: which processes on the node run Go, and what their binaries are.
//!
//! Fed by the initial procfs scan, by exec events from the kernel and by periodic rescans; hands
//! each Go process to the probe manager. Pure decisions on top of [`procfs::ProcFs`] and
//! a [`FileCache`] of [`binaries::BinaryFacts`]; no BPF here.
pub mod binaries;
pub mod cgroup;
pub mod kube;
pub mod maps;
pub mod procfs;

use std::{path::PathBuf, sync::Arc};

use gocpu_gobin::FileCache;
/// A file's identity (device, inode, size, mtime): what binaries are cached and
/// attached by — never their build IDs, which a hostile file can copy.
pub use gocpu_gobin::FileKey;

use self::{
    binaries::BinaryFacts,
    procfs::{ProcError, ProcFs, ProcStat},
};

/// A process's identity: pid plus start time, because pids are reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ProcKey {
    /// Process id (thread-group id).
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
}

/// One inspected process.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// Identity.
    pub key: ProcKey,
    /// Its stat line at inspection time.
    pub stat: ProcStat,
    /// Where `/proc/<pid>/exe` points.
    pub exe: PathBuf,
    /// Identity of the binary file.
    pub file: FileKey,
    /// What the binary is.
    pub binary: Arc<BinaryFacts>,
    /// Container and pod identity from `/proc/<pid>/cgroup` (empty for host processes).
    pub container: cgroup::CgroupIdentity,
    /// The binary, open: probes attach through `/proc/self/fd/N`, which stays valid even if the
    /// process exits (and its `/proc/<pid>/exe` vanishes) before the attach.
    pub handle: Arc<std::fs::File>,
}

/// Discovery over one procfs tree, with a shared binary cache.
#[derive(Debug)]
pub struct Discovery {
    procfs: ProcFs,
    cache: FileCache<Arc<BinaryFacts>>,
}

impl Discovery {
    /// Discovery over `procfs` caching up to `cache_entries` binaries.
    pub fn new(procfs: ProcFs, cache_entries: usize) -> Self {
        Self {
            procfs,
            cache: FileCache::new(cache_entries),
        }
    }

    /// The procfs tree.
    pub fn procfs(&self) -> &ProcFs {
        &self.procfs
    }

    /// The binary cache.
    pub fn cache(&self) -> &FileCache<Arc<BinaryFacts>> {
        &self.cache
    }

    /// Inspects `pid`: `Ok(None)` for kernel threads and processes that are already dead.
    /// Blocking (reads the binary on a cache miss): call from a blocking context.
    pub fn inspect(&self, pid: u32) -> Result<Option<Inspection>, ProcError> {
        let stat = self.procfs.stat(pid)?;
        if stat.is_kernel_thread() || stat.is_dead() {
            return Ok(None);
        }
        let file = self.procfs.open_exe(pid)?;
        let exe = self.procfs.exe_link(pid)?;
        let id = file
            .metadata()
            .map(|m| FileKey::of(&m))
            .map_err(|source| ProcError::Io {
                path: self.procfs.exe_path(pid),
                source,
            })?;
        let handle = file.try_clone().map_err(|source| ProcError::Io {
            path: self.procfs.exe_path(pid),
            source,
        })?;
        let binary = self
            .cache
            .get_or_insert_with(id, || Arc::new(BinaryFacts::analyse(file)));
        // The process may have exec'd or died and its pid been reused while we read: the identity
        // must be the same before and after.
        let after = self.procfs.stat(pid)?;
        if after.starttime != stat.starttime {
            return Err(ProcError::Vanished { pid });
        }
        Ok(Some(Inspection {
            key: ProcKey {
                pid,
                start_ticks: stat.starttime,
            },
            stat,
            exe,
            file: id,
            binary,
            handle: Arc::new(handle),
            container: cgroup::read_identity(self.procfs.root(), pid).unwrap_or_default(),
        }))
    }

    /// Whether the process `key` is still alive (same pid, same start time, not a zombie).
    pub fn is_alive(&self, key: ProcKey) -> bool {
        match self.procfs.stat(key.pid) {
            Ok(s) => s.starttime == key.start_ticks && !s.is_dead(),
            Err(_) => false,
        }
    }
}
