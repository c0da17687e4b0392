//! Mirrored resources: the reconciled specs of Alias, Tenant, Canary and RolloverPolicy are
//! written into their task-store tables (`aliases`, `tenant_map`, `canaries`,
//! `rollover_policies`), keyed by (cluster, resource name), so every pod's proxy reads the
//! same state and it survives restarts. Deleting the resource deletes the row (finalizer).
//!
//! Their behaviour (alias resolution in the proxy, tenant routing, canary runs, rollovers)
//! belongs to follow-up issues; here they get validation, storage and an honest status: a
//! valid, mirrored spec shows `Ready=False` with reason `NotImplemented` (the message says what
//! does not act on it yet) and `Mirrored=True`; an invalid one `Ready=False/InvalidSpec` and
//! `Mirrored=False/InvalidSpec`. Nothing claims `Ready=True` without behaviour behind it.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::controller::{report_failure, write_status, Context, ControllerError, FINALIZER};
use super::crd::{Alias, AliasStatus, Canary, Condition, RolloverPolicy, Tenant};
use super::desired::{carry_transition_times, join_errors, rfc3339, SpecError};
use super::metrics::ErrorCategory;
use crate::store::MirrorTable;

/// A custom resource whose spec is mirrored into a task-store table.
pub trait Mirrored:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    const KIND: &'static str;
    const TABLE: MirrorTable;
    /// The MiroirCluster the resource belongs to.
    fn cluster(&self) -> &str;
    /// Rules the schema and CEL cannot fully express (checked again here, so an object
    /// that slipped past admission is reported, not applied). `ctx` gives the cluster's
    /// running topology for cross-resource checks.
    fn validate(&self, ctx: &Context) -> Vec<SpecError>;
    /// The row stored in the table.
    fn row(&self) -> Value;
    /// The current status as JSON (`None` without status).
    fn status_value(&self) -> Option<Value>;
    /// Kind-specific status fields for a valid, mirrored spec (merged over the conditions).
    fn extra_status(&self, _now: &str) -> serde_json::Map<String, Value> {
        serde_json::Map::new()
    }
    /// What nothing does yet for this kind: the `Ready=False/NotImplemented` message.
    /// (`None` once the kind's behaviour exists; then a valid, mirrored spec is `Ready=True`.)
    const NOT_IMPLEMENTED: Option<&'static str>;
}

const INDEX_UID_RULE: &str = "only alphanumeric characters, hyphens (-) and underscores (_), 1 to 400 of them";

fn valid_index_uid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 400 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn err(field: &str, message: impl Into<String>) -> SpecError {
    SpecError { field: field.into(), message: message.into() }
}

// ------------------------------------------------------------------ pure validation

/// Alias rules.
pub fn validate_alias(spec: &super::crd::AliasSpec) -> Vec<SpecError> {
    let mut e = Vec::new();
    if spec.cluster.is_empty() {
        e.push(err("spec.cluster", "must not be empty"));
    }
    match (&spec.target, &spec.targets) {
        (Some(_), Some(_)) | (None, None) => e.push(err("spec", "set exactly one of `target` or `targets`")),
        (Some(t), None) if !valid_index_uid(t) => e.push(err("spec.target", format!("`{t}` is not a valid index uid: {INDEX_UID_RULE}"))),
        (None, Some(ts)) => {
            if ts.is_empty() {
                e.push(err("spec.targets", "must list at least one index"));
            }
            let mut seen = std::collections::BTreeSet::new();
            for t in ts {
                if !valid_index_uid(t) {
                    e.push(err("spec.targets", format!("`{t}` is not a valid index uid: {INDEX_UID_RULE}")));
                } else if !seen.insert(t) {
                    e.push(err("spec.targets", format!("`{t}` appears more than once")));
                }
            }
        }
        _ => {}
    }
    e
}

