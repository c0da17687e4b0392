//! The CRDs: `crds/` is exactly what the binary prints; each CRD is a valid
//! `CustomResourceDefinition` with a status subresource, printer columns and validation;
//! the shipped example manifests validate against the schemas and the wrong ones are rejected.

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use miroir::controlplane::crd::{self, Alias, Canary, MiroirCluster, RolloverPolicy, Tenant};
use miroir::controlplane::desired::{build_desired, SpecError};
use miroir::controlplane::mirror::{validate_alias, validate_canary, validate_rollover, validate_tenant};
use serde::Deserialize;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn crds_dir_equals_the_binary_output() {
    let dir = root().join("crds");
    let files = crd::crd_files();
    if std::env::var_os("MIROIR_UPDATE_CRDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, yaml) in &files {
            std::fs::write(dir.join(name), yaml).unwrap();
        }
    }
    let on_disk: Vec<String> =
        yaml_files(&dir).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    let mut expected: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    expected.sort();
    assert_eq!(on_disk, expected, "crds/ holds exactly one file per CRD");
    for (name, yaml) in &files {
        let disk = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(disk == *yaml, "crds/{name} is stale: run `MIROIR_UPDATE_CRDS=1 cargo test --test crds`");
    }
    // And `miroir crd` prints exactly these files.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_miroir")).arg("crd").output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let concatenated: String = files.iter().map(|(n, _)| format!("---\n{}", std::fs::read_to_string(dir.join(n)).unwrap())).collect();
    assert_eq!(printed, concatenated);
}

