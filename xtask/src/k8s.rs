//! `cargo xtask k8s-check`: the Kubernetes manifests in deploy/k8s, checked without a cluster.
//!
//! No Kubernetes API server is reachable here, so nothing is applied. What can be checked
//! offline is checked, for every kustomization in [`KUSTOMIZATIONS`]:
//!
//! 1. **copy**: deploy/k8s and deploy/docker (the base reads the Redis entrypoint from there) are
//!    copied into a temporary directory, and the overlay's secret files, which only exist where
//!    someone made them (they are git-ignored), are written there as placeholders
//!    ([`SECRET_FILES`]). Nothing is written into the repository, and a developer's real key is
//!    never copied.
//! 2. **render**: `kubectl kustomize <dir>`, the exact objects `kubectl apply -k` would send.
//! 3. **schema**: `kubernetes-validate --strict` against the OpenAPI schemas of
//!    [`KUBERNETES_VERSION`] (kubectl's own version), shipped inside that PyPI package. Strict:
//!    a misspelt field (`replica:`) is an error, not silently dropped. Every object must be
//!    reported as passed: an object whose kind has no schema is only a warning to that tool, and
//!    is an error here.
//! 4. **policy**: what a schema cannot say, read from the rendered objects ([`policy_problems`]):
//!    every container has CPU and memory requests and limits, both probes, a read-only root file
//!    system, no privilege escalation and no capabilities; every pod runs as a non-root uid with
//!    the RuntimeDefault seccomp profile; and, in an overlay, every Secret and ConfigMap a pod
//!    names is one the render contains (a reference kustomize failed to rewrite to the hashed
//!    name would leave a pod waiting for a Secret that does not exist).
//! 5. **must fail**: a check that cannot fail proves nothing, so copies of the overlay's render
//!    with a deliberate mistake ([`BREAKAGES`]) must each be refused by step 3.
//!
//! The rendered YAML is turned into JSON for step 4 by Python's PyYAML, which kubernetes-validate
//! depends on: no YAML crate is compiled for one check.
//!
//! `cargo xtask test` runs this ([`run_if_available`]). Without kubectl it is skipped, saying why;
//! without kubernetes-validate too, except in CI (`CI` set), where .ci/run installs it and a
//! skip would pass for a green check.

use anyhow::{Context, bail, ensure};
use serde_json::Value;
use stack::workspace_root;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The kustomizations to check, relative to the workspace root, and whether each is complete
/// (an overlay: every Secret its pods mount is in it) or a base that leaves them to an overlay.
const KUSTOMIZATIONS: [(&str, Completeness); 2] = [
    ("deploy/k8s/base", Completeness::LeavesSecretsOut),
    ("deploy/k8s/overlays/kind", Completeness::Complete),
];

/// The overlay whose render the deliberate mistakes are made in.
const OVERLAY: &str = "deploy/k8s/overlays/kind";

/// What the kind overlay's secretGenerator reads (git-ignored; the README says how to make
/// them). The check writes placeholders: their content is never parsed by anything it runs.
const SECRET_FILES: [&str; 3] = [
    "deploy/k8s/overlays/kind/secrets/signing-key.pem",
    "deploy/k8s/overlays/kind/secrets/redis-issuer-password",
    "deploy/k8s/overlays/kind/secrets/redis-session-password",
];

/// The directories copied into the scratch directory: the manifests and what they read.
const COPIED: [&str; 2] = ["deploy/k8s", "deploy/docker"];

/// The Kubernetes version the schemas are taken from: the kubectl this project uses (1.32).
const KUBERNETES_VERSION: &str = "1.32.0";

/// Deliberate mistakes: (what it is, text to replace in the overlay's render, replacement).
/// kubernetes-validate must refuse each.
const BREAKAGES: [(&str, &str, &str); 2] = [
    (
        "replicas as a word",
        "\n  replicas: 2\n",
        "\n  replicas: two\n",
    ),
    (
        "a misspelt field (only --strict catches it)",
        "\n  replicas: 2\n",
        "\n  replica: 2\n",
    ),
];

const VALIDATE: &str = "kubernetes-validate";
const VALIDATE_INSTALL: &str = "pip install kubernetes-validate";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Completeness {
    Complete,
    LeavesSecretsOut,
}

/// `cargo xtask k8s-check`: a missing tool is an error, as for the other explicit commands.
pub fn k8s_check() -> anyhow::Result<()> {
    if let Some(reason) = missing_tool() {
        bail!("cannot check the Kubernetes manifests: {reason}");
    }
    run()
}