/// Tenant rules; `replica_groups` is the cluster's group count when known.
pub fn validate_tenant(spec: &super::crd::TenantSpec, replica_groups: Option<u32>) -> Vec<SpecError> {
    let mut e = Vec::new();
    if spec.cluster.is_empty() {
        e.push(err("spec.cluster", "must not be empty"));
    }
    if spec.tenant_id.is_empty() {
        e.push(err("spec.tenantId", "must not be empty"));
    }
    let dedicated = spec.dedicated == Some(true);
    match (spec.replica_group, dedicated) {
        (Some(_), true) | (None, false) => e.push(err("spec", "set exactly one of `replicaGroup` or `dedicated: true`")),
        (Some(g), false) => {
            if let Some(groups) = replica_groups {
                if g >= groups {
                    e.push(err(
                        "spec.replicaGroup",
                        format!("{g} is out of range: the cluster has {groups} replica group(s), numbered from 0"),
                    ));
                }
            }
        }
        (None, true) => {}
    }
    if let Some(r) = &spec.api_key_secret_ref {
        if r.name.is_empty() || r.key.is_empty() {
            e.push(err("spec.apiKeySecretRef", "`name` and `key` must not be empty"));
        }
    }
    e
}

/// Canary rules.
pub fn validate_canary(spec: &super::crd::CanarySpec) -> Vec<SpecError> {
    let mut e = Vec::new();
    if spec.cluster.is_empty() {
        e.push(err("spec.cluster", "must not be empty"));
    }
    if !valid_index_uid(&spec.index) {
        e.push(err("spec.index", format!("`{}` is not a valid index uid: {INDEX_UID_RULE}", spec.index)));
    }
    if spec.interval_seconds < 5 {
        e.push(err("spec.intervalSeconds", format!("must be at least 5 (got {})", spec.interval_seconds)));
    }
    let a = &spec.assertions;
    if a.top_hit_id.is_none()
        && a.top_k_contains.is_none()
        && a.min_hits.is_none()
        && a.max_latency_ms.is_none()
        && a.must_not_contain_id.is_none()
    {
        e.push(err("spec.assertions", "give at least one assertion"));
    }
    if let Some(t) = &a.top_k_contains {
        if t.k == 0 {
            e.push(err("spec.assertions.topKContains.k", "must be at least 1"));
        }
        if t.ids.is_empty() {
            e.push(err("spec.assertions.topKContains.ids", "must list at least one id"));
        } else if t.ids.len() > t.k as usize {
            e.push(err("spec.assertions.topKContains.ids", format!("{} ids cannot all be in the top {}", t.ids.len(), t.k)));
        }
    }
    if a.max_latency_ms == Some(0) {
        e.push(err("spec.assertions.maxLatencyMs", "must be at least 1"));
    }
    if let (Some(top), Some(not)) = (&a.top_hit_id, &a.must_not_contain_id) {
        if top == not {
            e.push(err("spec.assertions", format!("`{top}` cannot be both the top hit and absent")));
        }
    }
    e
}

const PLACEHOLDERS: [&str; 5] = ["{YYYY-MM-DD}", "{YYYY-MM}", "{YYYYMMDD}", "{YYYY-MM-DD-HH}", "{N}"];

