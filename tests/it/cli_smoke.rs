//! The binary starts and answers --help.

use std::process::Command;

#[test]
fn help_lists_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_rebound")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "parse", "db"] {
        assert!(text.contains(cmd), "--help lacks {cmd}");
    }
}
