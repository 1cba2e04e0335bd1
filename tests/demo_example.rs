//! The `demo` example as a user runs it: it starts a fleet, shows faults arriving, gets
//! a diagnostics bundle, and finishes by itself with exit 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn the_demo_shows_faults_and_a_bundle_and_ends_by_itself() {
    let exe = std::env::current_exe().unwrap();
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join("demo");
    assert!(binary.exists(), "{} is missing", binary.display());
    let output = Command::new(binary)
        .args(["--agents", "8", "--duration", "20", "--interval", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "8 agents, 4 stacks",
        "ImagePullBackOff",
        "failing",
        "reconcile failing",
        "diagnostics requested",
        "bundle collected",
        "Stale: ",
        "demo finished",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
}
