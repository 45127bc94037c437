//! The KMIP custodian: KEKs live in an external key manager that Coffre
//! reaches over KMIP 1.4 (binary TTLV) in mutual TLS, and wraps data keys there.
//!
//! Key material: each KEK is an AES-256 key created by the KMIP server, kept
//! in its store and never sent out (Coffre never issues Get); only the client
//! identity named by Coffre's client certificate may use it, for Encrypt and
//! Decrypt only. A data key crosses the TLS tunnel in the clear on every wrap
//! and unwrap, so the server, and whoever holds its TLS key, sees data keys
//! as they pass; Coffre keeps only the wrapped form (see [`wrapped`]).
//!
//! Wrapping is AES-256-GCM done by the server, with an IV chosen here and the
//! caller's context as additional authenticated data, so the server checks
//! integrity on unwrap. PyKMIP answers a failed GCM check with a bare
//! "General Failure", so on Decrypt that reason, like "Cryptographic
//! Failure", is reported as [`KmsError::Integrity`]; the server's words go to
//! the log.

mod message;
mod spec;
mod transport;
mod ttlv;
pub mod wrapped;

use std::path::PathBuf;

use async_trait::async_trait;
use zeroize::Zeroizing;

use coffre_crypto::kms::{Custody, KekId, Kms, KmsError, KmsResult, KmsStatus, MAX_WRAP_INPUT};
use message::{Failure, GCM_TAG_LEN, Outcome, Request};
use spec::{reason, tag};
use transport::{Endpoint, Transport};
use ttlv::Item;

pub use transport::{CONNECT_TIMEOUT, REQUEST_TIMEOUT};

/// Where the KMIP server is and how Coffre proves who it is.
#[derive(Debug, Clone)]
pub struct KmipConfig {
    /// `host:port`; KMIP's registered port is 5696.
    pub addr: String,
    /// The name the server's certificate must carry (DNS name or IP address).
    pub server_name: String,
    /// PEM: the CA that signed the server's certificate; the only one trusted.
    pub ca_cert: PathBuf,
    /// PEM: Coffre's client certificate (chain), with clientAuth usage.
    pub client_cert: PathBuf,
    /// PEM: the client certificate's private key.
    pub client_key: PathBuf,
}

pub struct KmipKms {
    transport: Transport,
    server_name: String,
    /// What the server said about itself when Coffre connected.
    vendor: String,
}

impl KmipKms {
    /// Loads the certificates and checks the server answers a KMIP request
    /// (a Query) over mutual TLS, so bad settings show at startup.
    pub async fn connect(config: KmipConfig) -> KmsResult<Self> {
        let endpoint = Endpoint {
            addr: &config.addr,
            server_name: &config.server_name,
            ca_cert: &config.ca_cert,
            client_cert: &config.client_cert,
            client_key: &config.client_key,
        };
        let transport =
            Transport::new(&endpoint).map_err(|e| KmsError::Other(format!("KMIP server {}: {e}", config.addr)))?;
        let mut kms = Self { transport, server_name: config.server_name, vendor: String::new() };
        kms.vendor = kms.query_vendor().await?;
        Ok(kms)
    }

    async fn query_vendor(&self) -> KmsResult<String> {
        let payload = self.call_ok(Request::query_server_information(), None).await?;
        let vendor = payload.as_ref().and_then(|p| p.child(tag::VENDOR_IDENTIFICATION)).map(Item::as_text);
        Ok(match vendor {
            Some(Ok(name)) => name.to_owned(),
            _ => "unnamed KMIP server".to_owned(),
        })
    }

    /// Sends one request: network trouble is `Unavailable`, nonsense `Other`.
    async fn call(&self, request: Request) -> KmsResult<Outcome> {
        let op = request.op;
        let bytes = request.encode().map_err(|e| self.other(format!("encoding {}: {e}", op.name())))?;
        let response = self.transport.round_trip(&bytes).await.map_err(|e| KmsError::Unavailable(e.to_string()))?;
        message::decode_response(op, &response).map_err(|e| self.other(e.to_string()))
    }

    /// Like [`Self::call`], with the server's refusals as errors: "Item Not
    /// Found" is `NoSuchKey` when the request was about `kek`.
    async fn call_ok(&self, request: Request, kek: Option<&KekId>) -> KmsResult<Option<Item>> {
        match self.call(request).await? {
            Outcome::Success(payload) => Ok(payload),
            Outcome::Failure(failure) => Err(self.refused(failure, kek)),
        }
    }

