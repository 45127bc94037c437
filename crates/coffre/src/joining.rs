//! What a gateway joining a shared database must share with the others (root
//! credential, key custodian, audit signing key, cluster CA): each is recorded
//! in the database's settings at the first start and compared at every start.
//!
//! A gateway that differs in any of them would serve the deployment's data
//! wrongly (objects unreadable, heads signed by a foreign key, a second root,
//! nodes refusing it), so it refuses to start, naming what differs and what
//! to copy. Only fingerprints are recorded: an HMAC keyed by root's secret,
//! a value wrapped by the custodian, public keys and certificate digests.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use coffre_core::meta::SettingMeta;
use coffre_crypto::{KekId, Kms, KmsError};
use coffre_meta::PgMeta;
use coffre_s3::Credential;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use sha2::{Digest as _, Sha256};

const ROOT: &str = "deployment.root_fingerprint";
const CUSTODIAN: &str = "deployment.custodian_probe";
const AUDIT_KEY: &str = "deployment.audit_public_key";
const CLUSTER_CA: &str = "deployment.cluster_ca_sha256";

/// What is wrapped under the probe KEK, authenticated with this context.
const PROBE: &[u8] = b"coffre: this custodian holds the deployment's keys";
const PROBE_CONTEXT: &[u8] = b"coffre-custodian-probe-v1";

/// What this gateway brings, to be compared with what the database recorded.
pub struct Joining<'a> {
    pub root: &'a Credential,
    pub kms: &'a Arc<dyn Kms>,
    /// The audit signing key's public half, and the file it came from.
    pub audit_key: Option<(String, &'a std::path::Path)>,
    /// The cluster CA file this gateway trusts, when it has a cluster identity.
    pub cluster_ca: Option<std::path::PathBuf>,
}

/// Refuses to generate a root credential on a database that already has
/// one: the gateway would hold full power nobody else knows of.
pub async fn refuse_new_root(pg: &PgMeta) -> anyhow::Result<()> {
    if pg.setting(ROOT).await.context("reading the deployment's settings")?.is_some() {
        bail!(
            "this gateway has no root credential (neither COFFRE_ROOT_ACCESS_KEY/COFFRE_ROOT_SECRET_KEY nor \
             DATA_DIR/root.credentials), and the shared database already belongs to a deployment: set \
             COFFRE_ROOT_ACCESS_KEY and COFFRE_ROOT_SECRET_KEY to the deployment's root credential, or copy \
             root.credentials from a gateway's data dir; a gateway never makes a second root"
        );
    }
    Ok(())
}

/// Records what this gateway brings if it is the first, else compares.
pub async fn check(pg: &PgMeta, joining: Joining<'_>) -> anyhow::Result<()> {
    let root = root_fingerprint(joining.root);
    expect(pg, ROOT, &root, || {
        "the root credential (COFFRE_ROOT_ACCESS_KEY/COFFRE_ROOT_SECRET_KEY, or DATA_DIR/root.credentials) \
         differs from the deployment's: give this gateway the same root credential as the others"
            .into()
    })
    .await?;
    check_custodian(pg, joining.kms).await?;
    if let Some((key, path)) = &joining.audit_key {
        expect(pg, AUDIT_KEY, key, || {
            format!(
                "the audit signing key ({}, [audit] signing_key) differs from the deployment's: copy the \
                 deployment's signing key file there, or point [audit] signing_key at it",
                path.display()
            )
        })
        .await?;
    }
    if let Some(ca) = &joining.cluster_ca {
        let digest = ca_fingerprint(ca)?;
        expect(pg, CLUSTER_CA, &digest, || {
            format!(
                "the cluster CA ({}, from [cluster] identity) differs from the deployment's: issue this \
                 gateway's identity from the deployment's CA (`coffre cluster issue --gateway NAME` where its \
                 ca directory is)",
                ca.display()
            )
        })
        .await?;
    }
    Ok(())
}

/// The recorded value of `name`, recorded as `mine` if absent; a mismatch
/// stops the start with `why`.
async fn expect(pg: &PgMeta, name: &str, mine: &str, why: impl FnOnce() -> String) -> anyhow::Result<()> {
    let recorded = pg.put_setting_if_absent(name, mine).await.context("recording the deployment's settings")?;
    if recorded != mine {
        bail!("this gateway does not match the deployment on the shared database: {}", why());
    }
    Ok(())
}

/// HMAC-SHA256 keyed by root's secret over its access key: it proves the
/// pair without letting a database reader recover or test the secret.
fn root_fingerprint(root: &Credential) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, root.secret.as_bytes());
    let message = format!("coffre-root-fingerprint-v1:{}", root.access_key);
    format!("hmac-sha256:{}", hex(aws_lc_rs::hmac::sign(&key, message.as_bytes()).as_ref()))
}

