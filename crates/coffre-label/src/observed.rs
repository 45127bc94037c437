//! Observed facts: what the running deployment reports about itself (placement, replicas,
//! encryption, keys, TLS, audit log), filled by the binary; plus [`Facts`], everything a rule reads.

use coffre_topology::Topology;
use serde::{Deserialize, Serialize};

use crate::declared::DeclaredFacts;

/// A storage target as the running server knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedTarget {
    pub id: String,
    pub country: String,
    pub region: String,
    pub site: String,
    pub operator: String,
}

/// A bucket, its residency policy and whether it has a key of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedBucket {
    pub name: String,
    /// Country codes the policy allows; `None` when the bucket has no policy.
    pub allowed_countries: Option<Vec<String>>,
    pub has_own_key: bool,
}

/// One replica of one object, where it is actually stored. A server without targets reports
/// none: rules reading replicas then give UNKNOWN while objects exist.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedReplica {
    pub bucket: String,
    pub key: String,
    pub target: String,
    pub country: String,
}

/// One listener's TLS settings as enforced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedListener {
    /// `s3` or `admin`.
    pub name: String,
    pub tls: bool,
    /// e.g. `TLSv1.2`, `TLSv1_3`.
    pub versions: Vec<String>,
    /// IANA or rustls names, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub suites: Vec<String>,
    /// e.g. `X25519`, `secp256r1`.
    pub groups: Vec<String>,
}

/// What the binary read from the running deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedFacts {
    pub targets: Vec<ObservedTarget>,
    pub buckets: Vec<ObservedBucket>,
    pub replicas: Vec<ObservedReplica>,
    pub objects_total: u64,
    pub objects_encrypted: u64,
    /// e.g. `AES-256-GCM`; empty when unknown.
    pub encryption_algorithm: String,
    /// `embedded`, `pkcs11` or `kmip`; empty when unknown.
    pub kms_custody: String,
    pub listeners: Vec<ObservedListener>,
    /// `None` when the log was not checked.
    pub audit_log_verifies: Option<bool>,
    pub audit_retention_days: Option<u64>,
    pub sse_c_offered: bool,
}

/// Everything an evaluation reads.
#[derive(Clone, Debug)]
pub struct Facts {
    pub declared: DeclaredFacts,
    pub observed: ObservedFacts,
    pub topology: Topology,
}
