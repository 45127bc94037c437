//! Bucket residency policies (allowed jurisdictions, replica and site counts, operators, qualifications)
//! and their checks: of a policy against the topology, of one target, and of an existing replica set.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::topology::{Target, TargetId, Topology};

/// The most replicas a policy may ask for.
pub const MAX_REPLICAS: u8 = 16;

/// Where a bucket's objects may be stored and how many copies they get.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ResidencyPolicy {
    /// Jurisdiction names (country codes, `EU`, `EEA`, user sets); empty means anywhere.
    pub allow: Vec<String>,
    pub replicas: u8,
    pub distinct_sites: u8,
    /// Operator ids; empty means any operator.
    #[serde(default)]
    pub operators: Vec<String>,
    /// Qualifications every replica's operator must hold unexpired.
    #[serde(default)]
    pub require_qualifications: Vec<String>,
}

impl ResidencyPolicy {
    /// Anywhere, one replica: the default.
    pub fn single() -> ResidencyPolicy {
        ResidencyPolicy {
            allow: Vec::new(),
            replicas: 1,
            distinct_sites: 1,
            operators: Vec::new(),
            require_qualifications: Vec::new(),
        }
    }
}

impl Default for ResidencyPolicy {
    fn default() -> Self {
        ResidencyPolicy::single()
    }
}

/// A policy that cannot apply to this topology, whatever the targets' state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("replicas: {0} is out of range (expected 1 to {MAX_REPLICAS})")]
    Replicas(u8),
    #[error("distinct_sites: {sites} is out of range (expected 1 to replicas, {replicas})")]
    DistinctSites { sites: u8, replicas: u8 },
    #[error(
        "allow: unknown jurisdiction {0:?} (expected a country code such as FR, EU, EEA or a name from [jurisdictions])"
    )]
    UnknownJurisdiction(String),
    #[error("operators: unknown operator {0:?} (not declared in [[operators]])")]
    UnknownOperator(String),
    /// Wider than the operator's `[residency]` (`bound.rs`): every way, one sentence each.
    #[error("wider than the operator's [residency]: {}", .0.join("; "))]
    Wider(Vec<String>),
}

impl Topology {
    pub fn check_policy(&self, policy: &ResidencyPolicy) -> Result<(), PolicyError> {
        if !(1..=MAX_REPLICAS).contains(&policy.replicas) {
            return Err(PolicyError::Replicas(policy.replicas));
        }
        if !(1..=policy.replicas).contains(&policy.distinct_sites) {
            return Err(PolicyError::DistinctSites { sites: policy.distinct_sites, replicas: policy.replicas });
        }
        if let Some(name) = policy.allow.iter().find(|name| self.jurisdiction(name).is_none()) {
            return Err(PolicyError::UnknownJurisdiction(name.clone()));
        }
        let known = |id: &&String| self.operators.keys().any(|known| &known.0 == *id);
        if let Some(id) = policy.operators.iter().find(|id| !known(id)) {
            return Err(PolicyError::UnknownOperator(id.clone()));
        }
        Ok(())
    }

    /// Whether `policy` lets `target` hold a replica on `today`.
    pub fn allows(&self, policy: &ResidencyPolicy, target: &Target, today: Date) -> bool {
        self.refusal(policy, target, today).is_none()
    }

    /// The targets `policy` allows on `today`, in declaration order.
    pub fn eligible(&self, policy: &ResidencyPolicy, today: Date) -> Vec<&Target> {
        self.targets.iter().filter(|target| self.allows(policy, target, today)).collect()
    }

