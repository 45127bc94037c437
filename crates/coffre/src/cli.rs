//! The admin commands (`key`, `bucket`): a small JSON client of the admin API,
//! over http or https (trusting `--ca-cert`, else the system's CAs).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use coffre_s3::conn::Io;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use tokio_rustls::TlsConnector;

use crate::credentials;
use coffre_admin::{BucketView, KeyDeletion, KeyView, KmsView};

pub struct AdminClient {
    endpoint: String,
    token: String,
    /// `host:port` for the Host header and the TCP connection.
    authority: String,
    /// Set for https endpoints.
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl AdminClient {
    /// Authenticates with the admin token: `COFFRE_ADMIN_TOKEN`, else the
    /// server's `admin.token` in the local data dir. Root's S3 secret is not
    /// an admin credential.
    pub fn new(endpoint: &str, data_dir: &Path, ca_cert: Option<&Path>) -> anyhow::Result<Self> {
        let Some(token) = credentials::admin_token(data_dir)? else {
            bail!(
                "no admin token: set COFFRE_ADMIN_TOKEN, or run next to the server's data dir (--data-dir) where \
                 it keeps {}",
                credentials::ADMIN_TOKEN_FILE
            )
        };
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let url = url::Url::parse(&endpoint).with_context(|| format!("admin endpoint {endpoint:?} is not a URL"))?;
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => bail!("admin endpoint {endpoint:?} has no host"),
        };
        let port = url.port_or_known_default().context("admin endpoint without a port")?;
        let authority = match url.host() {
            Some(url::Host::Ipv6(_)) => format!("[{host}]:{port}"),
            _ => format!("{host}:{port}"),
        };
        let tls = match url.scheme() {
            "http" => None,
            "https" => {
                let name = ServerName::try_from(host.clone())
                    .with_context(|| format!("{host:?} cannot be checked against a certificate"))?;
                Some((TlsConnector::from(Arc::new(client_config(ca_cert)?)), name))
            }
            other => bail!("admin endpoint {endpoint:?}: scheme {other:?} is neither http nor https"),
        };
        Ok(Self { endpoint, token, authority, tls })
    }

    /// One connection per call: the CLI makes one or two calls per run.
    async fn send(&self, req: http::Request<Full<Bytes>>) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
        let tcp = tokio::net::TcpStream::connect(&self.authority).await?;
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => {
                Box::new(connector.connect(name.clone(), tcp).await.context("TLS handshake with the admin API")?)
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(conn);
        Ok(sender.send_request(req).await?)
    }

    /// One request; the answer's body if it succeeded, else the API's message.
    async fn exchange(
        &self,
        method: http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<Bytes> {
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.authority)
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(payload)))?;
        let resp = self.send(req).await.with_context(|| format!("cannot reach the admin API at {}", self.endpoint))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            bail!("{status}: {message}");
        }
        Ok(bytes)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<Option<T>> {
        let bytes = self.exchange(method, path, body).await?;
        if bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_json::from_slice(&bytes).context("the admin API answered with unexpected JSON")?))
    }

    pub async fn create_key(&self, name: &str, expires: Option<&str>) -> anyhow::Result<KeyView> {
        let body = serde_json::json!({ "name": name, "expires": expires });
        self.call(http::Method::POST, "/admin/v1/keys", Some(body)).await?.context("empty answer")
    }

    /// `status`: active or inactive; `expires`: RFC 3339 or `never`; `None` leaves each as it is.
    pub async fn update_key(&self, id: &str, status: Option<&str>, expires: Option<&str>) -> anyhow::Result<KeyView> {
        let body = serde_json::json!({ "status": status, "expires": expires });
        self.call(http::Method::PATCH, &format!("/admin/v1/keys/{id}"), Some(body)).await?.context("empty answer")
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

    /// A GET answered with text (a report), returned as is.
    pub async fn text(&self, path: &str) -> anyhow::Result<String> {
        let bytes = self.exchange(http::Method::GET, path, None).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Any admin call answered with JSON.
    pub async fn json(
        &self,
        method: http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        Ok(self.call(method, path, body).await?.unwrap_or_default())
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
    println!("{:<22} {:<26} {:<9} {:<26} NAME", "ACCESS KEY", "CREATED", "STATUS", "EXPIRES");
    for k in keys {
        let expires = k.expires.as_deref().unwrap_or("never");
        println!("{:<22} {:<26} {:<9} {:<26} {}", k.access_key_id, k.created, k.status, expires, k.name);
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

/// The admin API's client: the server's TLS policy, speaking HTTP/1.1.
fn client_config(ca_cert: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut config =
        crate::tls::client_config(ca_cert).context("the admin client's TLS (--ca-cert, COFFRE_CA_CERT)")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