fn crds_from_disk() -> Vec<CustomResourceDefinition> {
    yaml_files(&root().join("crds"))
        .iter()
        .map(|p| serde_yaml_ng::from_str(&std::fs::read_to_string(p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

fn schema_of(kind: &str) -> Value {
    let crd = crds_from_disk().into_iter().find(|c| c.spec.names.kind == kind).unwrap_or_else(|| panic!("no CRD for {kind}"));
    let v = &crd.spec.versions[0];
    serde_json::to_value(v.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap()).unwrap()
}

#[test]
fn every_crd_has_status_printer_columns_and_validation() {
    let crds = crds_from_disk();
    let kinds: Vec<&str> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
    assert_eq!(kinds.len(), 5);
    for k in ["MiroirCluster", "Alias", "Tenant", "Canary", "RolloverPolicy"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    for c in &crds {
        assert_eq!(c.spec.group, "miroir.io");
        assert_eq!(c.spec.scope, "Namespaced");
        assert_eq!(c.spec.versions.len(), 1);
        let v = &c.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(), "{}: status subresource", c.spec.names.kind);
        let cols = v.additional_printer_columns.as_ref().expect("printer columns");
        assert!(cols.len() >= 4, "{}: printer columns", c.spec.names.kind);
        assert!(cols.iter().any(|c| c.name == "Age"));
        let schema = serde_json::to_string(&v.schema).unwrap();
        assert!(schema.contains("\"required\""), "{}: required fields", c.spec.names.kind);
        assert!(schema.contains("x-kubernetes-validations"), "{}: CEL rules", c.spec.names.kind);
    }
    let mc = crds.iter().find(|c| c.spec.names.kind == "MiroirCluster").unwrap();
    let cols: Vec<&str> =
        mc.spec.versions[0].additional_printer_columns.as_ref().unwrap().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cols, ["Phase", "Nodes", "Shards", "RF", "RG", "Rebalance", "Age"]);
    let schema = serde_json::to_string(&mc.spec.versions[0].schema).unwrap();
    assert!(schema.contains(r#""rule":"self == oldSelf""#), "shards is immutable");
}

/// Errors the operator's own validation finds in a manifest (the rules CEL enforces at
/// admission, which a JSON-schema validator cannot evaluate).
fn operator_errors(doc: &Value) -> Vec<SpecError> {
    let kind = doc["kind"].as_str().unwrap();
    match kind {
        "MiroirCluster" => {
            let mc: MiroirCluster = serde_json::from_value(doc.clone()).unwrap();
            build_desired(&mc.spec, None).err().unwrap_or_default()
        }
        "Alias" => validate_alias(&serde_json::from_value::<Alias>(doc.clone()).unwrap().spec),
        "Tenant" => validate_tenant(&serde_json::from_value::<Tenant>(doc.clone()).unwrap().spec, None),
        "Canary" => validate_canary(&serde_json::from_value::<Canary>(doc.clone()).unwrap().spec),
        "RolloverPolicy" => validate_rollover(&serde_json::from_value::<RolloverPolicy>(doc.clone()).unwrap().spec),
        other => panic!("unexpected kind {other}"),
    }
}

fn schema_errors(doc: &Value) -> Vec<String> {
    let schema = schema_of(doc["kind"].as_str().unwrap());
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

/// The CEL rules of the document's CRD, evaluated (with schema defaults applied first, as
/// the API server does); `old` makes transition rules (`oldSelf`) apply.
fn cel_errors(doc: &Value, old: Option<&Value>) -> Vec<String> {
    let schema = schema_of(doc["kind"].as_str().unwrap());
    match kube_cel::Validator::new().validate(&schema, doc, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec().into_iter().map(|e| e.to_string()).collect(),
    }
}

/// Every `x-kubernetes-validations` rule with the schema node it is attached to.
fn collect_rules(path: &str, node: &Value, out: &mut Vec<(String, String, Value)>) {
    for r in node.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten() {
        out.push((path.to_string(), r["rule"].as_str().unwrap().to_string(), node.clone()));
    }
    for (name, sub) in node.get("properties").and_then(Value::as_object).into_iter().flatten() {
        collect_rules(&format!("{path}.{name}"), sub, out);
    }
    if let Some(items) = node.get("items") {
        collect_rules(&format!("{path}[]"), items, out);
    }
}

#[test]
fn cel_rules_compile_use_only_crd_variables_and_fit_the_cost_budget() {
    let mut total = 0;
    for crd in crds_from_disk() {
        let kind = crd.spec.names.kind.clone();
        let mut rules = Vec::new();
        collect_rules(&kind, &schema_of(&kind), &mut rules);
        assert!(!rules.is_empty(), "{kind} has CEL rules");
        for (path, rule, node) in rules {
            let compiled = kube_cel::compile_schema(&node);
            assert!(!compiled.has_errors(), "{path}: `{rule}` does not compile: {:?}", compiled.compilation_errors());
            let mut warnings = kube_cel::analyze_rule(&rule, &compiled, kube_cel::ScopeContext::CrdValidation);
            // The scope check also lists macro iteration variables (`all(n, ...)`): not a problem.
            warnings.retain(|w| {
                let var = w.message.strip_prefix("variable '").and_then(|m| m.split('\'').next());
                !(w.kind == kube_cel::WarningKind::WrongScope && var.is_some_and(|v| rule.contains(&format!("({v},"))))
            });
            assert!(warnings.is_empty(), "{path}: `{rule}`: {warnings:?}");
            total += 1;
        }
    }
    assert!(total >= 8, "{total} rules");
}

#[test]
fn shards_cannot_change_after_creation() {
    let path = root().join("config/k8s/miroircluster.yaml");
    let old = yaml_docs(&path).remove(0);
    let mut new = old.clone();
    assert!(cel_errors(&new, Some(&old)).is_empty(), "an unchanged update is fine");
    new["spec"]["replicationFactor"] = 1.into();
    assert!(cel_errors(&new, Some(&old)).is_empty(), "RF may change");
    new["spec"]["shards"] = 32.into();
    let errors = cel_errors(&new, Some(&old));
    assert!(errors.iter().any(|e| e.contains("shards is immutable")), "{errors:?}");
}

#[test]
fn example_manifests_validate_against_the_crds() {
    let mut kinds = std::collections::BTreeSet::new();
    for path in yaml_files(&root().join("config/k8s")) {
        for doc in yaml_docs(&path) {
            if doc["apiVersion"] != "miroir.io/v1alpha1" {
                continue;
            }
            let errors = schema_errors(&doc);
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            let cel = cel_errors(&doc, None);
            assert!(cel.is_empty(), "{}: {cel:?}", path.display());
            let op = operator_errors(&doc);
            assert!(op.is_empty(), "{}: {op:?}", path.display());
            kinds.insert(doc["kind"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(kinds.len(), 5, "examples cover every kind: {kinds:?}");
}

#[test]
fn wrong_manifests_are_rejected() {
    let files = yaml_files(&root().join("tests/data/bad-manifests"));
    assert!(files.len() >= 20);
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let by = text
            .lines()
            .find_map(|l| l.strip_prefix("# rejected-by: "))
            .unwrap_or_else(|| panic!("{}: no `# rejected-by:` header", path.display()));
        let doc = yaml_docs(&path).remove(0);
        if by.starts_with("schema") {
            assert!(!schema_errors(&doc).is_empty(), "{} should fail the schema", path.display());
        } else if by.starts_with("cel") {
            // Structurally fine: the CRD's CEL rule rejects it (evaluated here as the API
            // server does), and so does the operator's own validation (which mirrors it).
            let errors = schema_errors(&doc);
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            assert!(!cel_errors(&doc, None).is_empty(), "{} should fail a CEL rule", path.display());
            assert!(!operator_errors(&doc).is_empty(), "{} should fail the operator's validation", path.display());
        } else if by.starts_with("operator") {
            // Admitted by the API server; the operator refuses to apply it.
            assert!(schema_errors(&doc).is_empty() && cel_errors(&doc, None).is_empty(), "{}", path.display());
            assert!(!operator_errors(&doc).is_empty(), "{} should fail the operator's validation", path.display());
        } else {
            panic!("{}: unknown rejected-by `{by}`", path.display());
        }
    }
}

/// Kubernetes only accepts structural schemas: every node has a `type` (unless it preserves
/// unknown fields), and `oneOf`/`anyOf`/`allOf`/`not` branches only constrain (no `type`,
/// `properties`, `default`, ...). List-map keys must be required.
fn check_structural(path: &str, s: &Value, problems: &mut Vec<String>) {
    let obj = s.as_object().unwrap();
    let preserves = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if !obj.contains_key("type") && !preserves {
        problems.push(format!("{path}: no type"));
    }
    for k in ["oneOf", "anyOf", "allOf"] {
        for (i, branch) in obj.get(k).and_then(Value::as_array).into_iter().flatten().enumerate() {
            for banned in ["type", "properties", "additionalProperties", "items", "default", "description", "nullable"] {
                if branch.get(banned).is_some() {
                    problems.push(format!("{path}.{k}[{i}]: `{banned}` is not allowed in a structural schema"));
                }
            }
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            check_structural(&format!("{path}.{name}"), sub, problems);
        }
    }
    if let Some(items) = obj.get("items") {
        check_structural(&format!("{path}[]"), items, problems);
        if let Some(keys) = obj.get("x-kubernetes-list-map-keys").and_then(Value::as_array) {
            let required = items.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
            for k in keys {
                if !required.contains(k) {
                    problems.push(format!("{path}: list-map key {k} is not required"));
                }
            }
        }
    }
}

/// Every `format` in the schemas is one the API server knows: no `unrecognized format`
/// warning on apply (schemars' `uint32`/`uint64` are mapped by the generator).
fn formats(path: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            if let (Some(Value::String(f)), Some(Value::String(_))) = (m.get("format"), m.get("type")) {
                out.push((path.to_string(), f.clone()));
            }
            for (k, sub) in m {
                formats(&format!("{path}.{k}"), sub, out);
            }
        }
        Value::Array(a) => a.iter().enumerate().for_each(|(i, sub)| formats(&format!("{path}[{i}]"), sub, out)),
        _ => {}
    }
}

#[test]
fn schemas_use_only_formats_the_api_server_knows() {
    // What Kubernetes' apiextensions validation recognizes (k8s.io/kube-openapi strfmt plus
    // the OpenAPI number formats).
    const KNOWN: [&str; 30] = [
        "int32", "int64", "float", "double", "byte", "binary", "password", "date", "date-time", "datetime", "duration",
        "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid", "uuid3", "uuid4", "uuid5", "bsonobjectid",
        "isbn", "isbn10", "isbn13", "creditcard", "ssn", "hexcolor", "rgbcolor",
    ];
    let mut seen = 0;
    for crd in crds_from_disk() {
        let kind = crd.spec.names.kind.clone();
        let mut found = Vec::new();
        formats(&kind, &schema_of(&kind), &mut found);
        for (path, f) in &found {
            assert!(KNOWN.contains(&f.as_str()), "{path}: format `{f}` is unknown to the API server");
        }
        seen += found.len();
    }
    assert!(seen > 0, "integer formats are kept (mapped), not all dropped");
}

#[test]
fn schemas_are_structural() {
    for crd in crds_from_disk() {
        let kind = crd.spec.names.kind.clone();
        let schema = serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap()).unwrap();
        let mut problems = Vec::new();
        check_structural(&kind, &schema, &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
