//! `POST /dumps`, `POST /snapshots`: one Miroir task per cluster-wide backup (see
//! [`crate::dataplane::backup`]); `GET /_miroir/backups[/{uid}]`: the backups' manifests.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};

use super::json_response;
use crate::dataplane::backup::BackupKind;
use crate::dataplane::tasks::summarized;
use crate::dataplane::Proxy;
use crate::error::{ApiError, ApiResult, Code};

pub async fn dump(State(proxy): State<Proxy>) -> ApiResult<Response> {
    let task = proxy.create_backup(BackupKind::Dump).await?;
    Ok(json_response(StatusCode::ACCEPTED, summarized(&task)))
}

pub async fn snapshot(State(proxy): State<Proxy>) -> ApiResult<Response> {
    let task = proxy.create_backup(BackupKind::Snapshot).await?;
    Ok(json_response(StatusCode::ACCEPTED, summarized(&task)))
}

/// `POST /_miroir/restore` (admin key): the body is a backup manifest; its task-store part is
/// written into this Miroir's store (see `docs/backup.md`).
pub async fn restore(State(proxy): State<Proxy>, super::JsonBody(manifest): super::JsonBody) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "restored": proxy.restore_store(&manifest).await? })))
}

pub async fn list(State(proxy): State<Proxy>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "results": proxy.backup_uids().await? })))
}

pub async fn get(State(proxy): State<Proxy>, uri: Uri) -> ApiResult<Json<Value>> {
    let uid = uri.path().rsplit('/').next().unwrap_or("").to_string();
    match proxy.backup_manifest(&uid).await? {
        Some(m) => Ok(Json(m)),
        None => Err(ApiError::new(Code::NotFound, format!("Backup `{uid}` not found."))),
    }
}

// ---------------------------------------------------------------- deliberately unsupported
// Meilisearch routes Miroir answers with a 501 in Meilisearch's error shape, each with why
// (docs/compat/ops.md).

fn refused(method: &axum::http::Method, uri: &Uri, why: &str) -> ApiError {
    ApiError::new(Code::NotImplemented, format!("`{method} {}` is not supported by Miroir: {why}", uri.path()))
}

pub async fn export(method: axum::http::Method, uri: Uri) -> ApiError {
    refused(
        &method,
        &uri,
        "each node holds only some shards of an index, so Miroir cannot hand the export to the nodes, and it does not re-send documents itself. Take a dump (`POST /dumps`) or read the documents through Miroir (`POST /indexes/{indexUid}/documents/fetch`) and write them to the other instance.",
    )
}

pub async fn network(method: axum::http::Method, uri: Uri) -> ApiError {
    refused(
        &method,
        &uri,
        "Miroir is the network: it shards and replicates documents over its nodes itself (see `GET /_miroir/topology`); Meilisearch's own network of remotes is not used and cannot be configured through Miroir.",
    )
}

pub async fn logs(method: axum::http::Method, uri: Uri) -> ApiError {
    refused(
        &method,
        &uri,
        "Miroir writes its own logs to its standard error (level set by `MIROIR_LOG`) and every node keeps its own; there is no single log stream to follow or redirect.",
    )
}

pub async fn chats(method: axum::http::Method, uri: Uri) -> ApiError {
    refused(&method, &uri, "chat workspaces (conversational search) are not proxied by Miroir.")
}
