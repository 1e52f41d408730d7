//! `verify-cost`: what verifying an access token costs *inside a server*, in CPU per request:
//! the project's own verifier (`auth_core::verify`) against jsonwebtoken's `decode`, and what is
//! left of it with the verified-token cache.
//!
//! A micro-benchmark (one function called in a loop) says little about a server: there the
//! verification shares the CPU with parsing HTTP, routing, the response and the runtime, and a
//! few microseconds either way may vanish in them. So this measures two real servers, each on
//! one tokio worker, at a fixed offered rate (oha `-q`), and reads what each process spent from
//! `/proc/<pid>/stat` (utime + stime, every thread) before and after a run:
//!
//! - **the replica**: the real `api` binary (`target/release/api`, token mode, keys from a JWKS
//!   file, no cache): `/api/ping` (no authentication) and `/api/me` (verifies the token);
//! - **a plain axum server**: this binary again (`verify-cost serve`), with `/ping` and the same
//!   `/me` answer verified two ways: `/me/auth-core` with `auth_core::verify::verify`, and
//!   `/me/jsonwebtoken` with `jsonwebtoken::decode` and a `Validation` for iss, aud, exp and nbf,
//!   plus the header checks jsonwebtoken does not make (typ, crit, jku, x5u, jwk, x5c);
//! - **the replica with `TOKEN_CACHE=on`**: `/api/ping` and `/api/me`, where every request but
//!   the first is a cache hit.
//!
//! The replica's `/api/ping` is also driven without the `Authorization` header, so what merely
//! carrying a token costs (a ~700-byte header through the kernel and hyper) is told apart from
//! what checking it costs.
//!
//! Every route is driven with the same token, in rounds (a route of each kind after the other,
//! round after round, so a change in the machine's load hits them alike); the figures kept are
//! the medians over the rounds. What a verification costs is each authenticated route minus its
//! own server's no-auth route, measured in the same round.
//!
//! ```sh
//! cargo build --release -p api -p loadtest
//! target/release/verify-cost [--rounds 5] [--requests 16000] [--rate 2000]
//! ```

use anyhow::{Context, bail};
use auth_core::claims::{ACCESS_TYP, ACCESS_TYP_LONG, AccessClaims};
use auth_core::keys::{Jwks, KeyBits, SigningKey};
use auth_core::verify::{TokenRules, TrustedKeys};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};
use stack::process::Process;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ISSUER: &str = "http://127.0.0.1:8080";
const AUDIENCE: &str = "authscale-api";
const LEEWAY_SECS: u64 = 30;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        _ => Options::parse(&args).and_then(|options| measure(&options)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verify-cost: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    rounds: usize,
    requests: u64,
    rate: u64,
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut options = Options {
            rounds: 5,
            requests: 16_000,
            rate: 2000,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--rounds" => options.rounds = value.parse()?,
                "--requests" => options.requests = value.parse()?,
                "--rate" => options.rate = value.parse()?,
                other => bail!("unknown option {other:?} (--rounds, --requests, --rate)"),
            }
        }
        Ok(options)
    }
}

/// One route measured: which server, which path, and whether the request carries the token.
struct Route {
    label: &'static str,
    server: usize,
    path: &'static str,
    token: bool,
}

/// The servers, by index in [`Route::server`].
const REPLICA: usize = 0;
const AXUM: usize = 1;
const CACHED_REPLICA: usize = 2;

const ROUTES: [Route; 8] = [
    Route {
        label: "replica /api/ping (no auth), no Authorization header",
        server: REPLICA,
        path: "/api/ping",
        token: false,
    },
    Route {
        label: "replica /api/ping (no auth)",
        server: REPLICA,
        path: "/api/ping",
        token: true,
    },
    Route {
        label: "replica /api/me (auth_core::verify)",
        server: REPLICA,
        path: "/api/me",
        token: true,
    },
    Route {
        label: "axum /ping (no auth)",
        server: AXUM,
        path: "/ping",
        token: true,
    },
    Route {
        label: "axum /me/auth-core",
        server: AXUM,
        path: "/me/auth-core",
        token: true,
    },
    Route {
        label: "axum /me/jsonwebtoken",
        server: AXUM,
        path: "/me/jsonwebtoken",
        token: true,
    },
    Route {
        label: "replica with TOKEN_CACHE=on /api/ping (no auth)",
        server: CACHED_REPLICA,
        path: "/api/ping",
        token: true,
    },
    Route {
        label: "replica with TOKEN_CACHE=on /api/me (a cache hit)",
        server: CACHED_REPLICA,
        path: "/api/me",
        token: true,
    },
];

