//! The `vellum-witness` command line without a running witness. (These
//! tests also make `cargo test --workspace` build the binary that the
//! integration tests in `tests/` start.)

use std::process::Command;

#[test]
fn a_bad_log_key_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vellum-witness"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log",
            "not-a-key",
            "--data",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not-a-key"), "{err}");
}
