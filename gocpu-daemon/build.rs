//! Builds the eBPF programs (`gocpu-ebpf`) for the BPF target and places the object in OUT_DIR,
//! where `probes::loader` embeds it with `include_bytes_aligned!`.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "gocpu-ebpf")
        .ok_or_else(|| anyhow!("gocpu-ebpf package not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("gocpu-ebpf manifest has no parent directory"))?
        .as_str()
        .to_owned();

    // Build the eBPF crate with the very toolchain building us (pinned in rust-toolchain.toml, on
    // LLVM 22 like bpf-linker), not aya-build's default moving `nightly`, which may be on another
    // LLVM ("llvm: Invalid record"). The pinned stable needs RUSTC_BOOTSTRAP for -Z build-std.
    println!("cargo:rerun-if-env-changed=RUSTUP_TOOLCHAIN");
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").context(
        "RUSTUP_TOOLCHAIN is not set: build through rustup (cargo from rustup honours rust-toolchain.toml)",
    )?;
    // SAFETY: build scripts are single-threaded; the variable only affects the child cargo.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    aya_build::build_ebpf(
        [Package {
            name: "gocpu-ebpf",
            root_dir: &root_dir,
            ..Default::default()
        }],
        Toolchain::Custom(&toolchain),
    )
}
