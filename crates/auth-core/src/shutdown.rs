//! Graceful shutdown.
//!
//! A service stops accepting connections on Ctrl-C (SIGINT) or SIGTERM (what `docker stop`,
//! systemd and `cargo xtask up` send), lets requests in flight finish, then exits. axum's
//! `with_graceful_shutdown` does the draining; this future only says when to start.

/// Resolves on the first SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining requests in flight");
}