/// RolloverPolicy rules.
pub fn validate_rollover(spec: &super::crd::RolloverPolicySpec) -> Vec<SpecError> {
    let mut e = Vec::new();
    if spec.cluster.is_empty() {
        e.push(err("spec.cluster", "must not be empty"));
    }
    for (field, v) in [("spec.writeAlias", &spec.write_alias), ("spec.readAlias", &spec.read_alias)] {
        if !valid_index_uid(v) {
            e.push(err(field, format!("`{v}` is not a valid index uid: {INDEX_UID_RULE}")));
        }
    }
    if spec.write_alias == spec.read_alias {
        e.push(err("spec.readAlias", "must differ from `writeAlias`"));
    }
    let found: Vec<&str> = PLACEHOLDERS.iter().copied().filter(|p| spec.pattern.contains(p)).collect();
    let braces = spec.pattern.matches('{').count();
    if found.len() != 1 || braces != 1 {
        e.push(err(
            "spec.pattern",
            format!("must contain exactly one placeholder among {}", PLACEHOLDERS.join(", ")),
        ));
    } else {
        let literal = spec.pattern.replace(found[0], "x");
        if !valid_index_uid(&literal) {
            e.push(err("spec.pattern", format!("the rest of the pattern must be a valid index uid: {INDEX_UID_RULE}")));
        }
    }
    let t = &spec.triggers;
    if t.max_docs.is_none() && t.max_age.is_none() {
        e.push(err("spec.triggers", "give `maxDocs`, `maxAge` or both"));
    }
    if t.max_docs == Some(0) {
        e.push(err("spec.triggers.maxDocs", "must be at least 1"));
    }
    if let Some(age) = &t.max_age {
        if parse_age(age).is_none() {
            e.push(err("spec.triggers.maxAge", format!("`{age}` is not a duration like `12h` or `7d` (units s, m, h, d)")));
        }
    }
    if spec.retention.keep_indexes == 0 {
        e.push(err("spec.retention.keepIndexes", "must be at least 1"));
    }
    e
}

/// `90s`, `15m`, `12h`, `7d` → seconds.
pub fn parse_age(s: &str) -> Option<u64> {
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    if num.is_empty() || num.starts_with('0') || !num.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let mul = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(mul)
}

// ------------------------------------------------------------------ kinds

fn status_of<S: Serialize>(s: &Option<S>) -> Option<Value> {
    s.as_ref().map(|s| serde_json::to_value(s).expect("status serializes"))
}

impl Mirrored for Alias {
    const KIND: &'static str = "Alias";
    const NOT_IMPLEMENTED: Option<&'static str> =
        Some("the proxy does not resolve aliases yet: requests naming this alias are not routed to its targets");
    const TABLE: MirrorTable = MirrorTable::Aliases;
    fn cluster(&self) -> &str {
        &self.spec.cluster
    }
    fn validate(&self, _: &Context) -> Vec<SpecError> {
        validate_alias(&self.spec)
    }
    fn row(&self) -> Value {
        json!({ "targets": self.spec.target_list(), "spec": self.spec })
    }
    fn status_value(&self) -> Option<Value> {
        status_of(&self.status)
    }
    fn extra_status(&self, now: &str) -> serde_json::Map<String, Value> {
        let prev = self.status.clone().unwrap_or_default();
        let targets = self.spec.target_list();
        let flipped = prev.resolved_targets != targets;
        let st = AliasStatus {
            resolved_targets: targets.clone(),
            targets_summary: Some(targets.join(",")),
            version: if flipped { prev.version + 1 } else { prev.version },
            last_flip_time: if flipped { Some(now.to_string()) } else { prev.last_flip_time },
            ..Default::default()
        };
        let mut v = serde_json::to_value(st).expect("status serializes");
        let m = v.as_object_mut().expect("object");
        m.remove("conditions");
        m.remove("observedGeneration");
        m.clone()
    }
}

impl Mirrored for Tenant {
    const KIND: &'static str = "Tenant";
    const NOT_IMPLEMENTED: Option<&'static str> =
        Some("tenant routing is not implemented yet: this tenant's requests are not pinned to its replica group");
    const TABLE: MirrorTable = MirrorTable::TenantMap;
    fn cluster(&self) -> &str {
        &self.spec.cluster
    }
    fn validate(&self, ctx: &Context) -> Vec<SpecError> {
        validate_tenant(&self.spec, ctx.proxy.routing().map(|r| r.topology.replica_groups))
    }
    fn row(&self) -> Value {
        json!({ "tenantId": self.spec.tenant_id, "replicaGroup": self.spec.replica_group,
                "dedicated": self.spec.dedicated.unwrap_or(false), "spec": self.spec })
    }
    fn status_value(&self) -> Option<Value> {
        status_of(&self.status)
    }
    fn extra_status(&self, _now: &str) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        if let Some(g) = self.spec.replica_group {
            m.insert("pinnedGroup".into(), json!(g));
        }
        m
    }
}

