//! api: one replica of the API, in `jwt` or `session` mode (`API_MODE`).
//!
//! The same binary and the same handlers serve both modes; only the way a request is
//! authenticated differs (see `caller.rs`). Configuration comes from the environment: see
//! `configuration.rs` or docs/CONFIGURATION.md.
//!
//! `api healthcheck` exits 0 when the replica configured by the same environment is ready.

mod caller;
mod configuration;
mod keyset;
mod routes;
mod startup;
mod state;
mod token_cache;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("api: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = configuration::Config::from_env()?;
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => serve(config),
        // For container health checks: exit 0 if the replica at LISTEN_ADDR is ready.
        ["healthcheck"] => match auth_core::probe::ready(config.listen) {
            true => Ok(()),
            false => anyhow::bail!("not ready at {}", config.listen),
        },
        _ => anyhow::bail!(
            "usage: api [healthcheck]\n\
             With no argument, serve; configured by environment variables (see docs/CONFIGURATION.md)"
        ),
    }
}

fn serve(config: configuration::Config) -> anyhow::Result<()> {
    let limits = auth_core::limits::Limits::from_env()?;
    auth_core::telemetry::init_tracing(config.log_format);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.worker_threads {
        runtime.worker_threads(n.max(1));
    }
    runtime.enable_all().build()?.block_on(async {
        let state = startup::build_state(config, limits)?;
        startup::serve(state).await
    })
}
