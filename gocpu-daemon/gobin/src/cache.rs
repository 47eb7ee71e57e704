//! A small cache of parsed binaries keyed by file identity.
//!
//! Keyed by (device, inode, size, mtime, ctime) of the opened file, never by build ID: a build
//! ID is a claim the file makes about itself, and a hostile binary copying a victim's build ID
//! must not make the daemon attach probes to the victim at the attacker's offsets.
use std::{
    collections::HashMap,
    fs::{File, Metadata},
    os::unix::fs::MetadataExt,
    path::Path,
    sync::{Arc, Mutex},
};

use crate::{binary::GoBinary, error::GobinError};

/// Identity of a file's contents as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the epoch (changes on any rewrite or relink).
    pub ctime_ns: i128,
}

impl FileKey {
    /// The key of a file from its metadata (take it from the opened file, not the path).
    pub fn of(m: &Metadata) -> FileKey {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        FileKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<FileKey, (Arc<GoBinary>, u64)>,
    clock: u64,
}

/// Parsed binaries by [`FileKey`], evicting the least recently used beyond a capacity.
#[derive(Debug)]
pub struct BinaryCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl BinaryCache {
    /// A cache holding at most `capacity` binaries (at least one).
    pub fn new(capacity: usize) -> BinaryCache {
        BinaryCache {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves only a map behind: keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached binary for `key`.
    pub fn get(&self, key: &FileKey) -> Option<Arc<GoBinary>> {
        let mut g = self.lock();
        g.clock += 1;
        let now = g.clock;
        let (bin, used) = g.map.get_mut(key)?;
        *used = now;
        Some(Arc::clone(bin))
    }

    /// Stores `bin` under `key`, evicting the least recently used entry when full.
    pub fn insert(&self, key: FileKey, bin: Arc<GoBinary>) {
        let mut g = self.lock();
        g.clock += 1;
        let now = g.clock;
        if !g.map.contains_key(&key) && g.map.len() >= self.capacity {
            let oldest = g
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                g.map.remove(&k);
            }
        }
        g.map.insert(key, (bin, now));
    }

    /// Number of cached binaries.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Opens `path`, returning the cached parse when the opened file's key matches, else
    /// parsing it (outside the lock) and caching the result.
    pub fn open(&self, path: &Path) -> Result<(FileKey, Arc<GoBinary>), GobinError> {
        let file = File::open(path).map_err(|source| GobinError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let meta = file.metadata().map_err(|source| GobinError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let key = FileKey::of(&meta);
        if let Some(bin) = self.get(&key) {
            return Ok((key, bin));
        }
        let bin = Arc::new(GoBinary::parse(file)?);
        self.insert(key, Arc::clone(&bin));
        Ok((key, bin))
    }
}