    fn refused(&self, failure: Failure, kek: Option<&KekId>) -> KmsError {
        match kek {
            Some(kek) if failure.has_reason(reason::ITEM_NOT_FOUND) => KmsError::NoSuchKey(kek.clone()),
            _ => self.other(failure.to_string()),
        }
    }

    fn other(&self, detail: String) -> KmsError {
        KmsError::Other(format!("KMIP server {}: {detail}", self.transport.addr()))
    }

    /// A child the server must have sent in a successful response.
    fn required<'a>(&self, payload: Option<&'a Item>, child: ttlv::Tag, what: &'static str) -> KmsResult<&'a Item> {
        payload
            .and_then(|p| p.child(child))
            .ok_or_else(|| self.other(format!("malformed response: no {what} in the payload")))
    }

    async fn destroy_created(&self, kek: &KekId) {
        if let Err(e) = self.call_ok(Request::destroy(&kek.0), Some(kek)).await {
            tracing::warn!(kek = %kek, error = %e, "KMIP: could not destroy a key whose activation failed");
        }
    }

    /// Revokes the key if it is still active, so that Destroy is allowed.
    /// `false` if the key does not exist.
    async fn revoke(&self, kek: &KekId) -> KmsResult<bool> {
        match self.call(Request::revoke(&kek.0)).await? {
            Outcome::Success(_) => Ok(true),
            Outcome::Failure(f) if f.has_reason(reason::ITEM_NOT_FOUND) => Ok(false),
            // Not active: never activated, or revoked by an earlier destroy
            // that stopped halfway. Destroy is allowed either way.
            Outcome::Failure(f)
                if f.has_reason(reason::ILLEGAL_OPERATION) || f.has_reason(reason::PERMISSION_DENIED) =>
            {
                tracing::debug!(kek = %kek, reason = %f, "KMIP: key not revoked, destroying it anyway");
                Ok(true)
            }
            Outcome::Failure(f) => Err(self.refused(f, Some(kek))),
        }
    }

    /// Wraps and unwraps a random secret under a throwaway key.
    async fn probe(&self) -> KmsResult<()> {
        let kek = self.create_kek("coffre kms status probe").await?;
        let result = self.probe_with(&kek).await;
        let destroyed = self.destroy_kek(&kek).await;
        result.and(destroyed)
    }

    async fn probe_with(&self, kek: &KekId) -> KmsResult<()> {
        let mut secret = Zeroizing::new([0u8; 32]);
        random(&mut secret[..])?;
        let wrapped = self.wrap(kek, &secret[..], b"status probe").await?;
        let unwrapped = self.unwrap(kek, &wrapped, b"status probe").await?;
        if unwrapped[..] != secret[..] {
            return Err(self.other("status probe: unwrap did not give back the wrapped secret".into()));
        }
        Ok(())
    }
}

fn random(buf: &mut [u8]) -> KmsResult<()> {
    aws_lc_rs::rand::fill(buf).map_err(|_| KmsError::Other("the system random generator failed".into()))
}

fn check_kek(kek: &KekId) -> KmsResult<()> {
    // An empty identifier means "the object of the previous batch item" to
    // some servers: never send one.
    if kek.0.is_empty() { Err(KmsError::NoSuchKey(kek.clone())) } else { Ok(()) }
}

#[async_trait]
impl Kms for KmipKms {
    fn custody(&self) -> Custody {
        Custody::Kmip
    }

    async fn create_kek(&self, label: &str) -> KmsResult<KekId> {
        let payload = self.call_ok(Request::create_aes256(label), None).await?;
        let uid = self.required(payload.as_ref(), tag::UNIQUE_IDENTIFIER, "Unique Identifier")?;
        let kek = KekId(uid.as_text().map_err(|e| self.other(format!("Create: {e}")))?.to_owned());
        check_kek(&kek).map_err(|_| self.other("Create returned an empty Unique Identifier".into()))?;
        // Keys are born Pre-Active; servers refuse to encrypt with them.
        if let Err(e) = self.call_ok(Request::activate(&kek.0), Some(&kek)).await {
            self.destroy_created(&kek).await;
            return Err(e);
        }
        tracing::info!(kek = %kek, label, "KMIP: created a KEK");
        Ok(kek)
    }

