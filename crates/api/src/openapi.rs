//! A replica's part of the OpenAPI document, for one mode.
//!
//! The handlers' `#[utoipa::path]` attributes describe each route once, for both modes, with
//! paths relative to the mode's prefix and the placeholder security requirement [`CALLER`] on
//! the routes that need a caller. [`document`] turns that into what nginx exposes under one
//! prefix: the paths under `/api` or `/sapi`, the mode's security scheme (bearer token or `sid`
//! cookie), the mode's authentication failures, and operation ids unique across both modes.
//! The issuer merges both modes' documents with its own (`auth_issuer::openapi`).

use crate::settings::Mode;
use crate::startup;
use auth_core::error::ApiError;
use auth_core::openapi::{BEARER, COOKIE, add_errors, operations_mut};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{OpenApi, RefOr};

/// The security requirement a handler names when it needs a caller; replaced per mode.
pub const CALLER: &str = "caller";

/// The routes of a replica in `mode`, as nginx exposes them.
pub fn document(mode: Mode) -> OpenApi {
    let (_, mut document) = startup::documented_routes(mode).split_for_parts();
    let scheme = match mode {
        Mode::Jwt => BEARER,
        Mode::Session => COOKIE,
    };
    for (_, operation) in operations_mut(&mut document) {
        if let Some(id) = &operation.operation_id {
            operation.operation_id = Some(format!("{}_{id}", mode.name()));
        }
        if operation.security.is_some() {
            operation.security = Some(vec![SecurityRequirement::new(scheme, Vec::<String>::new())]);
            add_errors(operation, &authentication_errors(mode));
        }
        if mode == Mode::Session {
            without_bearer_challenges(operation);
        }
    }
    document
}

/// A session caller gets no Bearer challenge (a 403 included, see `jobs.rs`): the session
/// mode's copy of a route documents no `WWW-Authenticate`.
fn without_bearer_challenges(operation: &mut Operation) {
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            response.headers.remove("WWW-Authenticate");
        }
    }
}

/// How authenticating a caller fails in `mode` (see `caller.rs`).
fn authentication_errors(mode: Mode) -> Vec<ApiError> {
    match mode {
        Mode::Jwt => vec![
            ApiError::MissingToken,
            ApiError::InvalidToken("token expired".into()),
            ApiError::Unavailable("verification keys not loaded yet".into()),
        ],
        Mode::Session => vec![
            ApiError::InvalidSession("no such session".into()),
            ApiError::StoreUnavailable,
        ],
    }
}
