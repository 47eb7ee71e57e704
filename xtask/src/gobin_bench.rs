//! (work in progress)
use anyhow::{Result, bail};

/// Entry point of this task.
pub fn run(_args: &[String]) -> Result<()> {
    bail!("not implemented yet")
}
