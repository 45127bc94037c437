//! The validated deployment: operators, storage targets and jurisdictions,
//! built by [`Topology::from_raw`](crate::Topology::from_raw) and read by policy checks and placement.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::country::{BUILTIN, Country};

/// A storage target's identifier, unique in the topology.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TargetId(pub String);

/// An operator's identifier, unique in the topology.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OperatorId(pub String);

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A company running storage targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Operator {
    pub id: OperatorId,
    pub name: String,
    pub country: Country,
    /// Percent of ownership by jurisdiction (a country code or jurisdiction name).
    pub ownership: BTreeMap<String, f64>,
    pub qualifications: Vec<Qualification>,
}

/// A certification held by an operator, e.g. `secnumcloud`, valid through `expires`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qualification {
    pub name: String,
    pub expires: Date,
}

impl Operator {
    /// Whether the operator holds `name` (case-insensitive) on `today`; the expiry day itself still counts.
    pub fn qualified(&self, name: &str, today: Date) -> bool {
        self.qualifications.iter().any(|q| q.name.eq_ignore_ascii_case(name) && today <= q.expires)
    }
}

/// Where object bytes can be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub id: TargetId,
    pub kind: TargetKind,
    pub endpoint: String,
    pub country: Country,
    pub region: String,
    pub site: String,
    pub operator: OperatorId,
    /// Bytes; always above zero, and the target's placement weight.
    pub capacity: u64,
}

impl Target {
    /// `country/region/site`, e.g. `FR/paris/par-a`.
    pub fn location(&self) -> String {
        format!("{}/{}/{}", self.country, self.region, self.site)
    }
}

/// A Coffre storage node, or a bucket on a remote S3 service.
#[derive(Clone, PartialEq, Eq)]
pub enum TargetKind {
    Node,
    S3 { bucket: String, access_key: String, secret_key: String, region: String },
}

// Written by hand so that logging a target never leaks its S3 secret key.
impl fmt::Debug for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetKind::Node => f.write_str("Node"),
            TargetKind::S3 { bucket, access_key, secret_key: _, region } => f
                .debug_struct("S3")
                .field("bucket", bucket)
                .field("access_key", access_key)
                .field("secret_key", &"<redacted>")
                .field("region", region)
                .finish(),
        }
    }
}

/// A validated deployment.
#[derive(Clone, Debug, Default)]
pub struct Topology {
    pub(crate) operators: BTreeMap<OperatorId, Operator>,
    /// In declaration order.
    pub(crate) targets: Vec<Target>,
    /// User-declared jurisdictions, expanded to countries.
    pub(crate) jurisdictions: BTreeMap<String, BTreeSet<Country>>,
}

impl Topology {
    /// No operators and no targets: the default single-node deployment.
    pub fn empty() -> Topology {
        Topology::default()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// All targets, in declaration order.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    pub fn target(&self, id: &TargetId) -> Option<&Target> {
        self.targets.iter().find(|target| &target.id == id)
    }

    pub fn operators(&self) -> impl Iterator<Item = &Operator> {
        self.operators.values()
    }

    pub fn operator(&self, id: &OperatorId) -> Option<&Operator> {
        self.operators.get(id)
    }

    /// The countries a jurisdiction name stands for: a user set, `EU`, `EEA` or a country code.
    pub fn jurisdiction(&self, name: &str) -> Option<&BTreeSet<Country>> {
        self.jurisdictions.get(name).or_else(|| BUILTIN.get(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn qualification_is_case_insensitive_and_valid_through_expiry() {
        let operator = Operator {
            id: OperatorId("op".into()),
            name: "Op".into(),
            country: Country::try_from("FR".to_owned()).expect("FR is a country"),
            ownership: BTreeMap::new(),
            qualifications: vec![Qualification { name: "SecNumCloud".into(), expires: date!(2027 - 12 - 31) }],
        };
        assert!(operator.qualified("secnumcloud", date!(2027 - 12 - 31)));
        assert!(!operator.qualified("secnumcloud", date!(2028 - 01 - 01)));
        assert!(!operator.qualified("hds", date!(2026 - 01 - 01)));
    }

    #[test]
    fn s3_debug_redacts_the_secret() {
        let kind = TargetKind::S3 {
            bucket: "b".into(),
            access_key: "AKIA".into(),
            secret_key: "hunter2".into(),
            region: "us-east-1".into(),
        };
        let shown = format!("{kind:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("AKIA") && shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn empty_topology_still_knows_builtin_jurisdictions() {
        let topology = Topology::empty();
        assert!(topology.is_empty());
        let fr = Country::try_from("FR".to_owned()).expect("FR is a country");
        assert!(topology.jurisdiction("EU").is_some_and(|eu| eu.contains(&fr)));
        assert_eq!(topology.jurisdiction("FR").map(|set| set.len()), Some(1));
        assert!(topology.jurisdiction("fr").is_none());
    }
}
