//! A small cache of parsed binaries keyed by file identity.
//!
//! Keyed by (device, inode, size, mtime) of the opened file, never by build ID: a build ID is a
//! claim the file makes about itself, and a hostile binary copying a victim's build ID must not
//! make the daemon attach probes to the victim at the attacker's offsets. Not by ctime either: it
//! changes on a hard link, chmod or chown, which leave the contents alone (`perf record`
//! hard-links every binary it samples into ~/.debug), and a changed key would re-track a running
//! process and attach its hooks a second time to the same inode.
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
    /// Modification time, nanoseconds since the epoch (any write changes it).
    pub mtime_ns: i128,
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
        }
    }
}

#[derive(Debug)]
struct Inner<V> {
    map: HashMap<FileKey, (V, u64)>,
    clock: u64,
}

/// Values by [`FileKey`] (what a daemon learns about a file, once per file version), evicting
/// the least recently used beyond a capacity.
#[derive(Debug)]
pub struct FileCache<V> {
    inner: Mutex<Inner<V>>,
    capacity: usize,
}

/// Parsed binaries by file identity.
pub type BinaryCache = FileCache<Arc<GoBinary>>;

impl<V: Clone> FileCache<V> {
    /// A cache holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> FileCache<V> {
        FileCache {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                clock: 0,
            }),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        // A panic while holding the lock leaves only a map behind: keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached value for `key`.
    pub fn get(&self, key: &FileKey) -> Option<V> {
        let mut g = self.lock();
        g.clock += 1;
        let now = g.clock;
        let (value, used) = g.map.get_mut(key)?;
        *used = now;
        Some(value.clone())
    }

    /// Stores `value` under `key`, evicting the least recently used entry when full.
    pub fn insert(&self, key: FileKey, value: V) {
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
        g.map.insert(key, (value, now));
    }

    /// The cached value for `key`, or `make()`'s (computed outside the lock, then stored).
    pub fn get_or_insert_with(&self, key: FileKey, make: impl FnOnce() -> V) -> V {
        if let Some(v) = self.get(&key) {
            return v;
        }
        let v = make();
        self.insert(key, v.clone());
        v
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FileCache<Arc<GoBinary>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ino: u64) -> FileKey {
        FileKey {
            dev: 1,
            ino,
            size: 10,
            mtime_ns: 0,
        }
    }

    #[test]
    fn computes_once_and_evicts_the_least_recently_used() {
        let cache: FileCache<u64> = FileCache::new(2);
        let mut calls = 0;
        for _ in 0..2 {
            cache.get_or_insert_with(key(1), || {
                calls += 1;
                1
            });
        }
        assert_eq!(calls, 1);
        cache.get_or_insert_with(key(2), || 2);
        cache.get_or_insert_with(key(1), || 1); // touch 1: 2 is now the oldest
        cache.get_or_insert_with(key(3), || 3);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&key(2)), None, "entry 2 should have been evicted");
        assert_eq!(cache.get(&key(1)), Some(1));
        // Any change of identity (here mtime: the file was rewritten) is a different entry.
        let rewritten = FileKey {
            mtime_ns: 1,
            ..key(1)
        };
        assert_eq!(cache.get(&rewritten), None);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_hard_link_keeps_the_key_and_a_write_changes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, b"\x7fELF one").unwrap();
        let key_now = || FileKey::of(&std::fs::metadata(&path).unwrap());
        let before = key_now();
        // What `perf record` does to every binary it samples: ctime moves, contents do not.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::hard_link(&path, dir.path().join("link")).unwrap();
        assert_eq!(key_now(), before);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, b"\x7fELF two").unwrap();
        assert_ne!(key_now(), before);
    }
}
