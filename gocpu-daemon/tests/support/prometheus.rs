//! Debian's `prometheus`, started for a test.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use gocpu_testkit::{http, process::KillOnDrop};

/// Starts `prometheus` with `config`, its data under `dir`, listening on `addr`, its log to
/// `stderr`; returns once it answers `/-/ready`.
pub fn start(config: &Path, dir: &Path, addr: SocketAddr, stderr: Stdio) -> KillOnDrop {
    let child = KillOnDrop(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("prometheus (Debian package `prometheus`; `cargo xtask setup`)"),
    );
    super::wait("Prometheus ready", Duration::from_secs(30), || {
        http::get(addr, "/-/ready").ok().filter(|r| r.status == 200)
    });
    child
}
