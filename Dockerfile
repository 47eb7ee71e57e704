# syntax=docker/dockerfile:1
# gocpu's node daemon image. Build from the repository root:
#   docker build -t ghcr.io/gocpu/gocpu:0.1.0 .
# Stage 1 builds the daemon with the toolchain this repository pins (rust-toolchain.toml) and
# the eBPF chain `cargo xtask setup` installs (LLVM 22, bpf-linker 0.13 linked against it);
# the daemon's build script compiles gocpu-ebpf and embeds the object. Stage 2 is the binary on
# a glibc base and nothing else: no shell, no package manager. `cargo xtask deploy-check`
# keeps the versions below equal to the repository's.
ARG RUST_TOOLCHAIN=1.95.0

FROM rust:${RUST_TOOLCHAIN}-bookworm AS build
ARG RUST_TOOLCHAIN
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends llvm-22-dev \
 && rm -rf /var/lib/apt/lists/*
RUN rustup toolchain install ${RUST_TOOLCHAIN} --profile minimal --component rust-src
# bpf-linker must load the LLVM the pinned rustc emits bitcode with (docs/measurements.md).
RUN LLVM_PREFIX=/usr/lib/llvm-22 RUSTUP_TOOLCHAIN=${RUST_TOOLCHAIN} \
    cargo install bpf-linker --version 0.13.0 --locked --no-default-features --features llvm-22
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --package gocpu-daemon --bin gocpu \
 && objcopy --strip-debug target/release/gocpu /gocpu

# The daemon links libc, libm and libgcc_s only (deploy_image test checks the binary's
# NEEDED entries against this): distroless/cc has exactly those. It runs as uid 0 because
# Kubernetes grants added capabilities only to root; the DaemonSet adds nothing else.
FROM gcr.io/distroless/cc-debian12 AS runtime
COPY --from=build /gocpu /usr/local/bin/gocpu
USER 0:0
EXPOSE 9477
ENTRYPOINT ["/usr/local/bin/gocpu"]
# Outside Kubernetes (`docker run --pid=host --cap-add ... -v /sys/kernel/tracing:...`),
# listen beyond the container's loopback; the DaemonSet replaces this with --config.
CMD ["--listen", "0.0.0.0:9477"]
