//! Shared by the `runtime_*` tests: runs a workload built with a toolchain and variant, and
//! reads its runtime state from outside with the daemon's readers.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    process::Command,
    time::{Duration, Instant},
};

use gocpu_daemon::runtime::{ProcessVm, RuntimeLayout, process_load_bias};
use gocpu_gobin::GoBinary;
use gocpu_testkit::{GoToolchain, Variant, build, process::KillOnDrop, workload};

/// A running workload and what is needed to read it.
pub struct Target {
    pub child: KillOnDrop,
    pub label: String,
    pub binary: GoBinary,
    pub layout: RuntimeLayout,
    pub bias: u64,
    pub mem: ProcessVm,
}

impl Target {
    /// Builds `name` with `tc` / `variant`, starts it with `args` and `env`, and prepares the
    /// readers (after giving the runtime `settle` to start up).
    pub fn start(
        tc: &GoToolchain,
        name: &str,
        variant: Variant,
        args: &[&str],
        env: &[(&str, &str)],
        settle: Duration,
    ) -> Target {
        Target::start_with_stderr(tc, name, variant, args, env, settle, None)
    }

    /// As [`Target::start`], with the workload's stderr written to `stderr`.
    pub fn start_with_stderr(
        tc: &GoToolchain,
        name: &str,
        variant: Variant,
        args: &[&str],
        env: &[(&str, &str)],
        settle: Duration,
        stderr: Option<std::fs::File>,
    ) -> Target {
        let bin = build(tc, &workload(name), variant);
        let mut cmd = Command::new(&bin);
        cmd.args(args).envs(env.iter().copied());
        let child = match stderr {
            None => KillOnDrop::spawn(&mut cmd),
            Some(f) => KillOnDrop(
                cmd.stdout(std::process::Stdio::piped())
                    .stderr(f)
                    .spawn()
                    .unwrap(),
            ),
        };
        std::thread::sleep(settle);
        let pid = child.pid();
        let label = format!("go{} {name} {}", tc.version, variant.name());
        let binary = GoBinary::open(&bin).unwrap();
        let layout = RuntimeLayout::new(&binary).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(
            layout.unavailable().is_empty(),
            "{label}: {:?}",
            layout.unavailable()
        );
        let bias = process_load_bias(pid, &binary).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(
            bias != 0,
            variant == Variant::Pie,
            "{label}: bias {bias:#x}"
        );
        Target {
            child,
            label,
            binary,
            layout,
            bias,
            mem: ProcessVm::new(pid).unwrap(),
        }
    }

    /// The thread ids in `/proc/<pid>/task`.
    pub fn tasks(&self) -> BTreeSet<u32> {
        std::fs::read_dir(format!("/proc/{}/task", self.child.pid()))
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect()
    }

    /// Stops the workload with SIGTERM and returns its JSON ground truth line.
    pub fn stop(self) -> serde_json::Value {
        self.child.signal(libc::SIGTERM);
        let (out, status) = self.child.wait_output(Duration::from_secs(30));
        assert!(status.success(), "{}: exit {status}", self.label);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{}: {e}: {out}", self.label))
    }
}

/// Polls `f` until it returns `Some` or `timeout` passes; returns the last `None` reason too.
pub fn retry<T>(timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(why) => {
                assert!(
                    Instant::now() < deadline,
                    "gave up after {timeout:?}: {why}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