/// Route indices in [`ROUTES`], for the differences printed at the end.
const PING_BARE: usize = 0;
const PING: usize = 1;
const ME: usize = 2;
const AXUM_PING: usize = 3;
const AXUM_AUTH_CORE: usize = 4;
const AXUM_JSONWEBTOKEN: usize = 5;
const CACHED_PING: usize = 6;
const CACHED_ME: usize = 7;

fn measure(options: &Options) -> anyhow::Result<()> {
    let root = stack::workspace_root();
    let api = root.join("target/release/api");
    anyhow::ensure!(
        api.is_file(),
        "{} is missing: run `cargo build --release -p api -p loadtest` first",
        api.display()
    );
    let oha = oha()?;
    let scratch = tempfile::tempdir()?;
    let key = SigningKey::generate(KeyBits::B2048)?;
    let jwks_path = scratch.path().join("jwks.json");
    let jwks = Jwks {
        keys: vec![key.public_jwk().clone()],
    };
    std::fs::write(&jwks_path, serde_json::to_vec(&jwks)?)?;
    let token = access_token(&key)?;

    let spawn_replica = |name: &str, cache: &str| -> anyhow::Result<(Process, SocketAddr)> {
        let addr = stack::ports::free_addr()?;
        let mut replica = Command::new(&api);
        replica
            .env("API_MODE", "jwt")
            .env("LISTEN_ADDR", addr.to_string())
            .env("JWKS_FILE", &jwks_path)
            .env("ISSUER_URL", ISSUER)
            .env("AUDIENCE", AUDIENCE)
            .env("WORKER_THREADS", "1")
            .env("TOKEN_CACHE", cache);
        let log = scratch.path().join(format!("{name}.log"));
        Ok((Process::spawn(name, replica, &log)?, addr))
    };
    let replica = spawn_replica("api", "off")?;
    let axum_addr = stack::ports::free_addr()?;
    let mut plain = Command::new(std::env::current_exe()?);
    plain
        .arg("serve")
        .arg(axum_addr.to_string())
        .arg(&jwks_path);
    let plain = Process::spawn("axum", plain, &scratch.path().join("axum.log"))?;
    let cached = spawn_replica("api-cached", "on")?;

    // In the order of REPLICA, AXUM, CACHED_REPLICA.
    let servers = [replica, (plain, axum_addr), cached];
    for (process, addr) in &servers {
        wait_ready(&format!("http://{addr}"), process)?;
    }
    let url = |route: &Route| format!("http://{}{}", servers[route.server].1, route.path);
    let auth = format!("authorization: Bearer {token}");
    let header = |route: &Route| route.token.then_some(auth.as_str());

    println!(
        "verify-cost: {} rounds of {} requests per route at {} requests/s offered, one tokio \
         worker per server; CPU from /proc/<pid>/stat; {}",
        options.rounds,
        options.requests,
        options.rate,
        machine_load()
    );
    // Warm both servers up (connections, allocator, caches) before anything counts.
    for route in &ROUTES {
        drive(
            &oha,
            &url(route),
            header(route),
            options.requests / 8,
            options.rate,
        )?;
    }
    let ticks = clock_ticks()?;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); ROUTES.len()];
    for round in 1..=options.rounds {
        let mut line = format!("round {round}:");
        for (i, route) in ROUTES.iter().enumerate() {
            let pid = servers[route.server].0.pid();
            let before = cpu_ticks(pid)?;
            let answered = drive(
                &oha,
                &url(route),
                header(route),
                options.requests,
                options.rate,
            )?;
            let spent = cpu_ticks(pid)? - before;
            let micros = spent as f64 * 1e6 / ticks as f64 / answered as f64;
            samples[i].push(micros);
            line.push_str(&format!(" {i}:{}={micros:.1}", route.path));
        }
        println!("{line}");
    }

    let medians: Vec<f64> = samples.iter().map(|s| median(s)).collect();
    println!(
        "\n| route | CPU µs per request (median of {}) |",
        options.rounds
    );
    println!("| --- | --- |");
    for (route, m) in ROUTES.iter().zip(&medians) {
        println!("| {} | {m:.1} |", route.label);
    }
    let delta = |auth: usize, base: usize| -> f64 {
        // The verification's cost in each round, then the median: the round's own baseline.
        let per_round: Vec<f64> = samples[auth]
            .iter()
            .zip(&samples[base])
            .map(|(a, b)| a - b)
            .collect();
        median(&per_round)
    };
    println!(
        "\nwhat each step costs (one route minus another, same round; the median of the rounds' differences):"
    );
    println!(
        "  carrying the token, unread (replica /api/ping with the header minus without): {:.1} µs",
        delta(PING, PING_BARE)
    );
    println!(
        "  replica, auth_core::verify (/api/me minus /api/ping):    {:.1} µs",
        delta(ME, PING)
    );
    println!(
        "  replica, a verified-token cache hit (/api/me minus /api/ping, TOKEN_CACHE=on): {:.1} µs",
        delta(CACHED_ME, CACHED_PING)
    );
    println!(
        "  axum, auth_core::verify:       {:.1} µs",
        delta(AXUM_AUTH_CORE, AXUM_PING)
    );
    println!(
        "  axum, jsonwebtoken::decode:    {:.1} µs",
        delta(AXUM_JSONWEBTOKEN, AXUM_PING)
    );
    println!(
        "  jsonwebtoken minus auth_core, same server and round: {:.1} µs (median; rounds: {})",
        delta(AXUM_JSONWEBTOKEN, AXUM_AUTH_CORE),
        samples[AXUM_JSONWEBTOKEN]
            .iter()
            .zip(&samples[AXUM_AUTH_CORE])
            .map(|(a, b)| format!("{:.1}", a - b))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let spread = |i: usize| {
        let s = &samples[i];
        let (lo, hi) = s
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        hi - lo
    };
    println!(
        "  spread of the rounds (max - min): {}",
        ROUTES
            .iter()
            .enumerate()
            .map(|(i, r)| format!("{} {:.1}", r.path, spread(i)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{}", machine_load());
    Ok(())
}

/// An access token as the issuer makes them, valid for an hour.
fn access_token(key: &SigningKey) -> anyhow::Result<String> {
    let now = auth_core::now_secs();
    let claims = AccessClaims {
        iss: ISSUER.into(),
        sub: "alice".into(),
        aud: AUDIENCE.into(),
        exp: now + 3600,
        iat: now,
        nbf: now,
        jti: "verify-cost".into(),
        client_id: "authscale-demo".into(),
        name: "Alice".into(),
        roles: vec!["user".into()],
    };
    auth_core::sign::sign_jwt(key, ACCESS_TYP, &claims).map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// `oha -n N -q RATE -c 4`, with the `Authorization` header when given; the number of answers,
/// all of which must be 200.
fn drive(
    oha: &Path,
    url: &str,
    auth: Option<&str>,
    requests: u64,
    rate: u64,
) -> anyhow::Result<u64> {
    let mut command = Command::new(oha);
    command
        .args([
            "-n",
            &requests.to_string(),
            "-q",
            &rate.to_string(),
            "-c",
            "4",
        ])
        .args(["--no-tui", "--output-format", "json"]);
    if let Some(auth) = auth {
        command.args(["-H", auth]);
    }
    let output = command.arg(url).output().context("cannot run oha")?;
    anyhow::ensure!(output.status.success(), "oha failed on {url}");
    let json: Value = serde_json::from_slice(&output.stdout).context("oha's JSON")?;
    let statuses = json["statusCodeDistribution"]
        .as_object()
        .context("no status codes in oha's JSON")?;
    let answered: u64 = statuses.values().filter_map(Value::as_u64).sum();
    let ok = statuses.get("200").and_then(Value::as_u64).unwrap_or(0);
    anyhow::ensure!(
        ok == answered && answered > 0,
        "{url}: not every answer was 200: {statuses:?}"
    );
    Ok(answered)
}

/// utime + stime of every thread of `pid`, in clock ticks (fields 14 and 15 of `stat`).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; everything after its closing parenthesis
    // splits cleanly, starting at field 3.
    let rest = stat.rsplit_once(')').context("unreadable stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field =
        |n: usize| -> anyhow::Result<u64> { Ok(fields.get(n - 3).context("short stat")?.parse()?) };
    Ok(field(14)? + field(15)?)
}

fn clock_ticks() -> anyhow::Result<u64> {
    use nix::unistd::{SysconfVar, sysconf};
    let ticks = sysconf(SysconfVar::CLK_TCK)?.context("the system states no CLK_TCK")?;
    Ok(u64::try_from(ticks)?)
}

/// The machine's load average, for the record: other work on it shows in the figures.
fn machine_load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| {
            format!(
                "load average {}",
                l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
            )
        })
        .unwrap_or_default()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn oha() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    ["oha".into(), home.join(".cargo/bin/oha")]
        .into_iter()
        .find(|p: &PathBuf| Command::new(p).arg("--version").output().is_ok())
        .context("oha is not installed: `cargo install oha --locked`")
}

/// Poll `<base>/ping` or `<base>/api/ping` until it answers, for at most a minute.
fn wait_ready(base: &str, process: &Process) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::new();
    runtime.block_on(async {
        while Instant::now() < deadline {
            for path in ["/api/ping", "/ping"] {
                if let Ok(r) = client.get(format!("{base}{path}")).send().await
                    && r.status().is_success()
                {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "{} at {base} not ready within a minute: {}",
            process.name(),
            process.log_tail(20)
        )
    })
}

// ---- the plain axum server -------------------------------------------------------------------

struct Verifiers {
    auth_core: TrustedKeys,
    rules: TokenRules,
    jsonwebtoken: HashMap<String, jsonwebtoken::DecodingKey>,
    validation: jsonwebtoken::Validation,
}

/// `verify-cost serve ADDR JWKS`: the plain server, on one tokio worker.
fn serve(args: &[String]) -> anyhow::Result<()> {
    let [addr, jwks] = args else {
        bail!("usage: verify-cost serve ADDR JWKS_FILE")
    };
    let jwks: Jwks = serde_json::from_slice(&std::fs::read(jwks)?)?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    let verifiers = Arc::new(Verifiers {
        auth_core: TrustedKeys::from_jwks(&jwks),
        rules: TokenRules::access(ISSUER, AUDIENCE, LEEWAY_SECS),
        jsonwebtoken: jwks
            .keys
            .iter()
            .map(|k| {
                let key = jsonwebtoken::DecodingKey::from_rsa_components(&k.n, &k.e)?;
                Ok((k.kid.clone(), key))
            })
            .collect::<anyhow::Result<_>>()?,
        validation,
    });
    let app = Router::new()
        .route("/ping", get(|| async { Json(json!({"pong": true})) }))
        .route("/me/auth-core", get(me_auth_core))
        .route("/me/jsonwebtoken", get(me_jsonwebtoken))
        .with_state(verifiers);
    let addr: std::net::SocketAddr = addr.parse()?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            axum::serve(listener, app).await?;
            Ok(())
        })
}

type Answer = Result<Json<Value>, (StatusCode, String)>;

fn bearer(headers: &HeaderMap) -> Result<&str, (StatusCode, String)> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or((StatusCode::UNAUTHORIZED, "no token".into()))
}

