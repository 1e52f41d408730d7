//! auth-issuer: logs users in and hands out tokens (or sessions).
//!
//! ```text
//! auth-issuer                  serve (configuration from the environment: see configuration.rs)
//! auth-issuer hash-password    read a password on stdin, print its Argon2id hash for a users file
//! auth-issuer healthcheck      exit 0 if this configuration's issuer answers /readyz with 200
//! auth-issuer rotate-key       replace the signing key at KEY_PATH; running issuers pick it up
//! ```

use auth_issuer::{configuration, keyring, startup, users};

use std::io::BufRead as _;

const USAGE: &str = "usage: auth-issuer [hash-password | healthcheck]\n\n\
    With no argument, serve (configured by environment variables; see README).\n\
    hash-password   read a password from stdin and print its Argon2id PHC hash\n\
    healthcheck     exit 0 if the issuer at LISTEN_ADDR is ready (for container health checks)\n\
    rotate-key      generate a new signing key at KEY_PATH and retire the current one";

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

/// Rotate the signing key in the files; running issuers notice within `KEY_RELOAD_SECS`.
fn rotate_key() -> anyhow::Result<()> {
    let config = configuration::Config::from_env()?;
    let files = keyring::KeyFiles {
        path: config.key_path.clone(),
        bits: config.key_bits,
    };
    let (old, new) = files.rotate(auth_core::now_secs())?;
    println!("rotated the signing key at {}", config.key_path.display());
    println!(
        "  new kid {new} signs from now on (running issuers reload within {} s)",
        config.key_reload_secs
    );
    println!(
        "  old kid {old} stays in the JWKS for {} s, for refresh tokens for {} s",
        config.access_ttl + auth_core::verify::MAX_LEEWAY_SECS,
        config.refresh_ttl + auth_core::verify::MAX_LEEWAY_SECS
    );
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
