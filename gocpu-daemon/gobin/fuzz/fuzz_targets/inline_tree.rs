//! Fuzz target: gocpu_gobin::fuzzing::inline_tree on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gocpu_gobin::fuzzing::inline_tree(data));
