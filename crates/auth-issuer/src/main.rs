//! auth-issuer: logs users in and hands out tokens (or sessions).
//!
//! ```text
//! auth-issuer                  serve (configuration from the environment: see configuration.rs)
//! auth-issuer hash-password    read a password on stdin, print its Argon2id hash for a users file
//! auth-issuer healthcheck      exit 0 if this configuration's issuer answers /readyz with 200
//! auth-issuer rotate-key       file a new signing key; it is published at once and signs after KEY_PUBLISH_SECS
//! auth-issuer rotate-key --revoke-previous
//!                              after a key compromise: a new key signs at once, every other key is revoked
//! ```

use auth_issuer::{configuration, key_files, startup, users};

use std::io::BufRead as _;

const USAGE: &str = "usage: auth-issuer [hash-password | healthcheck | rotate-key [--revoke-previous]]\n\n\
    With no argument, serve (configured by environment variables; see docs/CONFIGURATION.md).\n\
    hash-password   read a password from stdin and print its Argon2id PHC hash\n\
    healthcheck     exit 0 if the issuer at LISTEN_ADDR is ready (for container health checks)\n\
    rotate-key      file a new signing key at KEY_PATH: published at once, signing after\n\
                    KEY_PUBLISH_SECS; the current key is retired then, its tokens stay valid\n\
    rotate-key --revoke-previous\n\
                    after a key compromise: a new key signs at once and every other key is\n\
                    revoked; all their tokens are refused (everybody logs in again)";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => serve(),
        ["hash-password"] => hash_password(),
        ["healthcheck"] => return healthcheck(),
        ["rotate-key"] => rotate_key(),
        ["rotate-key", "--revoke-previous"] => revoke_key(),
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(anyhow::anyhow!("unknown arguments {args:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auth-issuer: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve() -> anyhow::Result<()> {
    let config = configuration::Config::from_env()?;
    let limits = auth_core::limits::Limits::from_env()?;
    auth_core::telemetry::init_tracing(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let state = startup::build_state(config, limits)?;
        startup::serve(state).await
    })
}

fn healthcheck() -> std::process::ExitCode {
    match configuration::Config::from_env() {
        Ok(config) => auth_core::probe::exit_code(config.listen),
        Err(e) => {
            eprintln!("auth-issuer: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn key_files(config: &configuration::Config) -> key_files::KeyFiles {
    key_files::KeyFiles {
        path: config.key_path.clone(),
        bits: config.key_bits,
    }
}

/// Planned rotation: the new key is published now and signs from `KEY_PUBLISH_SECS` on.
fn rotate_key() -> anyhow::Result<()> {
    let config = configuration::Config::from_env()?;
    let rotation = key_files(&config).rotate(|| {
        // Rounded up, so the key never signs earlier than KEY_PUBLISH_SECS from now.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis().div_ceil(1000));
        u64::try_from(now)
            .unwrap_or(u64::MAX)
            .saturating_add(config.key_publish_secs)
    })?;
    let leeway = auth_core::verify::MAX_LEEWAY_SECS;
    println!(
        "new signing key filed next to {}",
        config.key_path.display()
    );
    println!(
        "  new kid {} is in the JWKS within {} s (running issuers reload) and signs from unix time {} (in {} s)",
        rotation.next, config.key_reload_secs, rotation.activate_at, config.key_publish_secs
    );
    println!(
        "  current kid {} signs until then, then stays in the JWKS for {} s and is trusted for refresh tokens for {} s",
        rotation.previous,
        config.access_ttl + leeway,
        config.refresh_ttl + leeway
    );
    Ok(())
}

/// Emergency rotation after a key compromise: a new key signs at once, all others are revoked.
fn revoke_key() -> anyhow::Result<()> {
    let config = configuration::Config::from_env()?;
    let revocation = key_files(&config).revoke(auth_core::now_secs())?;
    println!("new signing key installed at {}", config.key_path.display());
    println!(
        "  new kid {} signs from now on (running issuers reload within {} s)",
        revocation.next, config.key_reload_secs
    );
    println!(
        "  revoked: {} (issuers refuse their tokens within {} s, replicas within their JWKS_REFRESH_SECS)",
        revocation.revoked.join(", "),
        config.key_reload_secs
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