fn ca_fingerprint(path: &std::path::Path) -> anyhow::Result<String> {
    let pem = std::fs::read(path).with_context(|| format!("reading the cluster CA {}", path.display()))?;
    let cert = CertificateDer::pem_slice_iter(&pem)
        .next()
        .with_context(|| format!("{}: no CERTIFICATE block", path.display()))?
        .with_context(|| format!("parsing {}", path.display()))?;
    Ok(format!("sha256:{}", hex(&Sha256::digest(cert.as_ref()))))
}

/// The first gateway wraps a known value under a KEK of its custodian and
/// records it; every gateway must unwrap it, which only the same custodian
/// (the same master key, token or KMIP server) can.
/// A custodian that does not answer is not judged: the gateway starts and
/// answers 503 naming the custodian until it does, as it would have had the
/// outage begun a minute later.
async fn check_custodian(pg: &PgMeta, kms: &Arc<dyn Kms>) -> anyhow::Result<()> {
    let recorded = match pg.setting(CUSTODIAN).await.context("reading the deployment's settings")? {
        Some(recorded) => recorded,
        None => match record_probe(pg, kms).await? {
            Some(recorded) => recorded,
            None => return Ok(()),
        },
    };
    let (kek, wrapped) = parse_probe(&recorded)?;
    let fix = "point this gateway at the deployment's key custodian: the same [kms] section, and with the \
               embedded custodian the directory the other gateways use ([kms] dir, shared, or a copy of its \
               master.key and KEK files)";
    match kms.unwrap(&kek, &wrapped, PROBE_CONTEXT).await {
        Ok(plain) if plain.as_slice() == PROBE => Ok(()),
        Ok(_) | Err(KmsError::NoSuchKey(_) | KmsError::Integrity) => bail!(
            "this gateway does not match the deployment on the shared database: its key custodian ({}) does not \
             hold the deployment's keys: {fix}",
            kms.custody()
        ),
        Err(e) => unchecked(kms, &e),
    }
}

fn unchecked(kms: &Arc<dyn Kms>, e: &KmsError) -> anyhow::Result<()> {
    tracing::warn!(custody = %kms.custody(), error = %e, "the key custodian did not answer: not yet checked against the deployment's");
    Ok(())
}

/// The probe this gateway wraps, recorded unless another gateway's was
/// first: the recorded one, or `None` when the custodian did not answer.
async fn record_probe(pg: &PgMeta, kms: &Arc<dyn Kms>) -> anyhow::Result<Option<String>> {
    let made = async {
        let kek = kms.create_kek("coffre deployment probe").await?;
        let wrapped = kms.wrap(&kek, PROBE, PROBE_CONTEXT).await?;
        Ok::<_, KmsError>((kek, wrapped))
    };
    let (kek, wrapped) = match made.await {
        Ok(made) => made,
        Err(e) => {
            unchecked(kms, &e)?;
            return Ok(None);
        }
    };
    let mine = format!("{}:{}", kek.0, hex(&wrapped));
    let recorded = pg.put_setting_if_absent(CUSTODIAN, &mine).await.context("recording the custodian's probe")?;
    if recorded != mine {
        // Another gateway recorded first: this probe key was never used.
        let _ = kms.destroy_kek(&kek).await;
    }
    Ok(Some(recorded))
}

fn parse_probe(recorded: &str) -> anyhow::Result<(KekId, Vec<u8>)> {
    let bad = || anyhow::anyhow!("the database's setting {CUSTODIAN} is not KEK_ID:HEX");
    let (kek, wrapped) = recorded.rsplit_once(':').ok_or_else(bad)?;
    Ok((KekId(kek.to_owned()), unhex(wrapped).ok_or_else(bad)?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(access: &str, secret: &str) -> Credential {
        let access_key = coffre_core::types::AccessKeyId::parse(access).expect("id");
        Credential { access_key, secret: secret.into() }
    }

    #[test]
    fn the_root_fingerprint_depends_on_both_halves_and_hides_the_secret() {
        let secret = "a-root-secret-of-at-least-32-characters";
        let a = root_fingerprint(&credential("ROOTA", secret));
        assert_ne!(a, root_fingerprint(&credential("ROOTB", secret)));
        assert_ne!(a, root_fingerprint(&credential("ROOTA", "another-root-secret-of-32-characters")));
        assert_eq!(a, root_fingerprint(&credential("ROOTA", secret)));
        assert!(!a.contains(secret) && a.starts_with("hmac-sha256:"));
    }

    #[test]
    fn probes_round_trip_and_bad_ones_are_refused() {
        let (kek, wrapped) = parse_probe(&format!("kek-1:{}", hex(&[0, 1, 0xfe]))).expect("probe");
        assert_eq!((kek.0.as_str(), wrapped.as_slice()), ("kek-1", [0u8, 1, 0xfe].as_slice()));
        assert!(parse_probe("kek-1:abc").is_err());
        assert!(parse_probe("no-separator").is_err());
        assert!(parse_probe("kek:zz").is_err());
    }
}