/// For `cargo xtask test`: the check, or a line saying why it is skipped. In CI a missing
/// kubernetes-validate is an error (.ci/run installs it); a missing kubectl is not, because
/// no package registry CI reaches ships a recent one (Debian's kubernetes-client is 1.20).
pub fn run_if_available() -> anyhow::Result<()> {
    if !on_path("kubectl") {
        eprintln!("k8s check SKIPPED: kubectl is not installed (it renders the kustomizations)");
        return Ok(());
    }
    if let Some(reason) = missing_tool() {
        if std::env::var_os("CI").is_some() {
            bail!("the k8s check cannot run in CI: {reason}");
        }
        eprintln!("k8s check SKIPPED: {reason}");
        return Ok(());
    }
    run()
}

/// Why the check cannot run, or `None` when it can.
fn missing_tool() -> Option<String> {
    if !on_path("kubectl") {
        return Some("kubectl is not installed (it renders the kustomizations)".into());
    }
    if !on_path(VALIDATE) {
        return Some(format!(
            "{VALIDATE} is not installed (install with `{VALIDATE_INSTALL}`)"
        ));
    }
    None
}

fn run() -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("authscale-k8s-check.")
        .tempdir()
        .context("cannot make a temporary directory")?;
    let root = scratch.path();
    copy_manifests(&workspace_root(), root)?;

    let mut overlay_render = None;
    for (dir, completeness) in KUSTOMIZATIONS {
        let render = kustomize(&root.join(dir)).with_context(|| format!("rendering {dir}"))?;
        let file = root.join(format!("{}.yaml", dir.replace('/', "_")));
        std::fs::write(&file, &render)?;
        let passed = validate(&file).with_context(|| format!("validating {dir}"))?;
        let documents = document_count(&render);
        ensure!(
            passed == documents,
            "{dir}: {VALIDATE} passed {passed} objects, but the render has {documents}"
        );
        let problems = policy_problems(&objects(&file)?, completeness);
        if !problems.is_empty() {
            bail!(
                "{dir} breaks the project's rules:\n  {}",
                problems.join("\n  ")
            );
        }
        eprintln!(
            "k8s check: {dir}: {passed} objects valid ({VALIDATE} --strict, Kubernetes \
             {KUBERNETES_VERSION}), every pod within the rules"
        );
        if dir == OVERLAY {
            overlay_render = Some(render);
        }
    }

    let render = overlay_render.context("the overlay to break is not among the checked ones")?;
    for (what, from, to) in BREAKAGES {
        let file = root.join("broken.yaml");
        std::fs::write(&file, broken(&render, from, to)?)?;
        ensure!(
            validate(&file).is_err(),
            "{VALIDATE} accepted {OVERLAY} with {what}: the check cannot be trusted"
        );
        eprintln!("k8s check: {OVERLAY} with {what}: refused, as it must be");
    }
    eprintln!("k8s check: PASSED (offline: rendered and validated, not applied to a cluster)");
    Ok(())
}

/// Copies [`COPIED`] from `from` to `to`, all but the overlay's secret files, which are
/// written as placeholders instead.
fn copy_manifests(from: &Path, to: &Path) -> anyhow::Result<()> {
    let secrets: Vec<PathBuf> = SECRET_FILES.iter().map(|file| from.join(file)).collect();
    for dir in COPIED {
        copy_tree(&from.join(dir), &to.join(dir), &secrets)
            .with_context(|| format!("copying {dir}"))?;
    }
    for file in SECRET_FILES {
        std::fs::write(
            to.join(file),
            "placeholder written by cargo xtask k8s-check\n",
        )?;
    }
    Ok(())
}

/// Copies the directory `from` to `to`, recursively, leaving out the files in `skip`.
fn copy_tree(from: &Path, to: &Path, skip: &[PathBuf]) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        let target = to.join(path.file_name().context("a directory entry has no name")?);
        if path.is_dir() {
            copy_tree(&path, &target, skip)?;
        } else if !skip.contains(&path) {
            std::fs::copy(&path, &target).with_context(|| format!("copying {}", path.display()))?;
        }
    }
    Ok(())
}

/// `kubectl kustomize DIR`: the rendered objects, as YAML documents.
fn kustomize(dir: &Path) -> anyhow::Result<String> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .context("cannot run kubectl")?;
    let output = succeeded(output, "kubectl kustomize")?;
    String::from_utf8(output.stdout).context("kubectl printed something that is not UTF-8")
}

