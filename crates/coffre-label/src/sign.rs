//! Signing and offline verification of a report: a JSON file holding the report and a detached
//! JWS (RFC 7515 appendix F, EdDSA) over the report's canonical serialization.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64_simd::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};

use crate::error::LabelError;
use crate::report::Report;

/// The JWS `typ` of a signed label.
pub const JWS_TYPE: &str = "coffre-label+json";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedFile {
    report: Report,
    signature: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    kid: String,
    typ: String,
}

impl Header {
    fn for_key(public_key: &[u8]) -> Header {
        Header { alg: "EdDSA".into(), kid: format!("ed25519:{}", hex(public_key)), typ: JWS_TYPE.into() }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, LabelError> {
    serde_json::to_vec(value).map_err(|e| LabelError::Malformed(e.to_string()))
}

fn canonical_file(file: &SignedFile) -> Result<String, LabelError> {
    let text = serde_json::to_string_pretty(file).map_err(|e| LabelError::Malformed(e.to_string()))?;
    Ok(text + "\n")
}

/// RFC 7515 §5.1: ASCII(BASE64URL(header)) || '.' || BASE64URL(payload).
fn signing_input(protected: &str, payload: &[u8]) -> Vec<u8> {
    format!("{protected}.{}", B64.encode_to_string(payload)).into_bytes()
}

/// Base64url that re-encodes to itself: unused trailing bits must be zero, or two spellings
/// of one signature would both verify.
fn strict_b64(text: &str) -> Result<Vec<u8>, LabelError> {
    let bytes = B64.decode_to_vec(text).map_err(|_| LabelError::Malformed("signature is not base64url".into()))?;
    if B64.encode_to_string(&bytes) != text {
        return Err(LabelError::Malformed("signature is not canonical base64url".into()));
    }
    Ok(bytes)
}

/// Signs `report` with the deployment's Ed25519 key (PKCS#8); returns the file contents to write.
///
/// The file is `serde_json::to_string_pretty` of `{"report": {…}, "signature": "<header>..<sig>"}`
/// plus a newline. The JWS protected header is `{"alg":"EdDSA","kid":"ed25519:<hex public
/// key>","typ":"coffre-label+json"}`; the detached payload is the compact `serde_json`
/// serialization of the report, fields in declaration order. [`verify`] re-serializes what it
/// parsed and refuses a file that differs from that canonical form, so one changed byte fails.
pub fn sign(report: &Report, pkcs8_ed25519: &[u8]) -> Result<String, LabelError> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8_ed25519).map_err(|_| LabelError::BadPrivateKey)?;
    let protected = B64.encode_to_string(json(&Header::for_key(pair.public_key().as_ref()))?);
    let signature = pair.sign(&signing_input(&protected, &json(report)?));
    let signature = format!("{protected}..{}", B64.encode_to_string(signature.as_ref()));
    canonical_file(&SignedFile { report: report.clone(), signature })
}

/// Checks a signed file offline against the raw 32-byte Ed25519 public key; returns its report.
pub fn verify(signed: &str, public_key_raw32: &[u8]) -> Result<Report, LabelError> {
    if public_key_raw32.len() != 32 {
        return Err(LabelError::BadSignature("the public key is not 32 bytes".into()));
    }
    let file: SignedFile = serde_json::from_str(signed).map_err(|e| LabelError::Malformed(e.to_string()))?;
    if canonical_file(&file)? != signed {
        return Err(LabelError::Malformed("not in canonical form (edited after signing?)".into()));
    }
    let (protected, signature) =
        file.signature.split_once("..").ok_or_else(|| LabelError::Malformed("not a detached JWS".into()))?;
    let header: Header = serde_json::from_slice(&strict_b64(protected)?)
        .map_err(|_| LabelError::Malformed("the JWS header is not ours".into()))?;
    if header != Header::for_key(public_key_raw32) {
        return Err(LabelError::BadSignature(format!(
            "signed as {} {} {}, not with this key",
            header.alg, header.kid, header.typ
        )));
    }
    let input = signing_input(protected, &json(&file.report)?);
    UnparsedPublicKey::new(&ED25519, public_key_raw32)
        .verify(&input, &strict_b64(signature)?)
        .map_err(|_| LabelError::BadSignature("the report or the signature was changed".into()))?;
    Ok(file.report)
}
