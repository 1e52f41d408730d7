//! nginx: the one address clients talk to.
//!
//! nginx's configuration lives in `deploy/nginx/nginx.conf.template`, shared with docker compose.
//! It has `{{NAME}}` placeholders for what differs between runs (the listen address, the worker
//! count, the upstream servers, the demo page's directory, the rate limit on the password
//! routes, the read-only `/cluster` locations of [`cluster`], the address of the stub_status
//! server); this module fills them in by plain text replacement, writes the
//! result to `<work_dir>/nginx/nginx.conf` and starts:
//!
//! ```text
//! nginx -p <work_dir>/nginx -c <work_dir>/nginx/nginx.conf -e stderr -g 'daemon off;'
//! ```
//!
//! - `-p` (prefix): the relative paths in the config (pid file, temp dirs) resolve inside the
//!   work dir, so nginx needs no root and leaves nothing in /var.
//! - `-e stderr`: errors during start-up go to stderr (the log file), not /var/log/nginx.
//! - `daemon off`: stay in the foreground as our child, so we can stop it.
//!
//! Ready means: `GET /nginx-health` answers 200.

pub mod cluster;

use crate::process::Process;
use crate::readiness::{http_ok, probe_client, wait_until_ready};
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The template, compiled in: the launcher works from any current directory, and editing the
/// template rebuilds this crate.
pub const TEMPLATE: &str = include_str!("../../../deploy/nginx/nginx.conf.template");

/// What goes into the template.
#[derive(Debug, Clone)]
pub struct NginxConfig {
    pub listen: SocketAddr,
    pub worker_processes: usize,
    pub issuer: Vec<SocketAddr>,
    pub jwt_replicas: Vec<SocketAddr>,
    pub session_replicas: Vec<SocketAddr>,
    /// The demo page's directory (`deploy/web`), served at `/` and `/static/`. Absolute: nginx
    /// would resolve a relative one against its prefix, the work dir.
    pub web_root: PathBuf,
    /// Requests per client address on `/auth/login` and `/auth/session/login`, as nginx writes a
    /// rate: a number, then `r/s` or `r/m` ([`NginxConfig::DEFAULT_LOGIN_RATE`]).
    pub login_rate: String,
    /// Requests above the rate let through at once before nginx answers 429
    /// ([`NginxConfig::DEFAULT_LOGIN_BURST`]).
    pub login_burst: u32,
    /// Where nginx serves its own counters (`GET /stub_status`): not the public address, so no
    /// client reaches them through [`NginxConfig::listen`].
    pub status_listen: SocketAddr,
}

impl NginxConfig {
    /// Far above a person typing a password, far below a script guessing one.
    pub const DEFAULT_LOGIN_RATE: &str = "10r/s";
    /// Room for a page that logs in on both routes, or a few people behind one NAT address.
    pub const DEFAULT_LOGIN_BURST: u32 = 20;
}

/// The template with every placeholder replaced. Fails if a placeholder is left over (the
/// template gained one this code does not know).
pub fn render(template: &str, config: &NginxConfig) -> anyhow::Result<String> {
    let replacements = [
        ("{{LISTEN}}", config.listen.to_string()),
        ("{{WORKER_PROCESSES}}", config.worker_processes.to_string()),
        ("{{ISSUER_SERVERS}}", server_lines(&config.issuer)),
        ("{{API_SERVERS}}", server_lines(&config.jwt_replicas)),
        (
            "{{SESSION_API_SERVERS}}",
            server_lines(&config.session_replicas),
        ),
        ("{{WEB_ROOT}}", web_root(&config.web_root)?),
        ("{{LOGIN_RATE}}", login_rate(&config.login_rate)?),
        ("{{LOGIN_BURST}}", config.login_burst.to_string()),
        (
            "{{CLUSTER_ROUTES}}",
            cluster::cluster_routes(
                &config.issuer,
                &config.jwt_replicas,
                &config.session_replicas,
            ),
        ),
        ("{{STATUS_LISTEN}}", config.status_listen.to_string()),
    ];
    let rendered = replacements
        .iter()
        .fold(template.to_owned(), |text, (placeholder, value)| {
            text.replace(placeholder, value)
        });
    if let Some(start) = rendered.find("{{") {
        let rest = &rendered[start..];
        let placeholder = &rest[..rest.find("}}").map_or(rest.len(), |end| end + 2)];
        bail!("the nginx template has a placeholder the launcher does not fill: {placeholder}");
    }
    Ok(rendered)
}