    async fn wrap(&self, kek: &KekId, secret: &[u8], context: &[u8]) -> KmsResult<Vec<u8>> {
        check_kek(kek)?;
        if secret.is_empty() || secret.len() > MAX_WRAP_INPUT {
            return Err(KmsError::Other(format!(
                "a wrapped secret is 1 to {MAX_WRAP_INPUT} bytes, not {}",
                secret.len()
            )));
        }
        let mut iv = [0u8; wrapped::IV_LEN];
        random(&mut iv)?;
        let request = Request::encrypt_gcm(&kek.0, secret, &iv, &wrapped::aad(context));
        let payload = self.call_ok(request, Some(kek)).await?;
        let ciphertext = self.required(payload.as_ref(), tag::DATA, "Data")?;
        let gcm_tag =
            self.required(payload.as_ref(), tag::AUTHENTICATED_ENCRYPTION_TAG, "Authenticated Encryption Tag")?;
        let bytes =
            |item: &'_ Item| item.as_bytes().map(<[u8]>::to_vec).map_err(|e| self.other(format!("Encrypt: {e}")));
        let (ciphertext, gcm_tag) = (bytes(ciphertext)?, bytes(gcm_tag)?);
        // GCM keeps the length; a server that answers otherwise, or with an
        // IV of its own, did not do what was asked.
        let server_iv = payload.as_ref().and_then(|p| p.child(tag::IV_COUNTER_NONCE)).map(Item::as_bytes);
        if ciphertext.len() != secret.len()
            || gcm_tag.len() != GCM_TAG_LEN
            || server_iv.is_some_and(|v| v != Ok(&iv[..]))
        {
            return Err(self.other("Encrypt: the server did not return AES-GCM output for the given IV".into()));
        }
        Ok(wrapped::Parts { iv: &iv, tag: &gcm_tag, ciphertext: &ciphertext }.join())
    }

    async fn unwrap(&self, kek: &KekId, wrapped: &[u8], context: &[u8]) -> KmsResult<Zeroizing<Vec<u8>>> {
        check_kek(kek)?;
        let parts = wrapped::split(wrapped).ok_or(KmsError::Integrity)?;
        let request = Request::decrypt_gcm(&kek.0, parts.ciphertext, parts.iv, &wrapped::aad(context), parts.tag);
        let payload = match self.call(request).await? {
            Outcome::Success(payload) => payload,
            Outcome::Failure(f)
                if f.has_reason(reason::CRYPTOGRAPHIC_FAILURE) || f.has_reason(reason::GENERAL_FAILURE) =>
            {
                tracing::warn!(kek = %kek, server = %f, "KMIP: a wrapped key failed authentication");
                return Err(KmsError::Integrity);
            }
            Outcome::Failure(f) => return Err(self.refused(f, Some(kek))),
        };
        let plaintext = self.required(payload.as_ref(), tag::DATA, "Data")?;
        let plaintext = plaintext.as_bytes().map_err(|e| self.other(format!("Decrypt: {e}")))?;
        if plaintext.len() != parts.ciphertext.len() {
            return Err(self.other("Decrypt: the plaintext is not the ciphertext's length".into()));
        }
        Ok(Zeroizing::new(plaintext.to_vec()))
    }

    async fn destroy_kek(&self, kek: &KekId) -> KmsResult<()> {
        if check_kek(kek).is_err() || !self.revoke(kek).await? {
            return Ok(());
        }
        match self.call(Request::destroy(&kek.0)).await? {
            Outcome::Success(_) => {
                tracing::info!(kek = %kek, "KMIP: destroyed a KEK");
                Ok(())
            }
            Outcome::Failure(f) if f.has_reason(reason::ITEM_NOT_FOUND) => Ok(()),
            Outcome::Failure(f) => Err(self.refused(f, Some(kek))),
        }
    }

    async fn status(&self) -> KmsResult<KmsStatus> {
        let vendor = self.query_vendor().await?;
        self.probe().await?;
        Ok(KmsStatus {
            custody: Custody::Kmip,
            location: format!("{} (TLS, server name {})", self.transport.addr(), self.server_name),
            detail: format!("{vendor}, KMIP {}.{}", spec::PROTOCOL_MAJOR, spec::PROTOCOL_MINOR),
        })
    }
}
