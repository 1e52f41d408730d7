//! api: one replica of the API, in `jwt` or `session` mode (`API_MODE`).
//!
//! The same binary and the same handlers serve both modes; only the way a request is
//! authenticated differs (see `caller.rs`). Configuration comes from the environment: see
//! `configuration.rs` or the README's table.

mod caller;
mod configuration;
mod keyset;
mod routes;
mod startup;
mod state;

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
    if std::env::args().len() > 1 {
        anyhow::bail!(
            "api takes no arguments; it is configured by environment variables (see README)"
        );
    }
    let config = configuration::Config::from_env()?;
    auth_core::telemetry::init_tracing(config.log_format);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.worker_threads {
        runtime.worker_threads(n.max(1));
    }
    runtime.enable_all().build()?.block_on(async {
        let state = startup::build_state(config)?;
        startup::serve(state).await
    })
}
