//! The Helm chart (`charts/miroir`), checked without a `helm` binary: its CRDs are the
//! repository's, `Chart.yaml` and `values.yaml` have what the templates need, every
//! `.Values.x.y` a template reads exists, template actions are balanced and every `include`
//! is defined, the operator's flags and environment variables are ones the real binary
//! accepts, its RBAC is `config/k8s/operator.yaml`'s, and the MiroirCluster the chart can
//! render from its default values is valid.
//!
//! With `helm` (`MIROIR_HELM`, which `.ci/run` sets, else `helm` on `PATH`), the chart is also
//! rendered for its default values and both examples (`charts/miroir/examples/`): the objects'
//! kinds, names and namespaces; the Deployment runs the image's entrypoint with `operator` and
//! flags the binary accepts, and probes that fit `/ready`'s store check; the rendered CRDs are
//! `crds/` byte for byte; the rendered Role covers every verb on every resource the operator
//! was seen using against the fake API server; and the values the chart refuses (SQLite with
//! several pods) fail. Without helm those checks say so and are skipped (never under `CI`).

#[path = "common/fake_apiserver.rs"]
mod fake_apiserver;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use miroir::controlplane::crd::MiroirCluster;
use miroir::controlplane::desired::build_desired;
use serde::Deserialize;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join("charts/miroir")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// Names of the files in `dir` ending in `.{ext}`, sorted.
fn files_with_ext(dir: &Path, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every template file (`*.yaml`, `*.tpl`, `NOTES.txt`) with its text.
fn templates() -> Vec<(String, String)> {
    let dir = chart().join("templates");
    let mut names = files_with_ext(&dir, "yaml");
    names.extend(files_with_ext(&dir, "tpl"));
    names.extend(files_with_ext(&dir, "txt"));
    assert!(names.len() >= 8, "templates/ looks incomplete: {names:?}");
    names.into_iter().map(|n| (n.clone(), read(&dir.join(&n)))).collect()
}

fn template(name: &str) -> String {
    read(&chart().join("templates").join(name))
}

fn values() -> Value {
    yaml(&chart().join("values.yaml"))
}

/// The value at a dotted path (`a.b.c`), if every step is a mapping key.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |node, key| node.as_object()?.get(key))
}

#[test]
fn chart_crds_are_copies_of_the_repository_crds() {
    let src = root().join("crds");
    let dst = chart().join("crds");
    let fix = "fix: `cp crds/*.yaml charts/miroir/crds/` (and delete files no longer in crds/)";
    assert_eq!(files_with_ext(&dst, "yaml"), files_with_ext(&src, "yaml"), "charts/miroir/crds/ must hold exactly crds/*.yaml; {fix}");
    for name in files_with_ext(&src, "yaml") {
        let (a, b) = (std::fs::read(src.join(&name)).unwrap(), std::fs::read(dst.join(&name)).unwrap());
        assert!(a == b, "charts/miroir/crds/{name} differs from crds/{name}; {fix}");
    }
}

