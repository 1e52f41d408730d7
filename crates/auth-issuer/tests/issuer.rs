//! The issuer binary on its own: its key file, its configuration errors, its password tool.
//! (The contract's routes are tested through nginx in crates/api/tests/cluster.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_auth-issuer");

/// The issuer's process, killed when dropped.
struct Issuer(std::process::Child);

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start the issuer with `KEY_PATH` in `dir` (no Redis: it is alive but not ready) and return
/// the `kid` its JWKS publishes.
async fn start_and_read_kid(dir: &std::path::Path) -> String {
    let port = free_port();
    let _issuer = Issuer(
        Command::new(BIN)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("KEY_PATH", dir.join("keys/issuer.pem"))
            .env("REDIS_URL", format!("redis://127.0.0.1:{}", free_port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/.well-known/jwks.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = reqwest::get(&url).await {
            let jwks: serde_json::Value = response.json().await.unwrap();
            return jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "issuer did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_key_is_generated_once_with_mode_0600_and_reused_after_a_restart() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let first = start_and_read_kid(dir.path()).await;
    let mode = std::fs::metadata(dir.path().join("keys/issuer.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let second = start_and_read_kid(dir.path()).await;
    assert_eq!(
        first, second,
        "a restart keeps the key, so tokens stay valid"
    );
}

#[test]
fn bad_configuration_stops_the_issuer_with_a_message_naming_the_variable() {
    let cases = [
        ("ACCESS_TTL_SECS", "five minutes"),
        ("KEY_BITS", "1024"),
        ("LISTEN_ADDR", "nowhere"),
        ("COOKIE_SECURE", "maybe"),
    ];
    for (name, value) in cases {
        let output = Command::new(BIN).env(name, value).output().unwrap();
        assert!(!output.status.success(), "{name}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}

#[test]
fn hash_password_prints_an_argon2id_hash_and_never_the_password() {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let hash = String::from_utf8(output.stdout).unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains("correct horse"));
}
