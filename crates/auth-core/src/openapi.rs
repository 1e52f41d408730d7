//! The parts of the OpenAPI document that both services share.
//!
//! The document (served at `/openapi.json`, see `auth_issuer::openapi`) is generated from the
//! code: each handler carries a `#[utoipa::path]` attribute, its request and response types derive
//! `ToSchema`, and each router is built from the same list of handlers as its part of the
//! document (utoipa-axum's `routes!`). What both services need for that lives here:
//!
//! - the two security schemes, a bearer access token (`/api/`) and the `sid` cookie (`/sapi/`);
//! - [`error_responses`]: the documented failures of a route, made from real [`ApiError`]
//!   values, so each status, `error` code, example body and `Retry-After` or `WWW-Authenticate`
//!   header is what the error type answers, not a copy of it;
//! - [`errors!`](crate::errors): a named set of such failures, for a route's `responses(...)`.

use crate::error::{ApiError, ErrorBody};
use std::collections::BTreeMap;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, ObjectBuilder, OpenApi, RefOr, Type};
use utoipa::{PartialSchema as _, ToSchema};

/// The security scheme of `/api/`: `Authorization: Bearer <access token>` (RFC 6750).
pub const BEARER: &str = "bearer";
/// The security scheme of `/sapi/` and session logout: the `sid` cookie.
pub const COOKIE: &str = "cookie";

/// Adds both security schemes and the [`ErrorBody`] schema to `components`.
pub fn add_shared_components(components: &mut Components) {
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "An RS256 access token (RFC 9068, `typ` `at+jwt`) from `/auth/login` or \
                     `/auth/refresh`.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        COOKIE,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::session::COOKIE,
            "The opaque session id set by `/auth/session/login` (HttpOnly, SameSite=Lax).",
        ))),
    );
    components
        .schemas
        .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
}

/// The responses for `errors`, one per status: its description names every `error` code the
/// route answers with that status, its example bodies are the errors' own, and its headers are
/// the ones those errors set.
pub fn error_responses(errors: &[ApiError]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<&ApiError>> = BTreeMap::new();
    for error in errors {
        by_status
            .entry(error.status().as_u16())
            .or_default()
            .push(error);
    }
    by_status
        .into_iter()
        .map(|(status, errors)| (status.to_string(), response_for(&errors).into()))
        .collect()
}

fn response_for(errors: &[&ApiError]) -> ResponseBuilder {
    let description = errors
        .iter()
        .map(|e| format!("`{}`: {}", e.code(), e.description()))
        .collect::<Vec<_>>()
        .join("; ");
    // Named by code; a second error with the same code (a missing and a bad token are both
    // `invalid_token`) gets a numbered name.
    let mut names: Vec<String> = Vec::new();
    let examples: Vec<_> = errors
        .iter()
        .map(|e| {
            let taken = names.iter().filter(|n| n.starts_with(e.code())).count();
            let name = match taken {
                0 => e.code().to_owned(),
                n => format!("{}_{}", e.code(), n + 1),
            };
            names.push(name.clone());
            let body = serde_json::to_value(e.body()).unwrap_or_default();
            let example = utoipa::openapi::example::ExampleBuilder::new().value(Some(body));
            (name, example.build())
        })
        .collect();
    let content = ContentBuilder::new()
        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            ErrorBody::name(),
        ))))
        .examples_from_iter(examples)
        .build();
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/json", content);
    if errors.iter().any(|e| e.retry_after_secs().is_some()) {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .description(Some("Seconds to wait before trying again."))
                .build(),
        );
    }
    if errors.iter().any(|e| e.www_authenticate().is_some()) {
        let challenges: Vec<_> = errors.iter().filter_map(|e| e.www_authenticate()).collect();
        response = response.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .description(Some(format!(
                    "The RFC 6750 challenge: {}.",
                    challenges.join(", or ")
                )))
                .build(),
        );
    }
    response
}

/// Documents `errors` on `operation`, for each status it does not document yet (a route's own
/// failures, listed on its handler, stay as they are).
pub fn add_errors(operation: &mut Operation, errors: &[ApiError]) {
    for (status, response) in error_responses(errors) {
        operation
            .responses
            .responses
            .entry(status)
            .or_insert(response);
    }
}

/// Every operation of `document`, with its path.
pub fn operations_mut(document: &mut OpenApi) -> impl Iterator<Item = (&str, &mut Operation)> {
    document.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        .map(move |operation| (path.as_str(), operation))
    })
}

/// A named set of the errors a route answers, for `responses(...)` in `#[utoipa::path]`:
///
/// ```ignore
/// auth_core::errors!(LoginErrors: ApiError::InvalidCredentials, ApiError::Overloaded);
/// #[utoipa::path(post, path = "/auth/login", responses((status = 200, body = TokenPair), LoginErrors))]
/// ```
#[macro_export]
macro_rules! errors {
    ($(#[$doc:meta])* $name:ident: $($error:expr),+ $(,)?) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                $crate::openapi::error_responses(&[$($error),+])
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_response_per_status_naming_every_code() {
        let responses = error_responses(&[
            ApiError::InvalidToken("expired".into()),
            ApiError::MissingToken,
            ApiError::TooManyAttempts {
                retry_after_secs: 3,
            },
        ]);
        assert_eq!(responses.keys().collect::<Vec<_>>(), ["401", "429"]);
        let json = serde_json::to_value(&responses).unwrap();
        let unauthorized = &json["401"];
        assert!(
            unauthorized["description"]
                .as_str()
                .unwrap()
                .contains("`invalid_token`")
        );
        assert!(unauthorized["headers"]["WWW-Authenticate"].is_object());
        let examples = &unauthorized["content"]["application/json"]["examples"];
        assert_eq!(examples["invalid_token"]["value"]["error"], "invalid_token");
        assert_eq!(
            examples["invalid_token_2"]["value"]["error"],
            "invalid_token"
        );
        assert!(json["429"]["headers"]["Retry-After"].is_object());
        assert!(json["401"]["headers"].get("Retry-After").is_none());
    }
}
