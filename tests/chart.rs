//! The Helm chart (`charts/miroir`), checked without a `helm` binary: its CRDs are the
//! repository's, `Chart.yaml` and `values.yaml` have what the templates need, every
//! `.Values.x.y` a template reads exists, template actions are balanced and every `include`
//! is defined, the operator's flags and environment variables are ones the real binary
//! accepts, its RBAC is `config/k8s/operator.yaml`'s, and the MiroirCluster the chart can
//! render from its default values is valid.

use std::path::{Path, PathBuf};

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
    let mc: MiroirCluster = serde_json::from_value(doc).expect("miroirCluster.spec is a MiroirCluster spec");
    if let Err(e) = build_desired(&mc.spec, None) {
        panic!("the operator rejects miroirCluster.spec: {e:?}");
    }
    // With the read-only root filesystem the SQLite file must live on the state volume.
    let path = spec["taskStore"]["sqlite"]["path"].as_str().expect("the default task store is SQLite");
    let mount = v["persistence"]["mountPath"].as_str().unwrap();
    assert!(path.starts_with(&format!("{}/", mount.trim_end_matches('/'))), "{path} is not under {mount}");
}
