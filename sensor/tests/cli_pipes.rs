//! The offline commands when their reader is gone (`sensor config | head -1`): they end
//! as filters do, by SIGPIPE, and never panic.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const GH: &str = "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";

#[test]
fn offline_commands_writing_to_a_closed_pipe_end_without_panicking() {
    let dir = std::env::temp_dir().join(format!("sensor-pipes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tok.env");
    std::fs::write(&file, format!("GITHUB_TOKEN={GH}\n").repeat(50)).unwrap();
    let file = file.to_str().unwrap();
    for args in [
        vec!["config"],
        vec!["rules", "list"],
        vec!["rules", "check"],
        vec!["scan", "--format", "json", file],
        vec!["scan", "--format", "table", file],
        vec!["scan", "--format", "sarif", file],
        vec!["--help"],
    ] {
        // The read end is closed before the command starts: its first write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_sensor"))
            .args(&args)
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {:?}\n{err}",
            out.status
        );
    }
}
