//! The `okta-sim` subcommand of the binary: how it treats its token settings at start.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the command may take to reject its settings and exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn empty_env_token_rejected() {
    let folder = std::env::temp_dir().join(format!("okta-sim-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&folder).unwrap();
    let token_file = folder.join("token");

    let mut child = Command::new(env!("CARGO_BIN_EXE_okta-dcr-worker"))
        .args(["okta-sim", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&token_file)
        .env("OKTA_SIM_API_TOKEN", "")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A simulator that accepted the token would serve until stopped, so it is killed after
    // the deadline instead of hanging the test.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() >= EXIT_DEADLINE {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let token_file_exists = token_file.exists();
    std::fs::remove_dir_all(&folder).unwrap();

    let status = status.unwrap_or_else(|| panic!("okta-sim kept running: {stderr}"));
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the API token is empty"), "{stderr}");
    assert!(stderr.contains("OKTA_SIM_API_TOKEN"), "{stderr}");
    assert!(!token_file_exists, "no token file may be written");
}
