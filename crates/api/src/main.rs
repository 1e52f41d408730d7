//! api: one replica of the API, in `jwt` or `session` mode (`API_MODE`).
//!
//! The same binary and the same handlers serve both modes; only the way a request is
//! authenticated differs (see `caller.rs`). Configuration comes from the environment: see
//! `settings.rs` or docs/CONFIGURATION.md. The command line, serving and the health routes are
//! the scaffold every service shares (`auth_core::service`).
//!
//! `api healthcheck` exits 0 when the replica configured by the same environment is ready.

use api::{settings, startup};
use auth_core::service::{self, Service};

const SERVICE: Service = Service {
    name: "api",
    listen: settings::LISTEN_ADDR,
    usage: "usage: api [healthcheck]\n\n\
        With no argument, serve; configured by environment variables (see docs/CONFIGURATION.md).\n\
        healthcheck     exit 0 if the replica at LISTEN_ADDR is ready (for container health checks)",
};

fn main() -> std::process::ExitCode {
    SERVICE.main(serve, |_| None)
}

fn serve() -> anyhow::Result<()> {
    let settings = settings::Settings::from_env()?;
    let (log_format, worker_threads) = (settings.service.log_format, settings.worker_threads);
    service::run(log_format, worker_threads, async {
        startup::serve(startup::build_state(settings)?).await
    })
}