    /// Whether existing `replicas` meet `policy`; if not, every reason, one sentence each.
    ///
    /// Only replicas the policy allows count towards the replica and site numbers.
    pub fn satisfies(&self, policy: &ResidencyPolicy, replicas: &[TargetId], today: Date) -> Result<(), Vec<String>> {
        let mut reasons: Vec<String> = self.check_policy(policy).err().map(|e| e.to_string()).into_iter().collect();
        let mut counted = BTreeSet::new();
        let mut sites = BTreeSet::new();
        for id in replicas {
            let Some(target) = self.target(id) else {
                reasons.push(format!("target {id} is not in the topology"));
                continue;
            };
            match self.refusal(policy, target, today) {
                Some(reason) => reasons.push(reason),
                None => {
                    counted.insert(id);
                    sites.insert(target.site.as_str());
                }
            }
        }
        if counted.len() < usize::from(policy.replicas) {
            reasons.push(format!("{} replicas, policy needs {}", counted.len(), policy.replicas));
        }
        if sites.len() < usize::from(policy.distinct_sites) {
            reasons.push(format!("replicas on {} distinct sites, policy needs {}", sites.len(), policy.distinct_sites));
        }
        if reasons.is_empty() { Ok(()) } else { Err(reasons) }
    }

    /// Why `policy` refuses `target`, or `None` when it allows it.
    fn refusal(&self, policy: &ResidencyPolicy, target: &Target, today: Date) -> Option<String> {
        let inside =
            |name: &String| self.jurisdiction(name).is_some_and(|countries| countries.contains(&target.country));
        if !policy.allow.is_empty() && !policy.allow.iter().any(inside) {
            let allowed = policy.allow.join(", ");
            return Some(format!("replica on {} ({}) is outside {allowed}", target.id, target.country));
        }
        if !policy.operators.is_empty() && !policy.operators.contains(&target.operator.0) {
            let listed = policy.operators.join(", ");
            return Some(format!("replica on {} is run by {}, not by {listed}", target.id, target.operator));
        }
        let operator = self.operator(&target.operator);
        let missing = policy.require_qualifications.iter().find(|q| !operator.is_some_and(|op| op.qualified(q, today)));
        missing.map(|q| {
            format!("replica on {}: operator {} holds no unexpired {q} qualification", target.id, target.operator)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::date;

    pub(crate) const TODAY: Date = date!(2026 - 06 - 01);

    /// Five targets: three French sites, one German, one American; `fr-a` has capacity `fr_a_capacity`.
    pub(crate) fn fixture(fr_a_capacity: u64) -> Topology {
        fixture_with(fr_a_capacity, &[])
    }

    /// [`fixture`] plus `extra` targets, as (id, country, site, operator, capacity).
    pub(crate) fn fixture_with(fr_a_capacity: u64, extra: &[(&str, &str, &str, &str, u64)]) -> Topology {
        let mut text = String::from(
            r#"
            [[operators]]
            id = "op-fr"
            name = "Exemple Cloud SAS"
            country = "FR"
            qualifications = [{ name = "secnumcloud", expires = "2027-12-31" }]
            [[operators]]
            id = "op-de"
            name = "Beispiel GmbH"
            country = "DE"
            qualifications = [{ name = "secnumcloud", expires = "2025-01-01" }]
            [[operators]]
            id = "op-us"
            name = "Example Inc."
            country = "US"
            "#,
        );
        let targets = [
            ("fr-a", "FR", "par-a", "op-fr", fr_a_capacity),
            ("fr-b", "FR", "par-b", "op-fr", 100),
            ("fr-c", "FR", "mrs-c", "op-fr", 100),
            ("de-1", "DE", "fra-a", "op-de", 100),
            ("us-1", "US", "nyc-a", "op-us", 100),
        ];
        for &(id, country, site, operator, capacity) in targets.iter().chain(extra) {
            text += &format!(
                "[[targets]]\nid = \"{id}\"\nkind = \"node\"\nendpoint = \"http://{id}:9000\"\ncountry = \"{country}\"\n\
                 region = \"r\"\nsite = \"{site}\"\noperator = \"{operator}\"\ncapacity = \"{capacity}\"\n"
            );
        }
        crate::config::tests::load(&text).expect("fixture is valid")
    }

    pub(crate) fn policy(allow: &[&str], replicas: u8, distinct_sites: u8) -> ResidencyPolicy {
        let allow = allow.iter().map(|name| name.to_string()).collect();
        ResidencyPolicy { allow, replicas, distinct_sites, ..ResidencyPolicy::single() }
    }

    pub(crate) fn ids(names: &[&str]) -> Vec<TargetId> {
        names.iter().map(|name| TargetId(name.to_string())).collect()
    }

    #[test]
    fn policy_json_uses_snake_case_names_and_defaults() {
        let json = serde_json::to_string(&ResidencyPolicy::single()).expect("serializes");
        assert_eq!(json, r#"{"allow":[],"replicas":1,"distinct_sites":1,"operators":[],"require_qualifications":[]}"#);
        let parsed: ResidencyPolicy =
            serde_json::from_str(r#"{"allow":["EU"],"replicas":3,"distinct_sites":2}"#).expect("parses");
        assert_eq!(parsed, policy(&["EU"], 3, 2));
    }

    #[test]
    fn check_policy_names_the_field() {
        let topology = fixture(100);
        assert_eq!(topology.check_policy(&policy(&["EU", "FR"], 3, 2)), Ok(()));
        let cases = [
            (policy(&[], 0, 1), "replicas: 0 is out of range (expected 1 to 16)"),
            (policy(&[], 17, 1), "replicas: 17"),
            (policy(&[], 2, 3), "distinct_sites: 3"),
            (policy(&[], 2, 0), "distinct_sites: 0"),
            (policy(&["EU", "MARS"], 1, 1), "allow: unknown jurisdiction \"MARS\""),
            (ResidencyPolicy { operators: vec!["op-xx".into()], ..policy(&[], 1, 1) }, "operators: unknown operator"),
        ];
        for (policy, expected) in cases {
            let message = topology.check_policy(&policy).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.starts_with(expected), "{message:?} should start with {expected:?}");
        }
    }

    #[test]
    fn allows_checks_jurisdiction_operator_and_qualification() {
        let topology = fixture(100);
        let eligible = |policy: &ResidencyPolicy, today| -> Vec<String> {
            topology.eligible(policy, today).iter().map(|t| t.id.to_string()).collect()
        };
        assert_eq!(eligible(&policy(&["EU"], 1, 1), TODAY), ["fr-a", "fr-b", "fr-c", "de-1"]);
        assert_eq!(eligible(&policy(&[], 1, 1), TODAY).len(), 5);
        let by_operator = ResidencyPolicy { operators: vec!["op-de".into(), "op-us".into()], ..policy(&[], 1, 1) };
        assert_eq!(eligible(&by_operator, TODAY), ["de-1", "us-1"]);
        let qualified = ResidencyPolicy { require_qualifications: vec!["SECNUMCLOUD".into()], ..policy(&[], 1, 1) };
        assert_eq!(eligible(&qualified, TODAY), ["fr-a", "fr-b", "fr-c"]);
        assert!(eligible(&qualified, date!(2028 - 01 - 01)).is_empty());
    }

    #[test]
    fn satisfies_gives_every_reason() {
        let topology = fixture(100);
        let fr = policy(&["FR"], 3, 2);
        assert_eq!(topology.satisfies(&fr, &ids(&["fr-a", "fr-b", "fr-c"]), TODAY), Ok(()));
        let reasons = topology.satisfies(&fr, &ids(&["de-1", "fr-a", "ghost"]), TODAY).err().unwrap_or_default();
        assert_eq!(
            reasons,
            [
                "replica on de-1 (DE) is outside FR",
                "target ghost is not in the topology",
                "1 replicas, policy needs 3",
                "replicas on 1 distinct sites, policy needs 2",
            ]
        );
        let qualified = ResidencyPolicy { require_qualifications: vec!["secnumcloud".into()], ..policy(&[], 1, 1) };
        let reasons = topology.satisfies(&qualified, &ids(&["de-1"]), TODAY).err().unwrap_or_default();
        assert_eq!(
            reasons.first().map(String::as_str),
            Some("replica on de-1: operator op-de holds no unexpired secnumcloud qualification")
        );
    }
}
