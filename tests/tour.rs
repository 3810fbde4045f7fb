//! The README's demo command, `cargo run --example tour`, runs to the end:
//! every step checked its own result, and every server drained.

mod support;

use std::process::Command;
use std::time::Duration;

#[test]
fn tour_runs_every_step_and_exits_zero() {
    let (status, stdout, stderr) = support::run_with_timeout(
        &mut Command::new(support::example_bin("tour")),
        Duration::from_secs(120),
    );
    let out = String::from_utf8_lossy(&stdout);
    assert!(
        status.success(),
        "tour failed: {status}\n{out}\n{}",
        String::from_utf8_lossy(&stderr)
    );
    for expected in [
        "sent \"hello, socketserver\", got back \"hello, socketserver\"",
        "separate writes -> one command, stdout \"split\\n\"",
        "two frames in one write -> two commands, answers [\"one\", \"two\"]",
        "exit code 3",
        "the stored file is byte-identical to the original",
        "carol heard: [\"[alice] hi all\", \"[bob] hello alice\", \"[carol] hey both\"]",
        "all four serve_forever loops returned",
        "tour complete",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert_eq!(out.matches("listening on 127.0.0.1:").count(), 4);
}