fn answer(claims: AccessClaims) -> Json<Value> {
    Json(json!({"sub": claims.sub, "name": claims.name, "roles": claims.roles, "auth": "jwt"}))
}

async fn me_auth_core(State(v): State<Arc<Verifiers>>, headers: HeaderMap) -> Answer {
    let claims: AccessClaims = auth_core::verify::verify(bearer(&headers)?, &v.auth_core, &v.rules)
        .map_err(|e| (StatusCode::UNAUTHORIZED, e.to_string()))?;
    Ok(answer(claims))
}

async fn me_jsonwebtoken(State(v): State<Arc<Verifiers>>, headers: HeaderMap) -> Answer {
    let refuse = |why: &str| (StatusCode::UNAUTHORIZED, why.to_owned());
    let token = bearer(&headers)?;
    if token.len() > auth_core::verify::MAX_TOKEN_BYTES {
        return Err(refuse("too large"));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| refuse("malformed"))?;
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(ACCESS_TYP) || t.eq_ignore_ascii_case(ACCESS_TYP_LONG)
    });
    if !typ_ok {
        return Err(refuse("typ"));
    }
    if header.crit.is_some()
        || header.jku.is_some()
        || header.x5u.is_some()
        || header.jwk.is_some()
        || header.x5c.is_some()
    {
        return Err(refuse("forbidden header"));
    }
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| v.jsonwebtoken.get(kid))
        .ok_or_else(|| refuse("unknown kid"))?;
    let data = jsonwebtoken::decode::<AccessClaims>(token, key, &v.validation)
        .map_err(|e| refuse(&e.to_string()))?;
    Ok(answer(data.claims))
}
