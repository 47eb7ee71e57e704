//! Host-side library stub of `gocpu-ebpf`.
//!
//! The programs live in the `gocpu` binary target, built for `bpfel-unknown-none` by
//! `gocpu-daemon`'s build script. This library exists only so that `gocpu-daemon` can declare a
//! build-dependency on this crate and be rebuilt when it changes.
#![no_std]
