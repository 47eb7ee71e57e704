//! `gocpu inspect <pid>`: asks the node's daemon about one process and prints the compact human
//! report (verdict, CPU split, ratios, top hotspots) — a one-shot "schedtrace + pprof" that
//! never touches the program.
use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The daemon could not be reached.
    #[error("cannot reach gocpu at {addr}: {source} (is the daemon running? see --addr)")]
    Connect {
        /// Address tried.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The daemon's answer was not HTTP.
    #[error("malformed answer from gocpu at {0}")]
    Protocol(SocketAddr),
    /// The daemon answered with an error.
    #[error("gocpu: {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The JSON error body.
        body: String,
    },
}

/// GETs `path` from the daemon at `addr`, as text.
pub async fn get(addr: SocketAddr, path: &str) -> Result<String, CliError> {
    let connect = |source| CliError::Connect { addr, source };
    let mut s = TcpStream::connect(addr).await.map_err(connect)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.map_err(connect)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.map_err(connect)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(CliError::Protocol(addr))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(CliError::Protocol(addr))?;
    if status != 200 {
        return Err(CliError::Status {
            status,
            body: body.trim().to_string(),
        });
    }
    Ok(body.to_string())
}

/// The report for `pid` over the last `seconds`.
pub async fn inspect(addr: SocketAddr, pid: u32, seconds: Option<u64>) -> Result<String, CliError> {
    let mut path = format!("/processes/{pid}/hotspots?format=text&top=15");
    if let Some(s) = seconds {
        path.push_str(&format!("&seconds={s}"));
    }
    get(addr, &path).await
}
