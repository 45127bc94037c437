//! The admin commands (`key`, `bucket`): a small JSON client of the admin API.

use std::path::Path;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use crate::admin::{BucketView, KeyDeletion, KeyView, KmsView};
use crate::credentials;

pub struct AdminClient {
    endpoint: String,
    token: String,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl AdminClient {
    /// Authenticates with `COFFRE_ADMIN_TOKEN`, else root credentials from the
    /// environment, else those stored in the local data dir.
    pub fn new(endpoint: &str, data_dir: &Path) -> anyhow::Result<Self> {
        let token = match std::env::var("COFFRE_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()) {
            Some(t) => t,
            None => match credentials::from_env_or_file(data_dir)? {
                Some(c) => format!("{}:{}", c.access_key, c.secret),
                None => bail!(
                    "no admin credentials: set COFFRE_ADMIN_TOKEN, or COFFRE_ROOT_ACCESS_KEY and COFFRE_ROOT_SECRET_KEY, or run \
                     next to the server's data dir (--data-dir)"
                ),
            },
        };
        let http = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self { endpoint: endpoint.trim_end_matches('/').to_owned(), token, http })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<Option<T>> {
        let url = format!("{}{path}", self.endpoint);
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let req = http::Request::builder()
            .method(method)
            .uri(&url)
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(payload)))?;
        let resp =
            self.http.request(req).await.with_context(|| format!("cannot reach the admin API at {}", self.endpoint))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            bail!("{status}: {message}");
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_json::from_slice(&bytes).context("the admin API answered with unexpected JSON")?))
    }

    pub async fn create_key(&self, name: &str) -> anyhow::Result<KeyView> {
        let v = self.call(http::Method::POST, "/admin/v1/keys", Some(serde_json::json!({ "name": name }))).await?;
        v.context("empty answer")
    }

    pub async fn list_keys(&self) -> anyhow::Result<Vec<KeyView>> {
        Ok(self.call(http::Method::GET, "/admin/v1/keys", None).await?.unwrap_or_default())
    }

    pub async fn delete_key(&self, id: &str, erase_buckets: bool) -> anyhow::Result<KeyDeletion> {
        let path = format!("/admin/v1/keys/{id}?erase_buckets={erase_buckets}");
        self.call(http::Method::DELETE, &path, None).await?.context("empty answer")
    }

    pub async fn kms_status(&self) -> anyhow::Result<KmsView> {
        self.call(http::Method::GET, "/admin/v1/kms", None).await?.context("empty answer")
    }

    pub async fn rotate_key(&self, bucket: &str) -> anyhow::Result<serde_json::Value> {
        let path = format!("/admin/v1/buckets/{bucket}/rotate-key");
        self.call(http::Method::POST, &path, None).await?.context("empty answer")
    }

    pub async fn erase_bucket(&self, bucket: &str) -> anyhow::Result<serde_json::Value> {
        let path = format!("/admin/v1/buckets/{bucket}/erase");
        let body = serde_json::json!({ "confirm": true });
        self.call(http::Method::POST, &path, Some(body)).await?.context("empty answer")
    }

    pub async fn list_buckets(&self) -> anyhow::Result<Vec<BucketView>> {
        Ok(self.call(http::Method::GET, "/admin/v1/buckets", None).await?.unwrap_or_default())
    }

    pub async fn bucket(&self, name: &str) -> anyhow::Result<BucketView> {
        self.call(http::Method::GET, &format!("/admin/v1/buckets/{name}"), None).await?.context("empty answer")
    }
}

pub fn print_keys(keys: &[KeyView], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(keys)?);
        return Ok(());
    }
    println!("{:<22} {:<26} NAME", "ACCESS KEY", "CREATED");
    for k in keys {
        println!("{:<22} {:<26} {}", k.access_key_id, k.created, k.name);
    }
    Ok(())
}

pub fn print_buckets(buckets: &[BucketView], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(buckets)?);
        return Ok(());
    }
    println!("{:<40} {:<22} {:>10} {:>14}  CREATED", "NAME", "OWNER", "OBJECTS", "BYTES");
    for b in buckets {
        println!("{:<40} {:<22} {:>10} {:>14}  {}", b.name, b.owner, b.objects, b.bytes, b.created);
    }
    Ok(())
}