/// `path` as it can stand between the double quotes of a `root` directive: absolute, UTF-8, and
/// without the characters nginx would read as the end of the string (`"`, `\`) or as a variable
/// (`$`).
fn web_root(path: &Path) -> anyhow::Result<String> {
    let Some(text) = path.to_str() else {
        bail!("the web root {} is not UTF-8", path.display());
    };
    if !path.is_absolute() {
        bail!("the web root must be an absolute path, not {text:?}");
    }
    if let Some(bad) = text.chars().find(|c| matches!(c, '"' | '\\' | '$')) {
        bail!("the web root {text:?} contains {bad:?}, which nginx would misread");
    }
    Ok(text.to_owned())
}

/// Fails unless `rate` is a rate nginx accepts for [`NginxConfig::login_rate`] (`10r/s`,
/// `600r/m`), with a message naming it: `cargo xtask up --login-rate` checks it before building.
pub fn check_login_rate(rate: &str) -> anyhow::Result<()> {
    login_rate(rate).map(drop)
}

/// `rate` if it is a rate nginx accepts (`10r/s`, `600r/m`): checked here, so a typo is an error
/// that names it rather than an nginx that does not start, and nothing else can reach the config.
fn login_rate(rate: &str) -> anyhow::Result<String> {
    let number = rate
        .strip_suffix("r/s")
        .or_else(|| rate.strip_suffix("r/m"))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u32>().ok());
    match number {
        Some(n) if n > 0 => Ok(rate.to_owned()),
        _ => bail!(
            "the login rate must be a number of requests per second or minute, such as 10r/s or 600r/m, not {rate:?}"
        ),
    }
}

/// One `server` line per address, indented to sit inside an `upstream { }` block.
///
/// `max_fails=1 fail_timeout=2s`: after one failed attempt, nginx leaves that server alone for
/// 2 s (a killed replica costs one retried connect, not one per request). With no address at all
/// (a stack with 0 replicas of a kind) the block gets a server marked `down`: nginx refuses an
/// empty upstream, and `down` makes every request there a 502, which is the truth.
pub fn server_lines(addrs: &[SocketAddr]) -> String {
    if addrs.is_empty() {
        return "server 127.0.0.1:1 down;".to_owned();
    }
    addrs
        .iter()
        .map(|addr| format!("server {addr} max_fails=1 fail_timeout=2s;"))
        .collect::<Vec<_>>()
        .join("\n        ")
}