impl Mirrored for Canary {
    const KIND: &'static str = "Canary";
    const NOT_IMPLEMENTED: Option<&'static str> =
        Some("canary runs are not implemented yet: the query is never run and no assertion is checked");
    const TABLE: MirrorTable = MirrorTable::Canaries;
    fn cluster(&self) -> &str {
        &self.spec.cluster
    }
    fn validate(&self, _: &Context) -> Vec<SpecError> {
        validate_canary(&self.spec)
    }
    fn row(&self) -> Value {
        json!({ "spec": self.spec })
    }
    fn status_value(&self) -> Option<Value> {
        status_of(&self.status)
    }
}

impl Mirrored for RolloverPolicy {
    const KIND: &'static str = "RolloverPolicy";
    const NOT_IMPLEMENTED: Option<&'static str> =
        Some("rollovers are not implemented yet: no index is created, rolled over or deleted by this policy");
    const TABLE: MirrorTable = MirrorTable::RolloverPolicies;
    fn cluster(&self) -> &str {
        &self.spec.cluster
    }
    fn validate(&self, _: &Context) -> Vec<SpecError> {
        validate_rollover(&self.spec)
    }
    fn row(&self) -> Value {
        json!({ "spec": self.spec })
    }
    fn status_value(&self) -> Option<Value> {
        status_of(&self.status)
    }
}

// ------------------------------------------------------------------ reconcile

/// The status a mirrored resource should show: its previous status with `conditions`,
/// `observedGeneration` and the kind-specific fields replaced.
pub fn mirrored_status<K: Mirrored>(obj: &K, errors: &[SpecError], now: OffsetDateTime) -> Value {
    let now_s = rfc3339(now);
    let generation = obj.meta().generation;
    let prev = obj.status_value().unwrap_or_else(|| json!({}));
    let prev_conditions: Vec<Condition> =
        prev.get("conditions").and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default();
    let stored = format!("spec stored in the `{}` table", K::TABLE.name());
    let ((ready, ready_reason, ready_message), (mirrored, mirrored_reason, mirrored_message)) = if errors.is_empty() {
        let ready = match K::NOT_IMPLEMENTED {
            Some(what) => ("False", "NotImplemented", format!("{what} ({stored})")),
            None => ("True", "Mirrored", stored.clone()),
        };
        (ready, ("True", "Mirrored", stored))
    } else {
        let msg = join_errors(errors);
        (("False", "InvalidSpec", msg.clone()), ("False", "InvalidSpec", msg))
    };
    let condition = |type_: &str, status: &str, reason: &str, message: String| Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: now_s.clone(),
        observed_generation: generation,
    };
    let mut conditions = vec![
        condition("Ready", ready, ready_reason, ready_message),
        condition("Mirrored", mirrored, mirrored_reason, mirrored_message),
    ];
    carry_transition_times(&prev_conditions, &mut conditions);
    let mut next = prev.as_object().cloned().unwrap_or_default();
    next.insert("conditions".into(), serde_json::to_value(conditions).expect("conditions serialize"));
    next.insert("observedGeneration".into(), json!(generation));
    if errors.is_empty() {
        next.extend(obj.extra_status(&now_s));
    }
    Value::Object(next)
}

async fn reconcile_mirrored<K: Mirrored>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let started = Instant::now();
    let res = mirror_stages(obj, &ctx).await;
    ctx.metrics.observe(K::KIND, started.elapsed());
    res
}

