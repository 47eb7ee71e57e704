//! Random-access bytes of a binary: in memory or a file read with `pread`.
//!
//! Files are never mmapped: a file truncated while it is being read must give an error, not
//! SIGBUS.
use std::{fs::File, os::unix::fs::FileExt, sync::Arc};

use thiserror::Error;

/// Why bytes could not be read from a [`ByteSource`].
#[derive(Debug, Error)]
pub enum SourceError {
    /// The requested range lies (partly) beyond the end of the source.
    #[error("read of {len} bytes at offset {offset} is beyond the end ({size} bytes)")]
    OutOfBounds {
        /// Offset of the read.
        offset: u64,
        /// Length of the read.
        len: u64,
        /// Size of the source.
        size: u64,
    },
    /// The file ended before the requested range (it shrank while being read).
    #[error("file ended early: read of {len} bytes at offset {offset}")]
    Truncated {
        /// Offset of the read.
        offset: u64,
        /// Length of the read.
        len: u64,
    },
    /// The operating system reported an I/O error.
    #[error("I/O error reading at offset {offset}: {source}")]
    Io {
        /// Offset of the read.
        offset: u64,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Random-access bytes; implementations must be safe to share across threads.
pub trait ByteSource: Send + Sync {
    /// Size in bytes (for files: at the time of the call).
    fn len(&self) -> u64;
    /// Fills `buf` with the bytes at `offset`; fails rather than returning fewer bytes.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError>;
    /// Whether the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn slice_read(data: &[u8], offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
    let size = data.len() as u64;
    let oob = || SourceError::OutOfBounds {
        offset,
        len: buf.len() as u64,
        size,
    };
    let start = usize::try_from(offset).map_err(|_| oob())?;
    let end = start.checked_add(buf.len()).ok_or_else(oob)?;
    let src = data.get(start..end).ok_or_else(oob)?;
    buf.copy_from_slice(src);
    Ok(())
}

impl ByteSource for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        slice_read(self, offset, buf)
    }
}

impl ByteSource for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        slice_read(self, offset, buf)
    }
}

impl ByteSource for File {
    fn len(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        self.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                SourceError::Truncated {
                    offset,
                    len: buf.len() as u64,
                }
            } else {
                SourceError::Io { offset, source: e }
            }
        })
    }
}

impl<T: ByteSource + ?Sized> ByteSource for Arc<T> {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        (**self).read_at(offset, buf)
    }
}

impl<T: ByteSource + ?Sized> ByteSource for Box<T> {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        (**self).read_at(offset, buf)
    }
}

impl<T: ByteSource + ?Sized> ByteSource for &T {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        (**self).read_at(offset, buf)
    }
}

/// Reads `len` bytes at `offset` into a new vector, refusing lengths above `limit` or beyond
/// the source's end before allocating (a hostile size must not become a huge allocation).
pub(crate) fn read_vec(
    src: &dyn ByteSource,
    offset: u64,
    len: u64,
    limit: u64,
) -> Result<Vec<u8>, SourceError> {
    let size = src.len();
    let oob = SourceError::OutOfBounds { offset, len, size };
    if len > limit || offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(oob);
    }
    let n = usize::try_from(len).map_err(|_| SourceError::OutOfBounds { offset, len, size })?;
    let mut v = vec![0u8; n];
    src.read_at(offset, &mut v)?;
    Ok(v)
}
