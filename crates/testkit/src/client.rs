//! A typed client for authscale's public HTTP contract (docs/API.md), over one base URL.
//!
//! A route comes in up to two forms, on purpose:
//!
//! - a *request builder* (`login_request`, `refresh_request`, …) that only knows the route's
//!   method, path and body. Tests that check statuses and headers send it and read the raw
//!   [`reqwest::Response`] themselves, because what they test is exactly that response.
//! - a *typed call* (`login`, `refresh`, `me`, …) built on the builder, for tests that only
//!   need the result to go on: a [`Pair`] of tokens, a [`SessionCookie`], a [`Me`]. When the
//!   service says no, the call returns [`Error::Api`] with the contract's JSON error
//!   (`{"error", "error_description"}`) and the status, so a test can assert on the code.
//!   A route has one only when some test needs its result (`logout` has none: every test of
//!   it reads the raw response).
//!
//! The client sets no proxy (an `http_proxy` in the environment must not reroute loopback
//! traffic) and a timeout on every request, so a hung service fails a test instead of hanging
//! it. It follows no redirect: a redirect is something the contract would have to say.

use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// How long any one request may take before the client gives up.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How a request proves who is calling.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    None,
    /// `Authorization: Bearer <access token>`: the token replicas (`/api/…`).
    Bearer(&'a str),
    /// The value of the `sid` cookie: the session replicas (`/sapi/…`).
    Sid(&'a str),
    /// A whole `Cookie` header as given, e.g. the raw `Set-Cookie` value a login returned.
    Cookie(&'a str),
}

/// Why a typed call did not return what it promised.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No HTTP answer at all: refused, reset, closed, timed out.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// An answer in the contract's error shape.
    #[error("{0}")]
    Api(ApiError),
    /// An answer that breaks the contract: a body that is not the promised JSON, a missing
    /// header, a replica id that differs between header and body.
    #[error("contract broken: {0}")]
    Contract(String),
}

/// A refusal as the contract writes it: the status and the JSON `{"error", "error_description"}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {error}: {description}")]
pub struct ApiError {
    pub status: StatusCode,
    /// The machine-readable code (`invalid_grant`, `invalid_token`, …).
    pub error: String,
    pub description: String,
}

/// What login and refresh answer: an access token and a refresh token.
#[derive(Debug, Clone, Deserialize)]
pub struct Pair {
    #[serde(rename = "access_token")]
    pub access: String,
    #[serde(rename = "refresh_token")]
    pub refresh: String,
    pub token_type: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
    /// Seconds the refresh token lives.
    pub refresh_expires_in: u64,
}

impl Pair {
    /// The pair in a token response's JSON body.
    pub fn from_json(body: &Value) -> Result<Pair, Error> {
        Pair::deserialize(body)
            .map_err(|e| Error::Contract(format!("not a token pair ({e}): {body}")))
    }
}

/// A session login's cookie.
#[derive(Debug, Clone)]
pub struct SessionCookie {
    /// The whole `Set-Cookie` value, attributes included.
    pub set_cookie: String,
    /// The `sid` value alone, to send back as [`Auth::Sid`].
    pub sid: String,
}

impl SessionCookie {
    /// Whether the cookie is out of reach of the page's scripts (the contract says it is).
    pub fn http_only(&self) -> bool {
        self.set_cookie
            .split(';')
            .any(|attribute| attribute.trim().eq_ignore_ascii_case("HttpOnly"))
    }
}

/// An authenticated `me` answer.
#[derive(Debug, Clone)]
pub struct Me {
    /// The replica that answered (`X-Replica`, and the same in the body).
    pub replica: String,
    pub body: Value,
}

/// The contract over one base URL (`http://127.0.0.1:8080`, nginx or one service directly).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// A client that keeps connections alive and reuses them, as a browser does.
    pub fn new(base: &str) -> reqwest::Result<Client> {
        Client::with(base, reqwest::Client::builder())
    }

    /// A client that opens a new connection for every request: for checks that must not depend
    /// on how a client copes with a kept-alive connection that the server closes (nginx closes
    /// idle ones when it reloads).
    pub fn fresh_connections(base: &str) -> reqwest::Result<Client> {
        Client::with(base, reqwest::Client::builder().pool_max_idle_per_host(0))
    }

    /// The same base URL with a pool of its own: each simulated client of a [`crate::stream`]
    /// gets one, so a closed connection of one never sends another's request elsewhere.
    pub fn with_own_pool(&self) -> reqwest::Result<Client> {
        Client::new(&self.base)
    }

    /// The same client for another base URL (one replica directly, not through nginx).
    pub fn at(&self, base: &str) -> Client {
        Client {
            http: self.http.clone(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    fn with(base: &str, builder: reqwest::ClientBuilder) -> reqwest::Result<Client> {
        let http = builder
            .no_proxy()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The underlying reqwest client, for requests the contract has no builder for.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str, auth: Auth<'_>) -> RequestBuilder {
        with_auth(self.http.get(self.url(path)), auth)
    }

    pub fn post(&self, path: &str, auth: Auth<'_>) -> RequestBuilder {
        with_auth(self.http.post(self.url(path)), auth)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> RequestBuilder {
        self.post(path, Auth::None).json(body)
    }

    // Request builders: the route, the method and the body, nothing else.

    pub fn login_request(&self, username: &str, password: &str) -> RequestBuilder {
        self.post_json("/auth/login", &credentials(username, password))
    }

    pub fn refresh_request(&self, refresh_token: &str) -> RequestBuilder {
        self.post_json(
            "/auth/refresh",
            &serde_json::json!({ "refresh_token": refresh_token }),
        )
    }

    pub fn logout_request(&self, refresh_token: &str) -> RequestBuilder {
        self.post_json(
            "/auth/logout",
            &serde_json::json!({ "refresh_token": refresh_token }),
        )
    }

    pub fn session_login_request(&self, username: &str, password: &str) -> RequestBuilder {
        self.post_json("/auth/session/login", &credentials(username, password))
    }

    pub fn session_logout_request(&self, auth: Auth<'_>) -> RequestBuilder {
        self.post("/auth/session/logout", auth)
    }

    pub fn jwks_request(&self) -> RequestBuilder {
        self.get("/.well-known/jwks.json", Auth::None)
    }

    // Typed calls.

    /// `POST /auth/login`: a token pair.
    pub async fn login(&self, username: &str, password: &str) -> Result<Pair, Error> {
        let body = expect_json(self.login_request(username, password).send().await?).await?;
        Pair::from_json(&body)
    }

    /// `POST /auth/refresh`: the next pair; the spent token is refused from now on.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Pair, Error> {
        let body = expect_json(self.refresh_request(refresh_token).send().await?).await?;
        Pair::from_json(&body)
    }

    /// `POST /auth/session/login`: the `sid` cookie of a new session.
    pub async fn session_login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<SessionCookie, Error> {
        let response = self
            .session_login_request(username, password)
            .send()
            .await?;
        let set_cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        expect_empty(response).await?;
        let set_cookie =
            set_cookie.ok_or_else(|| Error::Contract("session login without Set-Cookie".into()))?;
        let sid = set_cookie
            .split(';')
            .next()
            .and_then(|pair| pair.trim().strip_prefix("sid="))
            .ok_or_else(|| Error::Contract(format!("Set-Cookie is not sid=…: {set_cookie}")))?
            .to_owned();
        Ok(SessionCookie { set_cookie, sid })
    }

    /// `POST /auth/session/logout`: the session is gone for every replica.
    pub async fn session_logout(&self, auth: Auth<'_>) -> Result<(), Error> {
        expect_empty(self.session_logout_request(auth).send().await?).await
    }

    /// `GET /.well-known/jwks.json`: the public keys.
    pub async fn jwks(&self) -> Result<Value, Error> {
        expect_json(self.jwks_request().send().await?).await
    }

    /// An authenticated `GET` of a `me` route (`/api/me`, `/sapi/me`): which replica answered,
    /// checked to be the same in the `X-Replica` header and in the body.
    pub async fn me(&self, path: &str, auth: Auth<'_>) -> Result<Me, Error> {
        let response = self.get(path, auth).send().await?;
        let header = response
            .headers()
            .get("x-replica")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = expect_json(response).await?;
        let replica = header.ok_or_else(|| Error::Contract(format!("{path} without X-Replica")))?;
        if body["replica"] != replica.as_str() {
            return Err(Error::Contract(format!(
                "X-Replica {replica} but body {body}"
            )));
        }
        Ok(Me { replica, body })
    }

    /// Any `GET`: its status and JSON body (`Null` when the body is not JSON).
    pub async fn get_json(
        &self,
        path: &str,
        auth: Auth<'_>,
    ) -> reqwest::Result<(StatusCode, Value)> {
        let response = self.get(path, auth).send().await?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// Any `GET`: its status alone.
    pub async fn status(&self, path: &str, auth: Auth<'_>) -> reqwest::Result<StatusCode> {
        Ok(self.get(path, auth).send().await?.status())
    }
}

fn credentials(username: &str, password: &str) -> Value {
    serde_json::json!({ "username": username, "password": password })
}

fn with_auth(request: RequestBuilder, auth: Auth<'_>) -> RequestBuilder {
    match auth {
        Auth::None => request,
        Auth::Bearer(token) => request.bearer_auth(token),
        Auth::Sid(sid) => request.header("cookie", format!("sid={sid}")),
        Auth::Cookie(cookie) => request.header("cookie", cookie),
    }
}

/// The error in a refusal's body, as the contract shapes it; [`Error::Contract`] otherwise.
pub async fn error_of(response: Response) -> Error {
    let status = response.status();
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => return Error::Transport(e),
    };
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match (body["error"].as_str(), body["error_description"].as_str()) {
        (Some(error), Some(description)) => Error::Api(ApiError {
            status,
            error: error.to_owned(),
            description: description.to_owned(),
        }),
        _ => Error::Contract(format!("{status} without the error shape: {text}")),
    }
}

/// The JSON body of a 200; the error of anything else.
async fn expect_json(response: Response) -> Result<Value, Error> {
    if response.status() != StatusCode::OK {
        return Err(error_of(response).await);
    }
    let text = response.text().await?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Contract(format!("a 200 that is not JSON ({e}): {text}")))
}

/// Nothing but a 204; the error of anything else.
async fn expect_empty(response: Response) -> Result<(), Error> {
    match response.status() {
        StatusCode::NO_CONTENT => Ok(()),
        _ => Err(error_of(response).await),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_pair_is_read_from_the_contract_s_body() {
        let body = serde_json::json!({
            "access_token": "a", "token_type": "Bearer", "expires_in": 300,
            "refresh_token": "r", "refresh_expires_in": 1209600,
        });
        let pair = Pair::from_json(&body).unwrap();
        assert_eq!((pair.access.as_str(), pair.refresh.as_str()), ("a", "r"));
        let missing = serde_json::json!({ "access_token": "a" });
        assert!(matches!(Pair::from_json(&missing), Err(Error::Contract(_))));
    }

    #[test]
    fn http_only_is_an_attribute_not_a_substring() {
        let cookie = |set_cookie: &str| SessionCookie {
            set_cookie: set_cookie.to_owned(),
            sid: "x".to_owned(),
        };
        assert!(cookie("sid=x; HttpOnly; Path=/").http_only());
        assert!(!cookie("sid=HttpOnly; Path=/").http_only());
    }
}