/// `kubernetes-validate --strict` on the file: how many objects passed. An error when it
/// fails, or prints any warning or error (a kind without a schema is only a warning to it).
fn validate(file: &Path) -> anyhow::Result<usize> {
    let output = Command::new(VALIDATE)
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .arg(file)
        .output()
        .with_context(|| format!("cannot run {VALIDATE}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let complaints: Vec<&str> = stdout
        .lines()
        .filter(|line| !line.starts_with("INFO "))
        .collect();
    if !output.status.success() || !complaints.is_empty() {
        bail!(
            "{VALIDATE} refused it ({}):\n{}{}",
            output.status,
            complaints.join("\n"),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(passed_count(&stdout))
}

/// The objects `kubernetes-validate` reported as passed, from its output.
fn passed_count(output: &str) -> usize {
    output
        .lines()
        .filter(|line| line.starts_with("INFO ") && line.contains(" passed for resource "))
        .count()
}

/// The YAML documents in a render of `kubectl kustomize`, which separates them with `---` lines.
fn document_count(render: &str) -> usize {
    render
        .split("\n---\n")
        .filter(|document| !document.trim().is_empty() && document.trim() != "---")
        .count()
}

/// `render` with the first `from` replaced by `to`; an error if `from` is not there, so a
/// breakage that no longer applies cannot pass unnoticed.
fn broken(render: &str, from: &str, to: &str) -> anyhow::Result<String> {
    ensure!(
        render.contains(from),
        "the render no longer contains {from:?}: update BREAKAGES in xtask/src/k8s.rs"
    );
    Ok(render.replacen(from, to, 1))
}

/// The YAML file's documents as JSON values, through Python's PyYAML.
fn objects(file: &Path) -> anyhow::Result<Vec<Value>> {
    const TO_JSON: &str = "import json, sys, yaml\n\
        docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]\n\
        json.dump(docs, sys.stdout)";
    let output = Command::new("python3")
        .args(["-c", TO_JSON])
        .arg(file)
        .output()
        .context("cannot run python3 (PyYAML reads the render)")?;
    let output = succeeded(
        output,
        "python3 with PyYAML (installed with kubernetes-validate)",
    )?;
    serde_json::from_slice(&output.stdout).context("python3 printed something that is not JSON")
}

/// Everything about the rendered objects that breaks the project's rules, one line each.
fn policy_problems(objects: &[Value], completeness: Completeness) -> Vec<String> {
    let mut problems = Vec::new();
    for object in objects {
        let Some(pod) = pod_spec(object) else {
            continue;
        };
        let name = format!(
            "{}/{}",
            text(object, "/kind").to_lowercase(),
            text(object, "/metadata/name")
        );
        problems.extend(
            pod_problems(pod)
                .into_iter()
                .map(|problem| format!("{name}: {problem}")),
        );
        if completeness == Completeness::Complete {
            for (kind, missing) in missing_references(pod, objects) {
                problems.push(format!(
                    "{name}: names {kind} {missing:?}, which is not in it"
                ));
            }
        }
    }
    problems
}

/// The pod template of a Deployment, StatefulSet, DaemonSet or Job.
fn pod_spec(object: &Value) -> Option<&Value> {
    object.pointer("/spec/template/spec")
}

fn pod_problems(pod: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut require = |ok: bool, problem: String| {
        if !ok {
            problems.push(problem);
        }
    };
    require(
        pod.pointer("/securityContext/runAsNonRoot") == Some(&Value::Bool(true)),
        "the pod does not set runAsNonRoot: true".into(),
    );
    require(
        pod.pointer("/securityContext/runAsUser")
            .and_then(Value::as_u64)
            .is_some_and(|uid| uid > 0),
        "the pod sets no non-zero runAsUser".into(),
    );
    require(
        text(pod, "/securityContext/seccompProfile/type") == "RuntimeDefault",
        "the pod's seccompProfile is not RuntimeDefault".into(),
    );
    let containers = pod
        .get("initContainers")
        .into_iter()
        .chain(pod.get("containers"))
        .filter_map(Value::as_array)
        .flatten();
    for container in containers {
        let name = text(container, "/name");
        for resource in [
            "requests/cpu",
            "requests/memory",
            "limits/cpu",
            "limits/memory",
        ] {
            require(
                container
                    .pointer(&format!("/resources/{resource}"))
                    .is_some(),
                format!("container {name} has no {}", resource.replace('/', " ")),
            );
        }
        for probe in ["readinessProbe", "livenessProbe"] {
            require(
                container.get(probe).is_some(),
                format!("container {name} has no {probe}"),
            );
        }
        let security = |field: &str| container.pointer(&format!("/securityContext/{field}"));
        require(
            security("readOnlyRootFilesystem") == Some(&Value::Bool(true)),
            format!("container {name} does not set readOnlyRootFilesystem: true"),
        );
        require(
            security("allowPrivilegeEscalation") == Some(&Value::Bool(false)),
            format!("container {name} does not set allowPrivilegeEscalation: false"),
        );
        require(
            security("capabilities/drop")
                .and_then(Value::as_array)
                .is_some_and(|drop| drop.contains(&Value::from("ALL"))),
            format!("container {name} does not drop ALL capabilities"),
        );
    }
    problems
}

/// The Secrets and ConfigMaps the pod names (volumes, envFrom, env) that are not among
/// `objects`, as (kind, name).
fn missing_references(pod: &Value, objects: &[Value]) -> Vec<(&'static str, String)> {
    let exists = |kind: &str, name: &str| {
        objects
            .iter()
            .any(|object| text(object, "/kind") == kind && text(object, "/metadata/name") == name)
    };
    let mut named = Vec::new();
    for volume in pod
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        // An optional Secret (the key rotation's next and previous keys) may well not exist.
        if volume.pointer("/secret/optional") != Some(&Value::Bool(true)) {
            named.push(("Secret", text(volume, "/secret/secretName")));
        }
        named.push(("ConfigMap", text(volume, "/configMap/name")));
    }
    let containers = pod
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for container in containers {
        for source in container
            .get("envFrom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            named.push(("Secret", text(source, "/secretRef/name")));
            named.push(("ConfigMap", text(source, "/configMapRef/name")));
        }
        for var in container
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            named.push(("Secret", text(var, "/valueFrom/secretKeyRef/name")));
            named.push(("ConfigMap", text(var, "/valueFrom/configMapKeyRef/name")));
        }
    }
    named
        .into_iter()
        .filter(|(kind, name)| !name.is_empty() && !exists(kind, name))
        .map(|(kind, name)| (kind, name.to_owned()))
        .collect()
}

/// The string at `pointer`, or "" when there is none.
fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Whether `program` is an executable file in a directory of PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
    })
}

