//! The crate's one error type: invalid declared facts (with their config path), invalid
//! profiles, and signing or verification failures.

/// Everything that can go wrong building facts, loading a profile, signing or verifying.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LabelError {
    /// A declared fact is invalid; `path` names it as written, e.g. `entities[1].shareholders[0].capital`.
    #[error("{path}: {problem}")]
    Declared { path: String, problem: String },
    /// A profile file does not parse or does not make sense.
    #[error("profile {name}: {problem}")]
    Profile { name: String, problem: String },
    /// The key given to [`sign`](crate::sign()) is not an Ed25519 PKCS#8 document.
    #[error("not an Ed25519 PKCS#8 private key")]
    BadPrivateKey,
    /// A signed report is malformed: not our file layout, or not in canonical form.
    #[error("malformed signed report: {0}")]
    Malformed(String),
    /// The signature does not verify with the given key.
    #[error("signature does not verify: {0}")]
    BadSignature(String),
}

impl LabelError {
    pub(crate) fn declared(path: impl Into<String>, problem: impl Into<String>) -> Self {
        LabelError::Declared { path: path.into(), problem: problem.into() }
    }

    pub(crate) fn profile(name: impl Into<String>, problem: impl Into<String>) -> Self {
        LabelError::Profile { name: name.into(), problem: problem.into() }
    }
}