async fn mirror_stages<K: Mirrored>(obj: Arc<K>, ctx: &Context) -> Result<Action, ControllerError> {
    if obj.cluster() != ctx.cluster {
        return Ok(Action::await_change());
    }
    // Mirroring is singleton work.
    if !ctx.leadership.is_leader() {
        return Ok(Action::requeue(ctx.timing.requeue));
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    // kube-runtime's finalizer helper: added before the first apply; on deletion the row is
    // deleted, then the finalizer released.
    let api_ref = &api;
    finalizer(&api, FINALIZER, obj, |event| async move {
        match event {
            FinalizerEvent::Apply(obj) => mirror_apply(&*obj, ctx, api_ref).await,
            FinalizerEvent::Cleanup(obj) => {
                ctx.store.delete_mirror(K::TABLE, obj.cluster(), &obj.name_any()).await?;
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(ControllerError::from)
}

async fn mirror_apply<K: Mirrored>(obj: &K, ctx: &Context, api: &Api<K>) -> Result<Action, ControllerError> {
    let name = obj.name_any();
    let errors = obj.validate(ctx);
    if errors.is_empty() {
        ctx.store.upsert_mirror(K::TABLE, obj.cluster(), &name, &obj.row()).await?;
    } else {
        // The previous row (if any) stays: a broken edit does not take the state away.
        ctx.metrics.failure(K::KIND, ErrorCategory::InvalidSpec);
    }
    let next = mirrored_status(obj, &errors, OffsetDateTime::now_utc());
    let wrote = write_status(api, &name, obj.status_value(), next).await?;
    if wrote && !errors.is_empty() {
        ctx.event(obj, EventType::Warning, "InvalidSpec", "Validate", join_errors(&errors)).await;
    }
    Ok(Action::await_change())
}

fn mirror_error_policy<K: Mirrored>(obj: Arc<K>, err: &ControllerError, ctx: Arc<Context>) -> Action {
    report_failure(K::KIND, obj, err, ctx)
}

/// Runs the controller of one mirrored kind (until its task is aborted).
pub async fn run<K: Mirrored>(ctx: Arc<Context>) {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    Controller::new(api, watcher::Config::default())
        .reconcile_all_on(ctx.leadership.acquisitions())
        .run(reconcile_mirrored::<K>, mirror_error_policy::<K>, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(kind = K::KIND, error = %e, "controller event");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controlplane::crd::*;

    fn fields(e: Vec<SpecError>) -> Vec<String> {
        e.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn alias_needs_exactly_one_valid_target_form() {
        let ok = AliasSpec { cluster: "c".into(), target: Some("movies-2".into()), targets: None };
        assert!(validate_alias(&ok).is_empty());
        let both = AliasSpec { targets: Some(vec!["a".into()]), ..ok.clone() };
        assert_eq!(fields(validate_alias(&both)), ["spec"]);
        let none = AliasSpec { target: None, ..ok.clone() };
        assert_eq!(fields(validate_alias(&none)), ["spec"]);
        let bad = AliasSpec { target: Some("no spaces".into()), ..ok.clone() };
        assert_eq!(fields(validate_alias(&bad)), ["spec.target"]);
        let dup = AliasSpec { target: None, targets: Some(vec!["a".into(), "a".into()]), ..ok.clone() };
        assert_eq!(fields(validate_alias(&dup)), ["spec.targets"]);
        let empty = AliasSpec { target: None, targets: Some(vec![]), ..ok.clone() };
        assert_eq!(fields(validate_alias(&empty)), ["spec.targets"]);
        let no_cluster = AliasSpec { cluster: String::new(), ..ok };
        assert_eq!(fields(validate_alias(&no_cluster)), ["spec.cluster"]);
    }

    #[test]
    fn tenant_needs_one_placement_within_the_cluster() {
        let ok = TenantSpec { cluster: "c".into(), tenant_id: "t1".into(), replica_group: Some(1), dedicated: None, api_key_secret_ref: None };
        assert!(validate_tenant(&ok, Some(2)).is_empty());
        assert!(validate_tenant(&ok, None).is_empty(), "unknown group count: not checked");
        assert_eq!(fields(validate_tenant(&ok, Some(1))), ["spec.replicaGroup"]);
        let both = TenantSpec { dedicated: Some(true), ..ok.clone() };
        assert_eq!(fields(validate_tenant(&both, Some(2))), ["spec"]);
        let neither = TenantSpec { replica_group: None, dedicated: Some(false), ..ok.clone() };
        assert_eq!(fields(validate_tenant(&neither, Some(2))), ["spec"]);
        let dedicated = TenantSpec { replica_group: None, dedicated: Some(true), ..ok.clone() };
        assert!(validate_tenant(&dedicated, Some(2)).is_empty());
        let no_id = TenantSpec { tenant_id: String::new(), ..ok.clone() };
        assert_eq!(fields(validate_tenant(&no_id, Some(2))), ["spec.tenantId"]);
        let bad_ref = TenantSpec { api_key_secret_ref: Some(SecretKeyRef { name: "s".into(), key: String::new() }), ..ok };
        assert_eq!(fields(validate_tenant(&bad_ref, Some(2))), ["spec.apiKeySecretRef"]);
    }

    fn canary() -> CanarySpec {
        CanarySpec {
            cluster: "c".into(),
            index: "movies".into(),
            interval_seconds: 60,
            query: serde_json::from_value(json!({"q": "batman"})).unwrap(),
            assertions: CanaryAssertions { min_hits: Some(1), ..Default::default() },
        }
    }

    #[test]
    fn canary_rules() {
        assert!(validate_canary(&canary()).is_empty());
        let mut c = canary();
        c.assertions = CanaryAssertions::default();
        assert_eq!(fields(validate_canary(&c)), ["spec.assertions"]);
        let mut c = canary();
        c.interval_seconds = 1;
        assert_eq!(fields(validate_canary(&c)), ["spec.intervalSeconds"]);
        let mut c = canary();
        c.index = "bad index".into();
        assert_eq!(fields(validate_canary(&c)), ["spec.index"]);
        let mut c = canary();
        c.assertions.top_k_contains = Some(TopKContains { k: 1, ids: vec!["1".into(), "2".into()] });
        assert_eq!(fields(validate_canary(&c)), ["spec.assertions.topKContains.ids"]);
        let mut c = canary();
        c.assertions.top_k_contains = Some(TopKContains { k: 0, ids: vec![] });
        assert_eq!(fields(validate_canary(&c)), ["spec.assertions.topKContains.k", "spec.assertions.topKContains.ids"]);
        let mut c = canary();
        c.assertions.max_latency_ms = Some(0);
        assert_eq!(fields(validate_canary(&c)), ["spec.assertions.maxLatencyMs"]);
        let mut c = canary();
        c.assertions.top_hit_id = Some("7".into());
        c.assertions.must_not_contain_id = Some("7".into());
        assert_eq!(fields(validate_canary(&c)), ["spec.assertions"]);
    }

    fn rollover() -> RolloverPolicySpec {
        RolloverPolicySpec {
            cluster: "c".into(),
            write_alias: "logs-write".into(),
            read_alias: "logs".into(),
            pattern: "logs-{YYYY-MM-DD}".into(),
            triggers: RolloverTriggers { max_docs: None, max_age: Some("1d".into()) },
            retention: RetentionSpec { keep_indexes: 7 },
            template: Default::default(),
        }
    }

    #[test]
    fn rollover_rules() {
        assert!(validate_rollover(&rollover()).is_empty());
        let mut r = rollover();
        r.read_alias = r.write_alias.clone();
        assert_eq!(fields(validate_rollover(&r)), ["spec.readAlias"]);
        for bad in ["logs", "logs-{DD}", "{N}-{N}", "bad name-{N}"] {
            let mut r = rollover();
            r.pattern = bad.into();
            assert_eq!(fields(validate_rollover(&r)), ["spec.pattern"], "{bad}");
        }
        let mut r = rollover();
        r.triggers = RolloverTriggers::default();
        assert_eq!(fields(validate_rollover(&r)), ["spec.triggers"]);
        let mut r = rollover();
        r.triggers.max_docs = Some(0);
        assert_eq!(fields(validate_rollover(&r)), ["spec.triggers.maxDocs"]);
        for bad in ["1w", "0d", "d", "12", "-1h"] {
            let mut r = rollover();
            r.triggers.max_age = Some(bad.into());
            assert_eq!(fields(validate_rollover(&r)), ["spec.triggers.maxAge"], "{bad}");
        }
        let mut r = rollover();
        r.retention.keep_indexes = 0;
        assert_eq!(fields(validate_rollover(&r)), ["spec.retention.keepIndexes"]);
        assert_eq!(parse_age("90s"), Some(90));
        assert_eq!(parse_age("7d"), Some(604800));
    }

    #[test]
    fn alias_status_bumps_version_only_on_flip() {
        let mut a = Alias::new("a", AliasSpec { cluster: "c".into(), target: Some("m1".into()), targets: None });
        a.metadata.generation = Some(1);
        let t0 = time::macros::datetime!(2026-01-01 00:00:00 UTC);
        let s1 = mirrored_status(&a, &[], t0);
        assert_eq!(s1["version"], 1);
        assert_eq!(s1["resolvedTargets"], json!(["m1"]));
        a.status = Some(serde_json::from_value(s1.clone()).unwrap());
        // Same targets later: identical status (no write).
        assert_eq!(mirrored_status(&a, &[], t0 + time::Duration::hours(1)), s1);
        // Flip.
        a.spec.target = Some("m2".into());
        a.metadata.generation = Some(2);
        let s2 = mirrored_status(&a, &[], t0 + time::Duration::hours(2));
        assert_eq!(s2["version"], 2);
        assert_eq!(s2["lastFlipTime"], "2026-01-01T02:00:00Z");
        assert_eq!(s2["observedGeneration"], 2);
        // Invalid: Ready=False, targets untouched.
        let e = vec![err("spec", "x")];
        let s3 = mirrored_status(&a, &e, t0);
        assert_eq!(s3["conditions"][0]["status"], "False");
        assert_eq!(s3["conditions"][0]["reason"], "InvalidSpec");
        assert_eq!(s3["conditions"][1]["reason"], "InvalidSpec");
        assert_eq!(s3["version"], 1);
    }

    #[test]
    fn no_mirrored_kind_claims_ready_without_behaviour() {
        fn check<K: Mirrored>(obj: &K) {
            let st = mirrored_status(obj, &[], time::macros::datetime!(2026-01-01 00:00:00 UTC));
            let conditions: Vec<Condition> = serde_json::from_value(st["conditions"].clone()).unwrap();
            let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
            let mirrored = conditions.iter().find(|c| c.type_ == "Mirrored").unwrap();
            assert_eq!((mirrored.status.as_str(), mirrored.reason.as_str()), ("True", "Mirrored"), "{}", K::KIND);
            match K::NOT_IMPLEMENTED {
                Some(what) => {
                    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "NotImplemented"), "{}", K::KIND);
                    assert!(ready.message.starts_with(what), "{}", ready.message);
                }
                None => assert_eq!(ready.status, "True"),
            }
        }
        // Today none of the four has its behaviour.
        assert!(Alias::NOT_IMPLEMENTED.is_some() && Tenant::NOT_IMPLEMENTED.is_some());
        assert!(Canary::NOT_IMPLEMENTED.is_some() && RolloverPolicy::NOT_IMPLEMENTED.is_some());
        check(&Alias::new("a", AliasSpec { cluster: "c".into(), target: Some("m1".into()), targets: None }));
        check(&Tenant::new("t", TenantSpec { cluster: "c".into(), tenant_id: "t".into(), replica_group: Some(0), dedicated: None, api_key_secret_ref: None }));
        check(&Canary::new("k", canary()));
        check(&RolloverPolicy::new("r", rollover()));
    }
}
