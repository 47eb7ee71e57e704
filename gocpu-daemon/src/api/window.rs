//! The parameters shared by the profile endpoints (hotspots, pprof, flame graph): a tracked
//! pid and a window of `?seconds=` within what the daemon keeps.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::{
    api::error::{ApiError, parse_pid},
    export::pprof::Samples,
    ingest::Shared,
    model::process::Tracking,
};

/// A validated profile request.
#[derive(Clone, Copy, Debug)]
pub struct ProfileRequest {
    /// The process.
    pub pid: u32,
    /// Window length, seconds.
    pub seconds: u64,
}

/// Parses `key` from the query as `T`, naming it in the error.
pub fn param<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, ApiError> {
    q.get(key)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| ApiError::BadRequest(format!("invalid {key} {v:?}")))
        })
        .transpose()
}

impl ProfileRequest {
    /// Validates the pid and `?seconds=` (default: the report window; at most
    /// `ingest.profile_seconds`); rejects query keys not in `allowed`.
    pub fn parse(
        shared: &Shared,
        raw_pid: &str,
        q: &HashMap<String, String>,
        allowed: &[&str],
    ) -> Result<ProfileRequest, ApiError> {
        let pid = parse_pid(raw_pid)?;
        if let Some(k) = q.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter {k:?}"
            )));
        }
        let max = shared.config.ingest.profile_seconds;
        let seconds = param::<u64>(q, "seconds")?.unwrap_or(shared.config.ingest.window_seconds);
        if seconds == 0 || seconds > max {
            return Err(ApiError::BadRequest(format!(
                "seconds must be between 1 and {max} (ingest.profile_seconds)"
            )));
        }
        Ok(ProfileRequest { pid, seconds })
    }

    /// When the window starts.
    pub fn since(&self, now: Instant) -> Instant {
        now.checked_sub(Duration::from_secs(self.seconds))
            .unwrap_or(now)
    }

    /// The process's samples over the window, and its executable's path.
    pub fn samples(&self, shared: &Shared) -> Result<(Samples, String), ApiError> {
        let model = shared.model();
        let p = model.get(self.pid).ok_or_else(|| {
            ApiError::NotFound(format!(
                "pid {} is not a Go process tracked by gocpu",
                self.pid
            ))
        })?;
        if p.tracking != Tracking::Tracked {
            return Err(ApiError::NotFound(format!(
                "pid {} is listed but not tracked",
                self.pid
            )));
        }
        let a = p.analysis.as_ref().ok_or_else(|| {
            ApiError::NotFound(format!("pid {} has no sampled profile", self.pid))
        })?;
        let samples = a.profile.stacks_since(self.since(Instant::now()));
        Ok((samples, p.exe.display().to_string()))
    }
}
