//! Waiting until no BPF program still runs with what it read before a map write.
//!
//! User space flips the `GENERATION` the programs write to, then empties the other generation's
//! maps. A program that read the generation just before the flip may still be writing the old
//! maps; emptying them then would lose its increments. The kernel offers one wait user space can
//! ask for: updating a map-of-maps waits for every running non-sleepable BPF program to finish
//! (`maybe_wait_bpf_programs`, an RCU grace period), so that user space knows every program
//! sees the new value. gocpu's programs are all non-sleepable (tracepoints, uprobes, perf
//! events), so after such an update none of them still holds the old generation.
//!
//! The map-of-maps here exists for that wait only: no program references it.
use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use aya_obj::generated::{
    bpf_attr, bpf_cmd,
    bpf_map_type::{BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_ARRAY_OF_MAPS},
};

use crate::probes::uprobe_multi::sys_bpf;

/// Why the grace-period wait is unavailable or failed.
#[derive(Debug, thiserror::Error)]
pub enum GraceError {
    /// The kernel refused to create the (tiny) maps the wait needs.
    #[error("cannot create the map-of-maps for grace-period waits: {0}")]
    Create(#[source] io::Error),
    /// The map-of-maps update that waits failed.
    #[error("map-of-maps update (grace-period wait) failed: {0}")]
    Wait(#[source] io::Error),
}

/// A map-of-maps whose every update waits for running BPF programs to finish.
#[derive(Debug)]
pub struct RcuGrace {
    outer: OwnedFd,
    inner: OwnedFd,
}

impl RcuGrace {
    /// Creates the maps: a one-slot array (the inner map) and a one-slot array of such maps.
    pub fn new() -> Result<Self, GraceError> {
        let inner =
            create_map(BPF_MAP_TYPE_ARRAY as u32, 4, 1, None).map_err(GraceError::Create)?;
        let outer = create_map(
            BPF_MAP_TYPE_ARRAY_OF_MAPS as u32,
            4,
            1,
            Some(inner.as_raw_fd() as u32),
        )
        .map_err(GraceError::Create)?;
        Ok(Self { outer, inner })
    }

    /// Returns once every BPF program that was running when it was called has finished.
    pub fn wait(&self) -> Result<(), GraceError> {
        let key: u32 = 0;
        let value: u32 = self.inner.as_raw_fd() as u32;
        // SAFETY: bpf_attr is plain integers; all-zero is a valid value.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: writing the fields of the element-command member of a zeroed union.
        unsafe {
            let u = &mut attr.__bindgen_anon_2;
            u.map_fd = self.outer.as_raw_fd() as u32;
            u.key = std::ptr::from_ref(&key) as u64;
            u.__bindgen_anon_1.value = std::ptr::from_ref(&value) as u64;
            u.flags = 0;
        }
        sys_bpf(bpf_cmd::BPF_MAP_UPDATE_ELEM, &mut attr)
            .map(|_| ())
            .map_err(GraceError::Wait)
    }
}

/// bpf(BPF_MAP_CREATE) of a one-u32-key map with `max_entries` values of `value_size` bytes.
fn create_map(
    map_type: u32,
    value_size: u32,
    max_entries: u32,
    inner_map_fd: Option<u32>,
) -> io::Result<OwnedFd> {
    // SAFETY: bpf_attr is plain integers; all-zero is a valid value.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the fields of the map-creation member of a zeroed union.
    unsafe {
        let c = &mut attr.__bindgen_anon_1;
        c.map_type = map_type;
        c.key_size = 4;
        c.value_size = value_size;
        c.max_entries = max_entries;
        c.inner_map_fd = inner_map_fd.unwrap_or(0);
    }
    let fd = i32::try_from(sys_bpf(bpf_cmd::BPF_MAP_CREATE, &mut attr)?)
        .map_err(|_| io::Error::other("bpf(2) returned no fd"))?;
    // SAFETY: BPF_MAP_CREATE returns a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root (CAP_BPF) like the rest of the probe tests: the wait is a real kernel round trip.
    #[test]
    fn map_of_maps_update_waits_and_succeeds_repeatedly() {
        let g = RcuGrace::new().expect("map-of-maps creation");
        let start = std::time::Instant::now();
        for _ in 0..3 {
            g.wait().expect("grace-period wait");
        }
        // An RCU grace period is never instantaneous: three waits take measurable time.
        assert!(start.elapsed() > std::time::Duration::from_micros(10));
    }
}