/// Writes the rendered config to `<prefix>/nginx.conf` (creating `prefix`) and returns its path.
pub fn write_config(prefix: &Path, config: &NginxConfig) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(prefix)
        .with_context(|| format!("cannot create {}", prefix.display()))?;
    let path = prefix.join("nginx.conf");
    std::fs::write(&path, render(TEMPLATE, config)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The command line that runs nginx in the foreground with `conf` and `prefix`.
pub fn command(nginx: &Path, prefix: &Path, conf: &Path) -> Command {
    let mut command = Command::new(nginx);
    command
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(conf)
        .args(["-e", "stderr", "-g", "daemon off;"]);
    command
}

/// `nginx -t`: checks a config without starting nginx. The error carries nginx's own message.
pub fn test_config(nginx: &Path, prefix: &Path, conf: &Path) -> anyhow::Result<()> {
    let output = Command::new(nginx)
        .arg("-t")
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(conf)
        .args(["-e", "stderr"])
        .output()
        .with_context(|| format!("cannot run {}", nginx.display()))?;
    if !output.status.success() {
        bail!(
            "nginx -t rejected {}:\n{}",
            conf.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Writes the config into `prefix`, starts nginx and waits until `/nginx-health` answers.
pub async fn start(
    nginx: &Path,
    prefix: &Path,
    config: &NginxConfig,
    log_path: &Path,
    timeout: Duration,
) -> anyhow::Result<Process> {
    start_with(nginx, prefix, config, log_path, timeout, |command| command).await
}

/// [`start`], with the command line passed through `wrap` first (the stack uses it to start
/// nginx inside a cgroup, see [`crate::cgroup`]).
pub async fn start_with(
    nginx: &Path,
    prefix: &Path,
    config: &NginxConfig,
    log_path: &Path,
    timeout: Duration,
    wrap: impl FnOnce(Command) -> Command,
) -> anyhow::Result<Process> {
    let conf = write_config(prefix, config)?;
    let mut process = Process::spawn("nginx", wrap(command(nginx, prefix, &conf)), log_path)?;
    let url = format!("http://{}/nginx-health", config.listen);
    let client = probe_client()?;
    wait_until_ready(&mut process, &format!("GET {url} 200"), timeout, || {
        http_ok(&client, &url)
    })
    .await?;
    Ok(process)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ports, programs};

    fn config(listen: SocketAddr, nothing_listens: SocketAddr) -> NginxConfig {
        NginxConfig {
            listen,
            worker_processes: 1,
            issuer: vec![nothing_listens],
            jwt_replicas: vec![nothing_listens, nothing_listens],
            session_replicas: vec![],
            web_root: PathBuf::from("/srv/web"),
            login_rate: NginxConfig::DEFAULT_LOGIN_RATE.to_owned(),
            login_burst: NginxConfig::DEFAULT_LOGIN_BURST,
            status_listen: ports::free_addr().unwrap(),
        }
    }

    #[test]
    fn renders_every_placeholder() {
        let a: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let text = render(TEMPLATE, &config("127.0.0.1:8080".parse().unwrap(), a)).unwrap();
        assert!(text.contains("listen 127.0.0.1:8080;"));
        assert!(text.contains("server 127.0.0.1:9001 max_fails=1 fail_timeout=2s;"));
        assert!(text.contains("server 127.0.0.1:1 down;"));
        assert!(text.contains(r#"root "/srv/web";"#));
        assert!(!text.contains("{{"));
        let err = render("x {{NEW_THING}} y", &config(a, a))
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("{{NEW_THING}}"), "{err}");
        for bad in ["relative/web", "/srv/$web", "/srv/\"web"] {
            let mut config = config(a, a);
            config.web_root = PathBuf::from(bad);
            assert!(render(TEMPLATE, &config).is_err(), "{bad}");
        }
        for bad in [
            "10",
            "r/s",
            "0r/s",
            "-1r/s",
            "10r/h",
            "1.5r/s",
            "10r/s; evil",
            "",
        ] {
            let mut config = config(a, a);
            config.login_rate = bad.to_owned();
            let err = render(TEMPLATE, &config).unwrap_err().to_string();
            assert!(err.contains("login rate"), "{bad}: {err}");
        }
        let mut custom = config(a, a);
        (custom.login_rate, custom.login_burst) = ("600r/m".to_owned(), 5);
        let text = render(TEMPLATE, &custom).unwrap();
        assert!(text.contains("zone=password_logins:10m rate=600r/m;"));
        assert!(text.contains("limit_req zone=password_logins burst=5 nodelay;"));
    }

    /// The text of the block that opens with `header` (`location /api/ {`), up to its closing
    /// brace at the same indentation.
    fn block<'a>(text: &'a str, header: &str) -> &'a str {
        let start = text
            .find(&format!("        {header}\n"))
            .unwrap_or_else(|| panic!("no {header}"));
        let rest = &text[start..];
        &rest[..rest.find("\n        }").unwrap()]
    }

    /// A per-address limit on the two password routes only, at most two retries and never of a
    /// replica's 503, 3 s a try on a replica, and the issuer's timeouts above its own 10 s.
    #[test]
    fn limits_password_routes_and_retries_at_most_twice() {
        let a: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let text = render(TEMPLATE, &config(a, a)).unwrap();
        let directives = |block: &str| -> Vec<String> {
            block
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let has = |block: &str, line: &str| directives(block).iter().any(|l| l == line);
        assert!(has(
            &text,
            "limit_req_zone $binary_remote_addr zone=password_logins:10m rate=10r/s;"
        ));
        assert!(has(&text, "limit_req_status 429;"));
        assert!(has(&text, "error_page 429 /_errors/429;"));
        let limit = "limit_req zone=password_logins burst=20 nodelay;";
        for route in [
            "location = /auth/login {",
            "location = /auth/session/login {",
        ] {
            let block = block(&text, route);
            assert!(has(block, limit), "{route}");
            assert!(
                has(block, "proxy_next_upstream off;"),
                "{route}: never retried"
            );
            assert!(has(block, "proxy_pass http://issuer;"), "{route}");
        }
        assert_eq!(
            text.matches(limit).count(),
            2,
            "only the two password routes"
        );
        assert!(!block(&text, "location /auth/ {").contains("limit_req"));
        // Nothing that reaches the issuer is ever retried: a refresh sent twice would look like
        // a stolen token's reuse.
        let to_issuer: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("        location "))
            .map(|line| block(&text, line.trim_start()))
            .filter(|block| has(block, "proxy_pass http://issuer;"))
            .collect();
        assert!(to_issuer.len() >= 4, "{} issuer locations", to_issuer.len());
        for block in to_issuer {
            assert!(has(block, "proxy_next_upstream off;"), "{block}");
        }
        let too_many = block(&text, "location = /_errors/429 {");
        assert!(has(too_many, "add_header Retry-After 1 always;"));
        assert!(too_many.contains(r#"'{"error":"too_many_attempts","error_description":"#));

        for route in ["location /api/ {", "location /sapi/ {"] {
            let block = block(&text, route);
            // A replica's 503 is passed on, not retried (and so never marks the replica failed).
            assert!(
                has(block, "proxy_next_upstream error timeout http_502;"),
                "{route}"
            );
            assert!(has(block, "proxy_next_upstream_tries 3;"), "{route}");
            assert!(has(block, "proxy_next_upstream_timeout 7s;"), "{route}");
            // A silent replica (its host died with requests in flight) costs a try, not 15 s.
            assert!(has(block, "proxy_read_timeout 3s;"), "{route}");
        }
        // Every worker sees each replica's requests in flight and failures.
        for group in ["issuer", "api_jwt", "api_session"] {
            let opening = format!("upstream {group} {{\n        zone {group} 64k;\n");
            assert!(text.contains(&opening), "{group}");
        }
        assert!(has(&text, "proxy_read_timeout 15s;"));
        assert!(has(&text, "proxy_send_timeout 15s;"));
    }

    #[test]
    fn nginx_accepts_the_rendered_template() {
        let dir = tempfile::tempdir().unwrap();
        let nginx = programs::nginx().unwrap();
        let listen = ports::free_addr().unwrap();
        let conf = write_config(dir.path(), &config(listen, ports::free_addr().unwrap())).unwrap();
        test_config(&nginx, dir.path(), &conf).unwrap();
    }

    /// The errors nginx produces itself are JSON per the contract (the replicas are not running,
    /// so every proxied request fails in nginx).
    #[tokio::test]
    async fn nginx_answers_its_own_errors_in_json() {
        let dir = tempfile::tempdir().unwrap();
        let nginx = programs::nginx().unwrap();
        let listen = ports::free_addr().unwrap();
        let config = config(listen, ports::free_addr().unwrap());
        let log = dir.path().join("nginx.log");
        let timeout = Duration::from_secs(10);
        let _nginx = start(&nginx, &dir.path().join("nginx"), &config, &log, timeout)
            .await
            .unwrap();
        let client = probe_client().unwrap();
        let base = format!("http://{listen}");

        let expect = async |request: reqwest::RequestBuilder, status: u16, error: &str| {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), status);
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(content_type, "application/json");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], error, "{body}");
            assert!(body["error_description"].is_string(), "{body}");
        };
        expect(client.get(format!("{base}/api/me")), 502, "bad_gateway").await;
        expect(client.get(format!("{base}/sapi/me")), 502, "bad_gateway").await;
        expect(client.get(format!("{base}/elsewhere")), 404, "not_found").await;
        // nginx's counters are on the status address only, never on the public one.
        expect(client.get(format!("{base}/stub_status")), 404, "not_found").await;
        let status_page = format!("http://{}/stub_status", config.status_listen);
        let counters = client.get(status_page).send().await.unwrap();
        assert_eq!(counters.status(), 200);
        let counters = counters.text().await.unwrap();
        assert!(counters.starts_with("Active connections:"), "{counters}");
        let elsewhere = format!("http://{}/api/me", config.status_listen);
        expect(client.get(elsewhere), 404, "not_found").await;
        expect(client.get(format!("{base}/_errors/502")), 404, "not_found").await;
        let big_body = vec![b'x'; 64 * 1024 + 1];
        let post = client.post(format!("{base}/auth/login")).body(big_body);
        expect(post, 413, "payload_too_large").await;
        let huge_header = "a".repeat(13 * 1024);
        let request = client
            .get(format!("{base}/api/me"))
            .bearer_auth(huge_header);
        expect(request, 431, "request_header_fields_too_large").await;
        // nginx refuses TRACE itself: a 405 that names the methods the path takes (RFC 9110).
        for (path, allowed) in [("/auth/login", "POST"), ("/api/me", "GET,HEAD")] {
            let trace = reqwest::Method::TRACE;
            let response = client
                .request(trace.clone(), format!("{base}{path}"))
                .send()
                .await;
            let response = response.unwrap();
            assert_eq!(response.status(), 405, "{path}");
            assert_eq!(response.headers()["allow"], allowed, "{path}");
            expect(
                client.request(trace, format!("{base}{path}")),
                405,
                "method_not_allowed",
            )
            .await;
        }
        // An 8 KiB token passes nginx (and reaches the replica, here: fails to, hence 502).
        let token = "a".repeat(8 * 1024);
        let request = client.get(format!("{base}/api/me")).bearer_auth(token);
        expect(request, 502, "bad_gateway").await;
    }

    /// The password routes share one per-address limit: past the rate and its burst, nginx
    /// answers 429 itself, in the contract's JSON with `Retry-After`; refresh has no such limit.
    /// (No issuer runs, so every request nginx lets through is a 502.)
    #[tokio::test]
    async fn nginx_limits_password_attempts_per_address() {
        let dir = tempfile::tempdir().unwrap();
        let nginx = programs::nginx().unwrap();
        let listen = ports::free_addr().unwrap();
        let mut config = config(listen, ports::free_addr().unwrap());
        // One a minute and a burst of 2: three pass, the fourth within the minute is refused.
        (config.login_rate, config.login_burst) = ("1r/m".to_owned(), 2);
        let log = dir.path().join("nginx.log");
        let timeout = Duration::from_secs(10);
        let _nginx = start(&nginx, &dir.path().join("nginx"), &config, &log, timeout)
            .await
            .unwrap();
        let client = probe_client().unwrap();
        let base = format!("http://{listen}");
        let post = |path: &str| {
            client
                .post(format!("{base}{path}"))
                .header("content-type", "application/json")
                .body(r#"{"username":"alice","password":"guess"}"#)
                .send()
        };

        for route in ["/auth/login", "/auth/session/login", "/auth/login"] {
            assert_eq!(post(route).await.unwrap().status(), 502, "{route} passes");
        }
        for route in ["/auth/login", "/auth/session/login"] {
            let response = post(route).await.unwrap();
            assert_eq!(response.status(), 429, "{route}");
            assert_eq!(response.headers()["retry-after"], "1", "{route}");
            assert_eq!(response.headers()["content-type"], "application/json");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], "too_many_attempts", "{body}");
            assert!(body["error_description"].is_string(), "{body}");
        }
        for _ in 0..10 {
            let status = post("/auth/refresh").await.unwrap().status();
            assert_eq!(status, 502, "refresh is not limited");
        }
    }

    /// `/` is the page's index.html and `/static/` its assets, with their MIME types and the
    /// page's security headers; a missing asset or any other path is still the JSON 404.
    #[tokio::test]
    async fn nginx_serves_the_page_and_its_assets_only() {
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("web");
        std::fs::create_dir_all(web.join("static")).unwrap();
        std::fs::write(web.join("index.html"), "<!doctype html><title>t</title>").unwrap();
        std::fs::write(web.join("static/app.js"), "export {};").unwrap();
        std::fs::write(web.join("static/style.css"), "body{}").unwrap();
        let nginx = programs::nginx().unwrap();
        let listen = ports::free_addr().unwrap();
        let mut config = config(listen, ports::free_addr().unwrap());
        config.web_root = web;
        let log = dir.path().join("nginx.log");
        let timeout = Duration::from_secs(10);
        let _nginx = start(&nginx, &dir.path().join("nginx"), &config, &log, timeout)
            .await
            .unwrap();
        let client = probe_client().unwrap();
        let base = format!("http://{listen}");

        for (path, content_type, body) in [
            (
                "/",
                "text/html; charset=utf-8",
                "<!doctype html><title>t</title>",
            ),
            (
                "/static/app.js",
                "text/javascript; charset=utf-8",
                "export {};",
            ),
            ("/static/style.css", "text/css; charset=utf-8", "body{}"),
        ] {
            let response = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let headers = response.headers().clone();
            let header = |name: &str| headers[name].to_str().unwrap().to_owned();
            assert_eq!(header("content-type"), content_type, "{path}");
            assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
            let csp = header("content-security-policy");
            assert!(csp.starts_with("default-src 'self';"), "{path}: {csp}");
            assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
            assert_eq!(response.text().await.unwrap(), body, "{path}");
        }
        for path in [
            "/static/missing.js",
            "/static/",
            "/index.html",
            "/elsewhere",
        ] {
            let response = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 404, "{path}");
            assert_eq!(
                response.headers()["content-type"],
                "application/json",
                "{path}"
            );
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], "not_found", "{path}: {body}");
        }
    }
}