#[test]
fn chart_yaml_has_the_required_fields() {
    let c = yaml(&chart().join("Chart.yaml"));
    assert_eq!(c["apiVersion"], "v2");
    assert_eq!(c["name"], "miroir", "the chart's name is its directory's");
    assert_eq!(c["version"], "0.1.0");
    assert_eq!(
        c["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "appVersion (the default image tag) must be the crate's version in Cargo.toml"
    );
    assert_eq!(c["type"], "application");
}

#[test]
fn values_yaml_has_the_required_keys_and_a_locked_down_pod() {
    let v = values();
    for key in [
        "image.repository",
        "image.tag",
        "image.pullPolicy",
        "replicaCount",
        "cluster.name",
        "cluster.namespace",
        "operator.port",
        "resources",
        "service.type",
        "service.port",
        "podSecurityContext",
        "securityContext",
        "nodeSelector",
        "tolerations",
        "affinity",
        "serviceAccount.create",
        "serviceAccount.name",
        "rbac.create",
        "metrics.podAnnotations",
        "persistence.enabled",
        "persistence.mountPath",
        "taskStore",
        "redis.urlSecret.name",
        "probes.startup.timeoutSeconds",
        "probes.readiness.timeoutSeconds",
        "podDisruptionBudget.enabled",
        "metrics.serviceMonitor.enabled",
        "terminationGracePeriodSeconds",
        "miroirCluster.meilisearch.enabled",
        "miroirCluster.enabled",
        "miroirCluster.spec",
    ] {
        assert!(lookup(&v, key).is_some(), "values.yaml has no `{key}`");
    }
    assert!(!v["cluster"]["name"].as_str().unwrap_or("").is_empty(), "`--cluster` is required: cluster.name needs a default");
    assert_eq!(v["podSecurityContext"]["runAsNonRoot"], true);
    assert_eq!(v["securityContext"]["runAsNonRoot"], true);
    assert_eq!(v["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(v["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(v["securityContext"]["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(v["miroirCluster"]["enabled"], false, "the MiroirCluster is opt-in: its nodes are site-specific");
    assert_eq!(v["replicaCount"], 1, "the default (SQLite on a ReadWriteOnce volume) allows one pod");
}

/// The dotted identifiers after each `.Values.` (also matches `$.Values.`).
fn values_paths(text: &str) -> Vec<String> {
    const MARK: &str = ".Values.";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(MARK) {
        rest = &rest[i + MARK.len()..];
        let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len());
        out.push(rest[..len].trim_end_matches('.').to_string());
        rest = &rest[len..];
    }
    out
}

#[test]
fn values_scanner_reads_dotted_paths() {
    let text = r#"{{ .Values.a.b_c | quote }} {{- with $.Values.d }}{{ (.Values.e.f1).x }} .Values.g."#;
    assert_eq!(values_paths(text), ["a.b_c", "d", "e.f1", "g"]);
    let v = serde_json::json!({"a": {"b_c": 1}, "d": null});
    assert!(lookup(&v, "a.b_c").is_some());
    assert!(lookup(&v, "d").is_some(), "a key set to null exists");
    assert!(lookup(&v, "a.x").is_none());
    assert!(lookup(&v, "a.b_c.z").is_none(), "cannot step into a scalar");
}

#[test]
fn every_values_path_a_template_reads_is_in_values_yaml() {
    let v = values();
    let mut missing = Vec::new();
    let mut seen = 0;
    for (name, text) in templates() {
        for path in values_paths(&text) {
            seen += 1;
            if path.is_empty() || lookup(&v, &path).is_none() {
                missing.push(format!("templates/{name}: .Values.{path}"));
            }
        }
    }
    assert!(seen > 30, "the scanner found only {seen} `.Values.` references");
    assert!(missing.is_empty(), "not defined in values.yaml:\n{}", missing.join("\n"));
}

/// The text of each `{{ ... }}` action, trim markers and spaces removed; comments skipped.
fn actions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        rest = &rest[i + 2..];
        let end = rest.find("}}").expect("an unclosed `{{`");
        let body = rest[..end].trim_start_matches('-').trim_end_matches('-').trim();
        if !body.starts_with("/*") {
            out.push(body.to_string());
        }
        rest = &rest[end + 2..];
    }
    out
}

/// Problems with the nesting of `if`/`with`/`range`/`define`/`block` … `end`.
fn nesting_problems(text: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    for a in actions(text) {
        let word = a.split_whitespace().next().unwrap_or("");
        match word {
            "if" | "with" | "range" | "define" | "block" => stack.push(a.clone()),
            "else" => {
                if !stack.last().is_some_and(|o| !o.starts_with("define") && !o.starts_with("block")) {
                    problems.push(format!("`{a}` outside an if/with/range"));
                }
            }
            "end" => {
                if stack.pop().is_none() {
                    problems.push("`end` without an opening action".into());
                }
            }
            _ => {}
        }
    }
    problems.extend(stack.into_iter().map(|o| format!("`{o}` is never closed by `end`")));
    problems
}

#[test]
fn nesting_check_finds_unbalanced_actions() {
    assert!(nesting_problems("{{- if .a }}x{{- else if .b }}y{{ else }}z{{- end }}{{/* if */}}").is_empty());
    assert_eq!(nesting_problems("{{ if .a }}{{ with .b }}{{ end }}").len(), 1);
    assert_eq!(nesting_problems("{{ end }}").len(), 1);
    assert_eq!(nesting_problems(r#"{{ define "x" }}{{ else }}{{ end }}"#).len(), 1);
}

/// The quoted names after each `word "` (e.g. `include "miroir.labels"`).
fn quoted_after(text: &str, word: &str) -> Vec<String> {
    let mark = format!("{word} \"");
    text.match_indices(&mark)
        .map(|(i, _)| {
            let rest = &text[i + mark.len()..];
            rest[..rest.find('"').expect("an unclosed quote")].to_string()
        })
        .collect()
}

#[test]
fn templates_are_balanced_and_every_include_is_defined() {
    let all = templates();
    let defined: Vec<String> = all.iter().flat_map(|(_, t)| quoted_after(t, "define")).collect();
    for helper in ["miroir.name", "miroir.fullname", "miroir.labels", "miroir.selectorLabels", "miroir.serviceAccountName"] {
        assert!(defined.iter().any(|d| d == helper), "_helpers.tpl defines no `{helper}`");
    }
    let mut problems = Vec::new();
    for (name, text) in &all {
        problems.extend(nesting_problems(text).into_iter().map(|p| format!("templates/{name}: {p}")));
        for inc in quoted_after(text, "include").into_iter().chain(quoted_after(text, "template")) {
            if !defined.contains(&inc) {
                problems.push(format!("templates/{name}: include of undefined `{inc}`"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn operator_help() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_miroir"))
        .args(["operator", "--help"])
        .output()
        .expect("running `miroir operator --help`");
    assert!(out.status.success(), "`miroir operator --help` failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The `--long-flags` in a text.
fn flags(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .match_indices("--")
        .map(|(i, _)| {
            let rest = &text[i + 2..];
            let len = rest.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')).unwrap_or(rest.len());
            format!("--{}", &rest[..len])
        })
        .filter(|f| f.len() > 2)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether `help` documents `flag` as a whole word (`--port` is not `--port-x`).
fn help_has_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        let next = help[i + flag.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

#[test]
fn deployment_uses_only_flags_and_env_vars_the_binary_accepts() {
    let deployment = template("deployment.yaml");
    let help = operator_help();
    let used = flags(&deployment);
    for expected in ["--cluster", "--namespace", "--port", "--lease-ttl-secs", "--lease-renew-secs", "--requeue-secs"] {
        assert!(used.iter().any(|f| f == expected), "deployment.yaml does not pass {expected}: {used:?}");
    }
    let unknown: Vec<&String> = used.iter().filter(|f| !help_has_flag(&help, f)).collect();
    assert!(unknown.is_empty(), "flags in deployment.yaml that `miroir operator` does not accept: {unknown:?}\n{help}");
    assert!(!help_has_flag(&help, "--lease-ttl"), "the whole-word check works");

    // Environment variables: each must be one the operator reads (`[env: X=]` in its help)
    // or the log filter `main.rs` reads.
    let main_rs = read(&root().join("src/main.rs"));
    let env_names: Vec<String> = deployment
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- name: "))
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect();
    assert!(env_names.contains(&"POD_NAME".to_string()), "POD_NAME (`--instance`) comes from the downward API");
    for name in &env_names {
        let known = help.contains(&format!("[env: {name}=")) || main_rs.contains(&format!("\"{name}\""));
        assert!(known, "deployment.yaml sets {name}, which the binary does not read");
    }
    assert!(main_rs.contains("\"MIROIR_LOG\""), "the log filter variable changed: update deployment.yaml");
}

#[test]
fn deployment_probes_port_and_security() {
    let d = template("deployment.yaml");
    for needle in [
        "path: /ready",
        "path: /health",
        "port: http",
        "containerPort: {{ .Values.operator.port }}",
        "- --port\n            - {{ .Values.operator.port | quote }}",
        "toYaml .Values.podSecurityContext",
        "toYaml .Values.securityContext",
        "serviceAccountName: {{ include \"miroir.serviceAccountName\" . }}",
        "mountPath: /tmp",
    ] {
        assert!(d.contains(needle), "deployment.yaml lacks `{needle}`");
    }
    // Helm holds numbers as float64: a large one prints as 1.048576e+08 unless converted.
    assert!(d.contains(".Values.operator.maxBodyBytes | int64"), "--max-body-bytes must go through int64");
    let s = template("service.yaml");
    assert!(s.contains("targetPort: http") && s.contains("include \"miroir.selectorLabels\""));
}

#[test]
fn chart_rbac_matches_the_operator_manifest() {
    let manifest = root().join("config/k8s/operator.yaml");
    let role = yaml_docs(&manifest).into_iter().find(|d| d["kind"] == "Role").expect("operator.yaml has a Role");
    let text = template("role.yaml");
    let start = text.find("\nrules:\n").expect("role.yaml has a literal `rules:` block") + 1;
    let end = text[start..].find("{{").map_or(text.len(), |i| start + i);
    let rules: Value = serde_yaml_ng::from_str(&text[start..end]).expect("the rules block is plain YAML");
    assert_eq!(rules["rules"], role["rules"], "templates/role.yaml must grant what config/k8s/operator.yaml grants");
    assert!(text.contains("kind: Role\n"), "a namespaced Role, as operator.yaml");
    assert!(template("rolebinding.yaml").contains("kind: Role\n"));
}

#[test]
fn default_miroircluster_values_render_a_valid_cluster() {
    let v = values();
    let spec = v["miroirCluster"]["spec"].clone();
    let doc = serde_json::json!({
        "apiVersion": "miroir.io/v1alpha1",
        "kind": "MiroirCluster",
        "metadata": {"name": v["cluster"]["name"], "namespace": "search"},
        "spec": spec,
    });
    let crd = yaml(&chart().join("crds/miroirclusters.miroir.io.yaml"));
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let validator = jsonschema::validator_for(schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "miroirCluster.spec fails the CRD schema: {errors:?}");
    if let Err(e) = kube_cel::Validator::new().validate(schema, &doc, None) {
        let e: Vec<String> = e.into_vec().into_iter().map(|e| e.to_string()).collect();
        panic!("miroirCluster.spec fails the CRD's CEL rules: {e:?}");
    }
    let mut doc = doc;
    // What templates/miroircluster.yaml adds: the task store from `taskStore`.
    assert_eq!(v["taskStore"], "sqlite");
    assert!(spec.get("taskStore").is_none(), "spec.taskStore is rendered from the `taskStore` value");
    let sqlite = format!("{}/miroir.db", v["persistence"]["mountPath"].as_str().unwrap().trim_end_matches('/'));
    doc["spec"]["taskStore"] = serde_json::json!({"sqlite": {"path": sqlite}});
    let mc: MiroirCluster = serde_json::from_value(doc).expect("miroirCluster.spec is a MiroirCluster spec");
    if let Err(e) = build_desired(&mc.spec, None) {
        panic!("the operator rejects miroirCluster.spec: {e:?}");
    }
    // One node down: with RF in one group, floor(RF/2)+1 of RF must remain; with several
    // groups, another group holds every shard.
    let rf = mc.spec.replication_factor;
    let groups = mc.spec.replica_groups;
    assert!(groups >= 2 || rf - 1 >= rf / 2 + 1, "the default cluster (RF={rf}, {groups} group) does not survive one node loss");
}

// ---------------------------------------------------------------------------------------
// What the operator uses from the Kubernetes API, seen against the fake API server.

/// One permission: API group, resource (with `/subresource`), verb.
type Permission = (String, String, String);

/// The permission a request needs (`GET /apis/miroir.io/v1alpha1/namespaces/x/aliases?watch=true`).
fn permission_of(request: &str) -> Option<Permission> {
    let (method, uri) = request.split_once(' ')?;
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest.to_vec()),
        ["apis", group, _version, rest @ ..] => (group.to_string(), rest.to_vec()),
        _ => return None,
    };
    let rest = match rest.as_slice() {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail.to_vec(),
        other => other.to_vec(),
    };
    let (resource, name, sub) = match rest.as_slice() {
        [r] => (r.to_string(), None, None),
        [r, n] => (r.to_string(), Some(n.to_string()), None),
        [r, n, s] => (r.to_string(), Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    let watch = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, &name) {
        ("GET", Some(_)) => "get",
        ("GET", None) if watch => "watch",
        ("GET", None) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", Some(_)) => "delete",
        ("DELETE", None) => "deletecollection",
        _ => return None,
    };
    let resource = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource,
    };
    Some((group, resource, verb.to_string()))
}

#[test]
fn requests_map_to_permissions() {
    let p = |r: &str| permission_of(r).map(|(g, r, v)| format!("{g}|{r}|{v}"));
    assert_eq!(p("GET /api/v1/namespaces/s/secrets/k").as_deref(), Some("|secrets|get"));
    assert_eq!(p("GET /apis/miroir.io/v1alpha1/namespaces/s/aliases?&watch=true&timeoutSeconds=290").as_deref(), Some("miroir.io|aliases|watch"));
    assert_eq!(p("GET /apis/miroir.io/v1alpha1/namespaces/s/aliases?fieldSelector=x").as_deref(), Some("miroir.io|aliases|list"));
    assert_eq!(p("PATCH /apis/miroir.io/v1alpha1/namespaces/s/miroirclusters/c/status?fieldManager=m").as_deref(), Some("miroir.io|miroirclusters/status|patch"));
    assert_eq!(p("POST /apis/events.k8s.io/v1/namespaces/s/events").as_deref(), Some("events.k8s.io|events|create"));
}

/// Whether RBAC `rules` (a Role's) allow `perm`.
fn allows(rules: &Value, perm: &Permission) -> bool {
    let has = |list: &Value, x: &str| list.as_array().is_some_and(|l| l.iter().any(|v| v == x || v == "*"));
    rules.as_array().is_some_and(|rules| {
        rules.iter().any(|r| has(&r["apiGroups"], &perm.0) && has(&r["resources"], &perm.1) && has(&r["verbs"], &perm.2))
    })
}

fn example(name: &str) -> Value {
    yaml(&root().join("config/k8s").join(name))
}

/// Runs `miroir operator` (in-process, on the fake API server) through what it does in
/// production: waits for the MiroirCluster, reads the key Secret, reconciles the cluster and
/// every mirrored kind to a status, follows a key rotation, lets a deleted Alias and the
/// deleted MiroirCluster go (finalizers); returns every permission it needed.
async fn permissions_the_operator_uses() -> BTreeSet<Permission> {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, DeleteParams, PostParams};
    use miroir::controlplane::crd::{Alias, Canary, RolloverPolicy, Tenant};

    const NS: &str = "rbac";
    let server = fake_apiserver::FakeApiServer::new();
    let client = server.client(NS);
    let dir = tempfile::tempdir().unwrap();
    let node = {
        let app = axum::Router::new()
            .route("/health", axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "available"})) }))
            .route("/tasks", axum::routing::get(|| async { axum::Json(serde_json::json!({"results": [], "total": 0})) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    };
    let secret = |value: &str| {
        let mut s = Secret::default();
        s.metadata.name = Some("miroir-keys".into());
        s.data = Some([("master-key".to_string(), k8s_openapi::ByteString(value.as_bytes().to_vec()))].into());
        s
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    secrets.create(&PostParams::default(), &secret("first-master-key")).await.unwrap();
    let mut mc = example("miroircluster.yaml");
    mc["metadata"]["name"] = "search".into();
    mc["spec"]["nodes"] = serde_json::json!([{"id": "a", "address": node}]);
    mc["spec"]["replicationFactor"] = 1.into();
    mc["spec"]["shards"] = 4.into();
    mc["spec"]["taskStore"] = serde_json::json!({"sqlite": {"path": dir.path().join("s.db").to_str().unwrap()}});
    mc["spec"]["keys"] = serde_json::json!({"masterKey": {"name": "miroir-keys", "key": "master-key"}});
    mc["spec"]["health"] = serde_json::json!({"intervalMs": 100, "timeoutMs": 2000});
    let clusters: Api<MiroirCluster> = Api::namespaced(client.clone(), NS);
    clusters.create(&PostParams::default(), &serde_json::from_value(mc).unwrap()).await.unwrap();
    macro_rules! create_examples {
        ($kind:ty, $file:literal) => {{
            let api: Api<$kind> = Api::namespaced(client.clone(), NS);
            for mut doc in yaml_docs(&root().join("config/k8s").join($file)) {
                // The examples name two clusters; this operator serves `search`.
                doc["spec"]["cluster"] = "search".into();
                api.create(&PostParams::default(), &serde_json::from_value(doc).unwrap()).await.unwrap();
            }
        }};
    }
    create_examples!(Alias, "alias.yaml");
    create_examples!(Tenant, "tenant.yaml");
    create_examples!(Canary, "canary.yaml");
    create_examples!(RolloverPolicy, "rolloverpolicy.yaml");

    let args = miroir::controlplane::cli::OperatorArgs {
        cluster: "search".into(),
        namespace: Some(NS.into()),
        instance: Some("pod-rbac".into()),
        bind: "127.0.0.1".into(),
        port: 0,
        max_body_bytes: 1 << 20,
        lease_ttl_secs: 3,
        lease_renew_secs: 1,
        requeue_secs: 1,
        secret_refresh_secs: 1,
        shutdown_delay_secs: 0,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(miroir::controlplane::cli::serve_operator(client.clone(), args, listener, async {
        let _ = stopped.await;
    }));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let wait = |what: &'static str, ok: &dyn Fn() -> bool| {
        if tokio::time::Instant::now() >= deadline {
            let statuses: Vec<String> = ["miroirclusters", "aliases", "tenants", "canaries", "rolloverpolicies"]
                .iter()
                .map(|p| format!("{p}: {:?}", server.requests().iter().filter(|r| r.contains(p)).count()))
                .collect();
            let mc = server.object("miroir.io/v1alpha1", "miroirclusters", NS, "search");
            panic!("timed out waiting for: {what}; requests by kind {statuses:?}; MiroirCluster: {mc:#?}");
        }
        !ok()
    };
    let status_of = |plural: &str, name: &str| server.object("miroir.io/v1alpha1", plural, NS, name).map(|o| o["status"].clone()).unwrap_or(Value::Null);
    let condition = |reason: &str| {
        status_of("miroirclusters", "search")["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["reason"] == reason))
    };
    while wait("the MiroirCluster and every mirrored kind to get a status", &|| {
        status_of("miroirclusters", "search")["phase"] == "Ready"
            && ["aliases", "tenants", "canaries", "rolloverpolicies"].iter().all(|plural| {
                let docs = yaml_docs(&root().join("config/k8s").join(match *plural {
                    "aliases" => "alias.yaml",
                    "tenants" => "tenant.yaml",
                    "canaries" => "canary.yaml",
                    _ => "rolloverpolicy.yaml",
                }));
                docs.iter().all(|d| !status_of(plural, d["metadata"]["name"].as_str().unwrap()).is_null())
            })
    }) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    secrets.replace("miroir-keys", &PostParams::default(), &secret("second-master-key")).await.unwrap();
    while wait("the key rotation", &|| condition("KeysRotated")) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let aliases: Api<Alias> = Api::namespaced(client.clone(), NS);
    let alias = yaml_docs(&root().join("config/k8s/alias.yaml"))[0]["metadata"]["name"].as_str().unwrap().to_string();
    aliases.delete(&alias, &DeleteParams::default()).await.unwrap();
    clusters.delete("search", &DeleteParams::default()).await.unwrap();
    while wait("the deleted objects to go (finalizers released)", &|| {
        server.object("miroir.io/v1alpha1", "miroirclusters", NS, "search").is_none()
            && server.object("miroir.io/v1alpha1", "aliases", NS, &alias).is_none()
    }) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    // The test's own requests (creating, replacing and deleting objects as a user would) are
    // recorded too: drop one matching request per action, the rest is the operator's.
    let mut requests = server.requests();
    let path_of = |r: &str| r.split_once(' ').map(|(m, u)| (m.to_string(), u.split('?').next().unwrap().to_string()));
    let mut own: Vec<(String, String)> = vec![
        ("POST".into(), format!("/api/v1/namespaces/{NS}/secrets")),
        ("PUT".into(), format!("/api/v1/namespaces/{NS}/secrets/miroir-keys")),
        ("POST".into(), format!("/apis/miroir.io/v1alpha1/namespaces/{NS}/miroirclusters")),
        ("DELETE".into(), format!("/apis/miroir.io/v1alpha1/namespaces/{NS}/miroirclusters/search")),
        ("DELETE".into(), format!("/apis/miroir.io/v1alpha1/namespaces/{NS}/aliases/{alias}")),
    ];
    for (plural, file) in [("aliases", "alias.yaml"), ("tenants", "tenant.yaml"), ("canaries", "canary.yaml"), ("rolloverpolicies", "rolloverpolicy.yaml")] {
        for _ in yaml_docs(&root().join("config/k8s").join(file)) {
            own.push(("POST".into(), format!("/apis/miroir.io/v1alpha1/namespaces/{NS}/{plural}")));
        }
    }
    for action in own {
        let at = requests.iter().position(|r| path_of(r).as_ref() == Some(&action));
        let at = at.unwrap_or_else(|| panic!("the test's own request {action:?} was not recorded"));
        requests.remove(at);
    }
    let used: BTreeSet<Permission> = requests.iter().filter_map(|r| permission_of(r)).collect();
    assert!(used.len() >= 10, "too few permissions seen: {used:?}");
    used
}

/// The `rules:` of templates/role.yaml (a literal block).
fn role_template_rules() -> Value {
    let text = template("role.yaml");
    let start = text.find("\nrules:\n").expect("role.yaml has a literal `rules:` block") + 1;
    let end = text[start..].find("{{").map_or(text.len(), |i| start + i);
    let rules: Value = serde_yaml_ng::from_str(&text[start..end]).expect("the rules block is plain YAML");
    rules["rules"].clone()
}

#[tokio::test]
async fn the_role_grants_every_permission_the_operator_uses() {
    let used = permissions_the_operator_uses().await;
    let rules = role_template_rules();
    let missing: Vec<&Permission> = used.iter().filter(|p| !allows(&rules, p)).collect();
    assert!(missing.is_empty(), "templates/role.yaml (and config/k8s/operator.yaml) lack: {missing:?}");
    // Every kind the operator's code opens an `Api` on is in the Role (a kind added to the
    // code without a rule fails here, even if the scenario above does not exercise it).
    let mut named = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("src/controlplane")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = read(&path);
            for (i, _) in text.match_indices("Api<") {
                let rest = &text[i + 4..];
                let ty = &rest[..rest.find('>').unwrap()];
                if ty.len() > 1 {
                    named.insert((ty.to_string(), "get"));
                }
            }
            // Owned objects written with server-side apply through the generic helper.
            for (i, _) in text.match_indices("apply_object::<") {
                let rest = &text[i + 15..];
                named.insert((rest[..rest.find('>').unwrap()].to_string(), "patch"));
            }
            if text.contains("apply_object(") && text.contains("StatefulSet") {
                named.insert(("StatefulSet".to_string(), "patch"));
            }
        }
    }
    for (ty, verb) in named {
        let (group, resource) = match ty.as_str() {
            "MiroirCluster" => ("miroir.io", "miroirclusters"),
            "Alias" => ("miroir.io", "aliases"),
            "Tenant" => ("miroir.io", "tenants"),
            "Canary" => ("miroir.io", "canaries"),
            "RolloverPolicy" => ("miroir.io", "rolloverpolicies"),
            "K8sSecret" | "Secret" => ("", "secrets"),
            "StatefulSet" => ("apps", "statefulsets"),
            "Service" => ("", "services"),
            "PodDisruptionBudget" => ("policy", "poddisruptionbudgets"),
            other => panic!("src/controlplane opens an Api<{other}>: add its group/resource here and the verbs it uses to templates/role.yaml and config/k8s/operator.yaml"),
        };
        assert!(allows(&rules, &(group.into(), resource.into(), "get".into())), "the Role cannot even get {group}/{resource}");
        assert!(allows(&rules, &(group.into(), resource.into(), verb.into())), "the Role cannot {verb} {group}/{resource}");
    }
}

// ---------------------------------------------------------------------------------------
// Rendered with helm.

/// `helm`: `MIROIR_HELM`, else on `PATH`. `None` (with a clear message) when neither; under
/// `CI` that is a failure: `.ci/run` installs helm and sets `MIROIR_HELM`.
fn helm() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MIROIR_HELM").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "MIROIR_HELM={} is not a file", p.display());
        return Some(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("helm")).find(|p| p.is_file()));
    if on_path.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must render the chart: .ci/run sets MIROIR_HELM");
        eprintln!("SKIPPED the helm-rendering checks of tests/chart.rs: set MIROIR_HELM=/path/to/helm or put `helm` on PATH (.ci/run installs it)");
    }
    on_path
}

const RELEASE: &str = "miroir";
const RELEASE_NS: &str = "ns-under-test";

fn helm_run(helm: &Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(helm).args(args).current_dir(root()).output().expect("running helm");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `helm template` with extra arguments: every rendered document.
fn render(helm: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", RELEASE, "charts/miroir", "--namespace", RELEASE_NS];
    args.extend_from_slice(extra);
    let (ok, out, err) = helm_run(helm, &args);
    assert!(ok, "helm {args:?} failed: {err}");
    serde_yaml_ng::Deserializer::from_str(&out).map(|d| Value::deserialize(d).unwrap()).filter(|v| !v.is_null()).collect()
}

fn kinds_and_names(docs: &[Value]) -> BTreeSet<(String, String)> {
    docs.iter().map(|d| (d["kind"].as_str().unwrap().to_string(), d["metadata"]["name"].as_str().unwrap().to_string())).collect()
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items.iter().map(|(k, n)| (k.to_string(), n.to_string())).collect()
}

/// Checks shared by every rendering: namespaces, the Deployment's command, flags, probes.
fn check_rendering(docs: &[Value], what: &str) {
    for d in docs {
        assert_eq!(d["metadata"]["namespace"], RELEASE_NS, "{what}: {} {} is not in the release namespace", d["kind"], d["metadata"]["name"]);
    }
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("a Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert!(c.get("command").is_none(), "{what}: the image's entrypoint (the miroir binary) runs");
    let args: Vec<String> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().expect("string args").to_string()).collect();
    assert_eq!(args[0], "operator", "{what}: {args:?}");
    let help = operator_help();
    let mut i = 1;
    while i < args.len() {
        let flag = &args[i];
        assert!(flag.starts_with("--") && help_has_flag(&help, flag), "{what}: `miroir operator` has no {flag}");
        let value = args.get(i + 1).expect("every flag has a value");
        if flag != "--cluster" && flag != "--namespace" {
            value.parse::<u64>().unwrap_or_else(|_| panic!("{what}: {flag} {value} is not a number"));
        }
        i += 2;
    }
    let arg = |f: &str| args.iter().position(|a| a == f).map(|i| args[i + 1].clone());
    let probe = |name: &str| &c[name];
    assert_eq!(probe("startupProbe")["httpGet"]["path"], "/health", "{what}");
    assert_eq!(probe("livenessProbe")["httpGet"]["path"], "/health", "{what}");
    assert_eq!(probe("readinessProbe")["httpGet"]["path"], "/ready", "{what}");
    let store_check = miroir::http::READY_STORE_TIMEOUT.as_secs();
    let ready_timeout = probe("readinessProbe")["timeoutSeconds"].as_u64().expect("readiness timeoutSeconds");
    assert!(ready_timeout > store_check, "{what}: /ready waits up to {store_check} s for the store; its probe timeout is {ready_timeout} s");
    let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    let delay: u64 = arg("--shutdown-delay-secs").expect("--shutdown-delay-secs").parse().unwrap();
    assert!(grace > delay, "{what}: the grace period ({grace} s) must outlast the shutdown delay ({delay} s)");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    // The Role is the one the operator needs, bound to the pods' ServiceAccount.
    let role = docs.iter().find(|d| d["kind"] == "Role").expect("a Role");
    assert_eq!(role["rules"], role_template_rules(), "{what}");
    let binding = docs.iter().find(|d| d["kind"] == "RoleBinding").unwrap();
    assert_eq!(binding["subjects"][0]["name"], pod["serviceAccountName"], "{what}");
    assert_eq!(binding["subjects"][0]["namespace"], RELEASE_NS, "{what}");
    // A rendered MiroirCluster is the one the pods serve, and is valid.
    if let Some(mc) = docs.iter().find(|d| d["kind"] == "MiroirCluster") {
        assert_eq!(Some(mc["metadata"]["name"].as_str().unwrap().to_string()), arg("--cluster"), "{what}");
        let crd = yaml(&chart().join("crds/miroirclusters.miroir.io.yaml"));
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let validator = jsonschema::validator_for(schema).unwrap();
        let errors: Vec<String> = validator.iter_errors(mc).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{what}: the MiroirCluster fails the CRD schema: {errors:?}");
        let parsed: MiroirCluster = serde_json::from_value(mc.clone()).unwrap();
        if let Err(e) = build_desired(&parsed.spec, None) {
            panic!("{what}: the operator rejects the rendered MiroirCluster: {e:?}");
        }
        let rf = parsed.spec.replication_factor;
        let groups = parsed.spec.replica_groups;
        assert!(groups >= 2 || rf - 1 >= rf / 2 + 1, "{what}: RF={rf} in {groups} group does not survive one node loss");
    }
}

#[test]
fn helm_lint_and_render_default_values_and_examples() {
    let Some(helm) = helm() else { return };
    for extra in [vec![], vec!["-f", "charts/miroir/examples/sqlite-single.yaml"], vec!["-f", "charts/miroir/examples/redis-ha.yaml"]] {
        let mut args = vec!["lint", "charts/miroir", "--strict"];
        args.extend_from_slice(&extra);
        let (ok, out, err) = helm_run(&helm, &args);
        assert!(ok, "helm {args:?}:\n{out}\n{err}");
    }
    let common = [
        ("ServiceAccount", RELEASE),
        ("Role", RELEASE),
        ("RoleBinding", RELEASE),
        ("Service", RELEASE),
        ("Deployment", RELEASE),
        ("PodDisruptionBudget", RELEASE),
    ];
    let default = render(&helm, &[]);
    let mut expected = set(&common);
    expected.insert(("PersistentVolumeClaim".into(), format!("{RELEASE}-state")));
    assert_eq!(kinds_and_names(&default), expected, "default values");
    check_rendering(&default, "default values");

    let sqlite = render(&helm, &["-f", "charts/miroir/examples/sqlite-single.yaml"]);
    let mut expected = set(&common);
    expected.insert(("PersistentVolumeClaim".into(), format!("{RELEASE}-state")));
    expected.insert(("MiroirCluster".into(), "search".into()));
    assert_eq!(kinds_and_names(&sqlite), expected, "examples/sqlite-single.yaml");
    check_rendering(&sqlite, "examples/sqlite-single.yaml");
    let deployment = sqlite.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate", "one pod owns the SQLite file at a time");
    let mc = sqlite.iter().find(|d| d["kind"] == "MiroirCluster").unwrap();
    let path = mc["spec"]["taskStore"]["sqlite"]["path"].as_str().unwrap();
    let mount = &deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0];
    assert!(path.starts_with(&format!("{}/", mount["mountPath"].as_str().unwrap())), "the SQLite file is on the state volume");

    let redis = render(&helm, &["-f", "charts/miroir/examples/redis-ha.yaml"]);
    let mut expected = set(&common);
    expected.insert(("MiroirCluster".into(), "search".into()));
    expected.insert(("ServiceMonitor".into(), RELEASE.into()));
    assert_eq!(kinds_and_names(&redis), expected, "examples/redis-ha.yaml");
    check_rendering(&redis, "examples/redis-ha.yaml");
    let deployment = redis.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() > 1, "several pods");
    let mc = redis.iter().find(|d| d["kind"] == "MiroirCluster").unwrap();
    assert!(mc["spec"]["taskStore"]["redis"].is_object(), "several pods share Redis");

    // The managed Meilisearch nodes (off by default) render under spec.meilisearch.
    let managed = render(&helm, &["--set", "miroirCluster.enabled=true", "--set", "miroirCluster.meilisearch.enabled=true"]);
    let mc = managed.iter().find(|d| d["kind"] == "MiroirCluster").unwrap();
    for field in ["image", "version", "nodesPerGroup", "resources", "storage", "masterKeySecretRef"] {
        assert!(mc["spec"]["meilisearch"].get(field).is_some(), "spec.meilisearch.{field}: {}", mc["spec"]);
    }
    assert!(mc["spec"].get("nodes").is_none(), "the operator runs the nodes: no external list");
    check_rendering(&managed, "miroirCluster.meilisearch.enabled=true");
    let plain = render(&helm, &["--set", "miroirCluster.enabled=true"]);
    assert!(plain.iter().find(|d| d["kind"] == "MiroirCluster").unwrap()["spec"].get("meilisearch").is_none(), "off by default");
}

#[test]
fn helm_renders_the_repository_crds_byte_for_byte() {
    let Some(helm) = helm() else { return };
    let (ok, out, err) = helm_run(&helm, &["template", RELEASE, "charts/miroir", "--namespace", RELEASE_NS, "--include-crds"]);
    assert!(ok, "{err}");
    let mut rendered = 0;
    for name in files_with_ext(&root().join("crds"), "yaml") {
        let text = read(&root().join("crds").join(&name));
        let marker = format!("# Source: miroir/crds/{name}\n");
        let at = out.find(&marker).unwrap_or_else(|| panic!("helm did not render crds/{name}"));
        let body = &out[at + marker.len()..];
        let body = &body[..body.find("\n---\n").map_or(body.len(), |i| i + 1)];
        assert_eq!(body.trim_end(), text.trim_end(), "helm renders crds/{name} differently from the file");
        rendered += 1;
    }
    assert_eq!(rendered, 5);
}

#[test]
fn helm_refuses_sqlite_with_several_pods_whatever_the_persistence() {
    let Some(helm) = helm() else { return };
    for persistence in ["true", "false"] {
        let (ok, _, err) = helm_run(
            &helm,
            &["template", RELEASE, "charts/miroir", "--set", "replicaCount=2", "--set", &format!("persistence.enabled={persistence}")],
        );
        assert!(!ok && err.contains("SQLite allows one pod"), "replicaCount=2, persistence={persistence}: {err}");
    }
    let (ok, _, err) = helm_run(
        &helm,
        &["template", RELEASE, "charts/miroir", "--set", "replicaCount=2", "--set", "taskStore=redis", "--set", "persistence.enabled=false"],
    );
    assert!(ok, "Redis with several pods renders: {err}");
    let (ok, _, err) = helm_run(&helm, &["template", RELEASE, "charts/miroir", "--set", "taskStore=etcd"]);
    assert!(!ok && err.contains("taskStore"), "values.schema.json refuses an unknown store: {err}");
    let (ok, _, err) = helm_run(&helm, &["template", RELEASE, "charts/miroir", "--set", "operator.prot=1"]);
    assert!(!ok && err.contains("prot"), "values.schema.json refuses unknown keys: {err}");
}