/// `output` if its command succeeded, otherwise an error with what it printed on stderr.
fn succeeded(output: Output, what: &str) -> anyhow::Result<Output> {
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(path: &str) -> String {
        std::fs::read_to_string(workspace_root().join(path)).unwrap()
    }

    /// A pod template that keeps every rule, with one container.
    fn good_deployment() -> Value {
        json!({
            "kind": "Deployment",
            "metadata": { "name": "api" },
            "spec": { "template": { "spec": {
                "securityContext": {
                    "runAsNonRoot": true,
                    "runAsUser": 10001,
                    "seccompProfile": { "type": "RuntimeDefault" }
                },
                "containers": [{
                    "name": "api",
                    "envFrom": [{ "configMapRef": { "name": "settings-abc" } }],
                    "resources": {
                        "requests": { "cpu": "100m", "memory": "64Mi" },
                        "limits": { "cpu": "500m", "memory": "128Mi" }
                    },
                    "readinessProbe": { "httpGet": { "path": "/readyz", "port": 8080 } },
                    "livenessProbe": { "httpGet": { "path": "/healthz", "port": 8080 } },
                    "securityContext": {
                        "readOnlyRootFilesystem": true,
                        "allowPrivilegeEscalation": false,
                        "capabilities": { "drop": ["ALL"] }
                    }
                }],
                "volumes": [{ "name": "key", "secret": { "secretName": "key-abc" } }]
            }}}
        })
    }

    fn with_objects(deployment: Value) -> Vec<Value> {
        vec![
            deployment,
            json!({ "kind": "ConfigMap", "metadata": { "name": "settings-abc" } }),
            json!({ "kind": "Secret", "metadata": { "name": "key-abc" } }),
        ]
    }

    #[test]
    fn a_pod_within_the_rules_has_no_problems() {
        let objects = with_objects(good_deployment());
        assert_eq!(
            policy_problems(&objects, Completeness::Complete),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_broken_rule_is_named() {
        let mut deployment = good_deployment();
        let pod = deployment.pointer_mut("/spec/template/spec").unwrap();
        pod["securityContext"]["runAsUser"] = json!(0);
        let container = &mut pod["containers"][0];
        container["resources"]["limits"]
            .as_object_mut()
            .unwrap()
            .remove("memory");
        container.as_object_mut().unwrap().remove("livenessProbe");
        container["securityContext"]["readOnlyRootFilesystem"] = json!(false);
        container["securityContext"]["capabilities"]["drop"] = json!(["NET_RAW"]);
        let problems = policy_problems(&with_objects(deployment), Completeness::Complete);
        assert_eq!(
            problems,
            [
                "deployment/api: the pod sets no non-zero runAsUser",
                "deployment/api: container api has no limits memory",
                "deployment/api: container api has no livenessProbe",
                "deployment/api: container api does not set readOnlyRootFilesystem: true",
                "deployment/api: container api does not drop ALL capabilities",
            ]
        );
    }

    /// The mistake kustomize makes when a generated Secret is in another namespace than its
    /// pods: the reference keeps the unhashed name.
    #[test]
    fn a_reference_to_a_missing_secret_is_named_only_when_the_render_is_complete() {
        let mut deployment = good_deployment();
        deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] = json!("key");
        let objects = with_objects(deployment);
        assert_eq!(
            policy_problems(&objects, Completeness::Complete),
            ["deployment/api: names Secret \"key\", which is not in it"]
        );
        assert!(policy_problems(&objects, Completeness::LeavesSecretsOut).is_empty());
    }

    #[test]
    fn objects_without_a_pod_template_are_not_pods() {
        let service = json!({ "kind": "Service", "metadata": { "name": "api" }, "spec": {} });
        assert!(policy_problems(&[service], Completeness::Complete).is_empty());
    }

    #[test]
    fn documents_and_passes_are_counted() {
        let render = "apiVersion: v1\nkind: A\n---\napiVersion: v1\nkind: B\n---\nkind: C\n";
        assert_eq!(document_count(render), 3);
        assert_eq!(document_count(""), 0);
        let output = "INFO x.yaml passed for resource service/api against version 1.32\n\
                      INFO x.yaml passed for resource deployment/api against version 1.32\n\
                      WARN x.yaml Couldn't find schema for kind Foo\n";
        assert_eq!(passed_count(output), 2);
    }

    #[test]
    fn a_breakage_that_no_longer_applies_is_an_error() {
        assert_eq!(
            broken(
                "spec:\n  replicas: 2\n  x: 1\n",
                "\n  replicas: 2\n",
                "\n  replicas: two\n"
            )
            .unwrap(),
            "spec:\n  replicas: two\n  x: 1\n"
        );
        let error = broken("spec:\n  x: 1\n", "\n  replicas: 2\n", "x").unwrap_err();
        assert!(error.to_string().contains("update BREAKAGES"), "{error}");
    }

    /// The placeholders are written for exactly the files the overlay's secretGenerator reads,
    /// and each is git-ignored.
    #[test]
    fn the_secret_files_are_the_overlays_and_ignored() {
        let kustomization = read(&format!("{OVERLAY}/kustomization.yaml"));
        let read_by_overlay: Vec<String> = kustomization
            .lines()
            .filter_map(|line| line.trim().strip_prefix("- "))
            .filter_map(|entry| entry.split_once("=secrets/"))
            .map(|(_, file)| format!("{OVERLAY}/secrets/{file}"))
            .collect();
        assert_eq!(read_by_overlay, SECRET_FILES);
        let ignored = Command::new("git")
            .arg("check-ignore")
            .args(SECRET_FILES)
            .current_dir(workspace_root())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ignored.stdout).lines().count(),
            SECRET_FILES.len(),
            "every secret file must be git-ignored"
        );
    }

    #[test]
    fn copying_leaves_the_secrets_behind_and_writes_placeholders() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        for dir in COPIED {
            std::fs::create_dir_all(from.path().join(dir)).unwrap();
        }
        std::fs::create_dir_all(from.path().join(OVERLAY).join("secrets")).unwrap();
        std::fs::write(from.path().join(SECRET_FILES[0]), "a real key").unwrap();
        std::fs::write(from.path().join("deploy/k8s/x.yaml"), "kept").unwrap();
        copy_manifests(from.path(), to.path()).unwrap();
        assert_eq!(read_in(to.path(), "deploy/k8s/x.yaml"), "kept");
        for file in SECRET_FILES {
            assert!(
                read_in(to.path(), file).starts_with("placeholder"),
                "{file}"
            );
        }
    }

    fn read_in(dir: &Path, file: &str) -> String {
        std::fs::read_to_string(dir.join(file)).unwrap()
    }
}
