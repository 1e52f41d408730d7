//! auth-issuer: logs users in and hands out tokens (or sessions).
//!
//! ```text
//! auth-issuer                  serve (settings from the environment: see settings.rs)
//! auth-issuer hash-password    read a password on stdin, print its Argon2id hash for a users file
//! auth-issuer healthcheck      exit 0 if the issuer at LISTEN_ADDR answers /readyz with 200
//! auth-issuer rotate-key       file a new signing key; it is published at once and signs after KEY_PUBLISH_SECS
//! auth-issuer rotate-key --revoke-previous
//!                              after a key compromise: a new key signs at once, every other key is revoked
//! ```

use auth_core::service::{self, Service};
use auth_issuer::settings::{self, Settings};
use auth_issuer::{startup, users};

use std::io::BufRead as _;

const SERVICE: Service = Service {
    name: "auth-issuer",
    listen: settings::LISTEN_ADDR,
    usage: "usage: auth-issuer [hash-password | healthcheck | rotate-key [--revoke-previous]]\n\n\
    With no argument, serve (configured by environment variables; see docs/CONFIGURATION.md).\n\
    hash-password   read a password from stdin and print its Argon2id PHC hash\n\
    healthcheck     exit 0 if the issuer at LISTEN_ADDR is ready (for container health checks)\n\
    rotate-key      file a new signing key at KEY_PATH: published at once, signing after\n\
                    KEY_PUBLISH_SECS; the current key is retired then, its tokens stay valid\n\
    rotate-key --revoke-previous\n\
                    after a key compromise: a new key signs at once and every other key is\n\
                    revoked; all their tokens are refused (everybody logs in again)",
};

fn main() -> std::process::ExitCode {
    // `healthcheck` and `help` are the scaffold's; these are the issuer's own.
    SERVICE.main(serve, |args| match args {
        ["hash-password"] => Some(hash_password()),
        ["rotate-key"] => Some(rotate_key()),
        ["rotate-key", "--revoke-previous"] => Some(revoke_key()),
        _ => None,
    })
}

fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    service::run(settings.service.log_format, None, async {
        startup::serve(startup::build_state(settings)?).await
    })
}

/// Planned rotation: the new key is published now and signs from `KEY_PUBLISH_SECS` on.
fn rotate_key() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let rotation = settings.key_files().rotate(|| {
        // Rounded up, so the key never signs earlier than KEY_PUBLISH_SECS from now.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis().div_ceil(1000));
        u64::try_from(now)
            .unwrap_or(u64::MAX)
            .saturating_add(settings.key_publish_secs)
    })?;
    let leeway = auth_core::verify::MAX_LEEWAY_SECS;
    println!(
        "new signing key filed next to {}",
        settings.key_path.display()
    );
    println!(
        "  new kid {} is in the JWKS within {} s (running issuers reload) and signs from unix time {} (in {} s)",
        rotation.next, settings.key_reload_secs, rotation.activate_at, settings.key_publish_secs
    );
    println!(
        "  current kid {} signs until then, then stays in the JWKS for {} s and is trusted for refresh tokens for {} s",
        rotation.previous,
        settings.access_ttl + leeway,
        settings.refresh_ttl + leeway
    );
    Ok(())
}

/// Emergency rotation after a key compromise: a new key signs at once, all others are revoked.
fn revoke_key() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let revocation = settings.key_files().revoke(auth_core::now_secs())?;
    println!(
        "new signing key installed at {}",
        settings.key_path.display()
    );
    println!(
        "  new kid {} signs from now on (running issuers reload within {} s)",
        revocation.next, settings.key_reload_secs
    );
    println!(
        "  revoked: {} (issuers refuse their tokens within {} s, replicas within their JWKS_REFRESH_SECS)",
        revocation.revoked.join(", "),
        settings.key_reload_secs
    );
    println!("  every user holding a token of a revoked key has to log in again");
    Ok(())
}

fn hash_password() -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "empty password on stdin");
    println!("{}", users::hash_password(password)?);
    Ok(())
}
