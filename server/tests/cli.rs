//! The `vellum` command line without a running log: refusals name what is
//! wrong. (These tests also make `cargo test --workspace` build the
//! `vellum` binary that the integration tests in `tests/` start.)

use std::process::Command;

fn vellum(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vellum"))
        .args(args)
        .output()
        .expect("running vellum")
}

#[test]
fn token_add_names_every_scope_when_refusing_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = vellum(&["token", "add", "gw", "--scopes", "write", "--data", d]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("append, read and admin"), "{err}");
    let out = vellum(&["token", "add", "gw", "--scopes", ",", "--data", d]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("append, read, admin"), "{err}");
}

#[test]
fn serve_refuses_an_idle_timeout_shorter_than_a_receipt_wait() {
    let dir = tempfile::tempdir().unwrap();
    let out = vellum(&[
        "serve",
        "--data",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--idle-timeout",
        "5s",
        "--receipt-timeout",
        "10s",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("idle_timeout") && err.contains("receipt_timeout"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "a refused start created files"
    );
}
