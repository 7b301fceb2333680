//! The `vellum-verify` command line without a log: usage errors exit 2
//! and say what is wrong. (These tests also make `cargo test --workspace`
//! build the binary that the integration tests in `tests/` start.)

use std::process::Command;

#[test]
fn a_missing_key_file_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_vellum-verify"))
        .args([
            "receipt",
            "no-such-receipt.txt",
            "--log-key",
            "no-such-key-file",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
