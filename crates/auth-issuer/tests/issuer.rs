//! The issuer binary on its own: its key file, its configuration errors, its password tool.
//! (The contract's routes are tested through nginx in crates/api/tests/cluster.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stack::process::Process;
use stack::readiness;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::Client;

const BIN: &str = env!("CARGO_BIN_EXE_auth-issuer");

fn free_port() -> u16 {
    stack::ports::free_port().unwrap()
}

/// Start the issuer with `KEY_PATH` in `dir` (no Redis: it is alive but not ready) and return
/// the `kid` its JWKS publishes. The issuer is stopped on return, also when this panics.
async fn start_and_read_kid(dir: &std::path::Path) -> String {
    let port = free_port();
    let mut command = Command::new(BIN);
    command
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("KEY_PATH", dir.join("keys/issuer.pem"))
        .env("REDIS_URL", format!("redis://127.0.0.1:{}", free_port()));
    // stack's Process stops the issuer on drop and keeps its output in a log, which
    // wait_until_ready shows if the issuer exits before it answers.
    let mut issuer = Process::spawn("issuer", command, &dir.join("issuer.log")).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let probe = readiness::probe_client().unwrap();
    let healthz = format!("{base}/healthz");
    readiness::wait_until_ready(&mut issuer, "GET /healthz", Duration::from_secs(20), || {
        readiness::http_ok(&probe, &healthz)
    })
    .await
    .unwrap();
    let jwks = Client::new(&base).unwrap().jwks().await.unwrap();
    jwks["keys"][0]["kid"].as_str().unwrap().to_owned()
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

/// The store client sends a request once more when its connection turns out to be dead,
/// not knowing whether Redis ran it before the connection died (auth-core's store.rs). A
/// rotation sent twice must then be answered from its own rotation both times, even with no
/// grace and no retry window, while another request spending the same token is still reuse.
#[tokio::test]
async fn a_resent_rotation_is_answered_from_its_own_rotation_and_a_replay_is_still_reuse() {
    use auth_issuer::families::{Decision, Families, Rules};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _redis = stack::redis::start(
        &stack::programs::redis_server().unwrap(),
        port,
        &stack::redis::Persistence::None,
        &dir.path().join("redis.log"),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    let url = format!("redis://127.0.0.1:{port}");
    let target = auth_core::store::Target::Node(url);
    let store = auth_core::store::Store::new(&target, Default::default()).unwrap();
    let rules = Rules {
        refresh_ttl: 100,
        family_max_ttl: 1000,
        grace_ms: 0,
        retry_window_secs: 0,
    };
    let families = Families::new(&store, rules);
    families
        .create("F", "J1", auth_core::now_secs())
        .await
        .unwrap();

    let who = "203.0.113.1";
    let first = families.rotate("F", "J1", "J2", who).await.unwrap();
    assert!(
        matches!(&first, Decision::Rotated(s) if s.jti == "J2"),
        "{first:?}"
    );
    let resent = families.rotate("F", "J1", "J2", who).await.unwrap();
    assert_eq!(resent, first, "the same request sent again");
    families.answered("F", "J2").await.unwrap();
    let resent = families.rotate("F", "J1", "J2", who).await.unwrap();
    assert_eq!(
        resent, first,
        "the same request sent again after its answer"
    );

    let replay = families.rotate("F", "J1", "J3", who).await.unwrap();
    assert_eq!(replay, Decision::Reused, "another request spending J1");
}
