//! The OpenAPI 3.1 document of the whole public surface, as nginx exposes it, served at
//! `GET /openapi.json`.
//!
//! One document for what a client sees through nginx: the issuer's routes, the token replicas'
//! `/api/*` and the session replicas' `/sapi/*`. It is generated from the code, never kept by
//! hand: every handler carries a `#[utoipa::path]` attribute, the request and response bodies
//! are the handlers' own types (`ToSchema`), the failures are real `ApiError` values
//! (`auth_core::openapi`), and each router is built from the same list of handlers as its part
//! of the document (utoipa-axum's `routes!`), so a route cannot be served without being in it.
//!
//! Why the issuer serves it: the replicas' part comes from the `api` crate, which the issuer
//! uses as a library for this alone, while the issuer's part needs no state; so the issuer can
//! build the whole document at start-up, with no request to anyone, and nginx passes
//! `/openapi.json` to it (deploy/nginx/nginx.conf.template). A replica could not: it serves one
//! mode and knows nothing of the issuer's routes.

use crate::startup;
use api::settings::Mode;
use auth_core::limits::limit_errors;
use auth_core::openapi::{add_errors, add_shared_components, operations_mut};
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::LazyLock;
use utoipa::openapi::{InfoBuilder, OpenApi};

/// The document: the issuer's part, then both replica modes' parts.
pub fn document() -> OpenApi {
    let (_, mut document) = startup::documented_routes().split_for_parts();
    document.merge(api::openapi::document(Mode::Jwt));
    document.merge(api::openapi::document(Mode::Session));
    // Every service sheds with the same limits (auth-core's limits.rs): documented once, here.
    for (_, operation) in operations_mut(&mut document) {
        add_errors(operation, &limit_errors());
    }
    document.info = InfoBuilder::new()
        .title("authscale")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The public HTTP interface of authscale, as nginx exposes it: the issuer (`/auth/*`, \
             `/.well-known/*`), the token replicas (`/api/*`, a bearer access token) and the \
             session replicas (`/sapi/*`, the `sid` cookie). Generated from the code; the \
             contract in prose, with every rule, is docs/API.md.",
        ))
        .build();
    add_shared_components(document.components.get_or_insert_with(Default::default));
    document
}

/// The document as served: built once, on first use.
static SERVED: LazyLock<String> = LazyLock::new(|| {
    document().to_pretty_json().unwrap_or_else(|e| {
        serde_json::json!({"error": "internal_error", "error_description": e.to_string()})
            .to_string()
    })
});

/// This document (OpenAPI 3.1).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of the public surface.", content_type = "application/json", body = Object, headers(
        ("Cache-Control" = String, description = "`public, max-age=300`."),
    ))),
)]
pub async fn openapi() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        SERVED.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn json() -> Value {
        serde_json::to_value(document()).unwrap()
    }

    /// Every `"$ref"` in `value`.
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", Value::String(target)) => out.push(target.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    /// `(METHOD, path)` of every operation in the document.
    fn operations(document: &Value) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                found.push((method.to_uppercase(), path.clone()));
            }
        }
        found.sort();
        found
    }

    /// `(METHOD, path)` of every route a service serves through nginx, from docs/API.md's
    /// routes table: its first column, e.g. `` `GET /api/me` `` or two routes in one cell.
    fn contract_routes() -> Vec<(String, String)> {
        let api_md = include_str!("../../../docs/API.md");
        let table = api_md
            .split("## Routes through nginx")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").nth(1))
            .expect("docs/API.md has a routes table");
        let mut routes = Vec::new();
        for row in table.lines().skip(2) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let (first, served_by) = (cells[1], cells[2]);
            // nginx's own routes (its pages, and the /cluster aliases of documented routes,
            // one per process) are not code routes, so not in the document.
            if served_by.starts_with("nginx itself") {
                continue;
            }
            for route in first.split(", ") {
                let (method, path) = route.trim_matches('`').split_once(' ').unwrap();
                routes.push((method.to_owned(), path.to_owned()));
            }
        }
        routes.sort();
        routes
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_reference_resolves() {
        let document = json();
        assert_eq!(document["openapi"], "3.1.0");
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let pointer = target.strip_prefix('#').expect("a local reference");
            assert!(
                document.pointer(pointer).is_some(),
                "{target} resolves to nothing"
            );
        }
    }

    #[test]
    fn every_operation_is_unique_answers_and_names_a_known_security_scheme() {
        let document = json();
        let schemes = document["components"]["securitySchemes"]
            .as_object()
            .unwrap();
        let mut ids = std::collections::HashSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"].as_str().unwrap();
                assert!(
                    ids.insert(id.to_owned()),
                    "{method} {path}: operationId {id} twice"
                );
                let responses = operation["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|status| status.starts_with('2')),
                    "{method} {path} documents no success"
                );
                // Under load every route may shed with 503 (auth_core::limits).
                assert!(responses.contains_key("503"), "{method} {path}: no 503");
                for requirement in operation["security"].as_array().into_iter().flatten() {
                    for name in requirement.as_object().unwrap().keys() {
                        assert!(
                            schemes.contains_key(name),
                            "{method} {path}: scheme {name}?"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_route_of_the_contract_is_in_the_document_and_nothing_else() {
        let mut documented = operations(&json());
        let contract = contract_routes();
        assert!(contract.len() >= 14, "the table was not read: {contract:?}");
        // The document describes itself too; docs/API.md lists it among the issuer's routes.
        documented.retain(|route| route.1 != "/openapi.json" || contract.contains(route));
        assert_eq!(documented, contract);
    }

    #[test]
    fn the_replica_routes_carry_their_modes_security() {
        let document = json();
        let security = |path: &str| document["paths"][path]["get"]["security"].clone();
        assert_eq!(security("/api/me"), serde_json::json!([{ "bearer": [] }]));
        assert_eq!(security("/sapi/me"), serde_json::json!([{ "cookie": [] }]));
        assert_eq!(security("/api/ping"), Value::Null);
        let unauthorized = &document["paths"]["/api/me"]["get"]["responses"]["401"];
        assert!(unauthorized["headers"]["WWW-Authenticate"].is_object());
        let forbidden = |path: &str| document["paths"][path]["get"]["responses"]["403"].clone();
        let jobs = |prefix: &str| format!("{prefix}/jobs/{{id}}/applicants");
        assert!(forbidden(&jobs("/api"))["headers"]["WWW-Authenticate"].is_object());
        assert!(
            forbidden(&jobs("/sapi"))["headers"]
                .get("WWW-Authenticate")
                .is_none()
        );
        let session = &document["paths"]["/sapi/me"]["get"]["responses"]["401"];
        assert_eq!(
            session["content"]["application/json"]["examples"]["invalid_session"]["value"]["error"],
            "invalid_session"
        );
    }

    #[test]
    fn the_served_document_is_this_document() {
        let served: Value = serde_json::from_str(&SERVED).unwrap();
        assert_eq!(served, json());
    }
}
