//! # auth-core: what the issuer and the replicas share
//!
//! authscale runs two kinds of service: the **issuer** (`auth-issuer`), which checks passwords and
//! hands out tokens or sessions, and the **replicas** (`api`), which serve the API and must know who
//! is calling. Both speak the same vocabulary, and it lives here so that it is written once:
//!
//! - [`claims`]: what is inside an access token (RFC 9068) and a refresh token.
//! - [`keys`]: RSA keys: loading, generating, the `kid` thumbprint (RFC 7638), the public JWKS.
//! - [`refresh_key`]: the issuers' HMAC key for refresh tokens (HS256), derived from the RSA key.
//! - [`sign`]: turning claims into a signed JWT (RS256 access tokens, HS256 refresh tokens).
//! - [`verify`]: every check a token must pass (RFC 8725), in one place, for both kinds.
//! - [`error`]: the one error type; it knows its HTTP status, JSON body and `WWW-Authenticate`.
//! - [`settings`]: reading settings from environment variables with clear errors, and the
//!   settings both services share (one definition, one default each).
//! - [`session`]: the server-side session record and the `sid` cookie (its one parser).
//! - [`store`]: the Redis client (one shared connection, or a cluster's), with timeouts and a count of commands sent (registered
//!   once, for both services).
//! - [`store_credentials`]: `REDIS_URL` with a user name and a password read from a file.
//! - [`telemetry`]: logs (never a token, password or key), Prometheus metrics.
//! - [`openapi`]: what the OpenAPI document of both services shares: security schemes, errors.
//! - [`limits`]: body size, request time and concurrency limits with JSON errors.
//! - [`probe`]: the TCP probe behind `healthcheck`: a binary asking its own `/readyz`.
//! - [`service`]: the service scaffold: the command line (`healthcheck` included), serving with
//!   graceful shutdown, `/healthz` and `/readyz`, and what every router gets: /metrics, JSON 404
//!   and 405, limits, request metrics.
//! - [`shutdown`]: waiting for Ctrl-C or SIGTERM so a service can stop cleanly.

pub mod claims;
pub mod error;
pub mod keys;
pub mod limits;
pub mod openapi;
pub mod probe;
pub mod refresh_key;
pub mod service;
pub mod session;
pub mod settings;
pub mod settings_doc;
pub mod shutdown;
pub mod sign;
pub mod store;
pub mod store_credentials;
pub mod telemetry;
pub mod verify;

/// Seconds since the Unix epoch: the unit of every JWT time claim (`exp`, `iat`, `nbf`).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `n` random bytes from the operating system's CSPRNG, base64url-encoded without padding.
///
/// Used for token ids (`jti`), refresh-token families and session ids. AWS-LC's generator is
/// seeded from the OS; a failure there is not something to paper over, so it is an error.
pub fn random_id(bytes: usize) -> Result<String, error::ApiError> {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| error::ApiError::internal("CSPRNG failure"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}
