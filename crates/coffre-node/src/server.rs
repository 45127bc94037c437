//! The node API a storage node serves (`coffre serve --role storage`): put,
//! read and delete sealed blobs on the node's own disk, fsynced before a put
//! is acknowledged. Who may ask is settled before any request is read: the
//! listener is mutual TLS and accepts only gateways of the cluster
//! ([`crate::identity::ClusterTls::server_config`]).

use std::ops::Range;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use coffre_core::blob::{BlobStore, Placement};
use coffre_core::types::BlobId;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

/// A storage node: its blob store and identity.
pub struct NodeServer {
    blobs: Arc<dyn BlobStore>,
    node_id: String,
}

/// `GET /v1/status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: String,
}

/// `PUT /v1/blobs/{id}`: what the node made durable.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stored {
    pub size: u64,
}

#[derive(Deserialize)]
struct ReadRange {
    start: u64,
    end: u64,
}

impl NodeServer {
    pub fn new(blobs: Arc<dyn BlobStore>, node_id: String) -> Arc<Self> {
        Arc::new(Self { blobs, node_id })
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v1/status", get(status))
            .route("/v1/blobs/{id}", get(read_blob).put(put_blob).delete(delete_blob))
            .with_state(self)
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// A blob id as [`BlobId`] prints it: 32 lower-case hex digits, nothing else.
fn parse_id(id: &str) -> Option<BlobId> {
    let valid = id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    u128::from_str_radix(id, 16).ok().filter(|_| valid).map(BlobId)
}

fn bad_id() -> Response {
    error(StatusCode::BAD_REQUEST, "a blob id is 32 lower-case hex digits")
}

fn storage_error(e: &coffre_core::Error) -> Response {
    match e {
        coffre_core::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            error(StatusCode::NOT_FOUND, "no such blob")
        }
        coffre_core::Error::Io(io) if io.kind() == std::io::ErrorKind::AlreadyExists => {
            error(StatusCode::CONFLICT, "the blob exists already")
        }
        other => error(StatusCode::INTERNAL_SERVER_ERROR, &other.to_string()),
    }
}

async fn status(State(node): State<Arc<NodeServer>>) -> Response {
    axum::Json(NodeStatus { node_id: node.node_id.clone() }).into_response()
}

/// Streams the body to disk; answers only once the blob is durable. A body
/// cut short leaves nothing behind.
async fn put_blob(State(node): State<Arc<NodeServer>>, Path(id): Path<String>, body: Body) -> Response {
    let Some(id) = parse_id(&id) else { return bad_id() };
    let mut writer = match node.blobs.create(id, &Placement::default()).await {
        Ok(writer) => writer,
        Err(e) => return storage_error(&e),
    };
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let written = match chunk {
            Ok(chunk) => writer.write(chunk).await,
            Err(e) => Err(coffre_core::Error::Body(e.to_string())),
        };
        if let Err(e) = written {
            writer.abort().await;
            tracing::warn!(blob = %id, error = %e, "a blob upload failed; nothing kept");
            return error(StatusCode::BAD_REQUEST, &e.to_string());
        }
    }
    match writer.finish().await {
        Ok(size) => (StatusCode::CREATED, axum::Json(Stored { size })).into_response(),
        Err(e) => storage_error(&e),
    }
}

async fn read_blob(
    State(node): State<Arc<NodeServer>>,
    Path(id): Path<String>,
    Query(range): Query<ReadRange>,
) -> Response {
    let Some(id) = parse_id(&id) else { return bad_id() };
    if range.start > range.end {
        return error(StatusCode::BAD_REQUEST, "start is after end");
    }
    let range: Range<u64> = range.start..range.end;
    match node.blobs.read(id, range).await {
        Ok(stream) => Body::from_stream(stream).into_response(),
        Err(e) => storage_error(&e),
    }
}

async fn delete_blob(State(node): State<Arc<NodeServer>>, Path(id): Path<String>) -> Response {
    let Some(id) = parse_id(&id) else { return bad_id() };
    match node.blobs.delete(id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => storage_error(&e),
    }
}
