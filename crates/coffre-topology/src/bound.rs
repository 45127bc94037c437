//! The operator's `[residency]` as a bound on every other policy: a bucket's
//! policy, or what a request asks for, may narrow it and never widen it.
//!
//! Narrowing means fewer countries, more replicas or sites, fewer operators,
//! more qualifications; each way a policy fails that is named on its own.

use std::collections::BTreeSet;

use crate::country::Country;
use crate::policy::{PolicyError, ResidencyPolicy};
use crate::topology::Topology;

/// A policy as a request states it: only what it names. The rest comes from
/// the operator's bound ([`PolicyRequest::over`]), never from "anywhere".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyRequest {
    pub allow: Option<Vec<String>>,
    pub replicas: Option<u8>,
    pub distinct_sites: Option<u8>,
    pub operators: Option<Vec<String>>,
    /// Added to the bound's qualifications, which stay required.
    pub require_qualifications: Vec<String>,
}

impl PolicyRequest {
    /// The whole policy: what the request names, the bound's values elsewhere.
    pub fn over(&self, bound: &ResidencyPolicy) -> ResidencyPolicy {
        let mut qualifications = bound.require_qualifications.clone();
        for q in &self.require_qualifications {
            if !qualifications.iter().any(|have| have.eq_ignore_ascii_case(q)) {
                qualifications.push(q.clone());
            }
        }
        ResidencyPolicy {
            allow: self.allow.clone().unwrap_or_else(|| bound.allow.clone()),
            replicas: self.replicas.unwrap_or(bound.replicas),
            distinct_sites: self.distinct_sites.unwrap_or(bound.distinct_sites),
            operators: self.operators.clone().unwrap_or_else(|| bound.operators.clone()),
            require_qualifications: qualifications,
        }
    }
}

impl Topology {
    /// The policy a request asks for, completed from `bound` and checked
    /// against this topology and against `bound`.
    pub fn bucket_policy(
        &self,
        asked: &PolicyRequest,
        bound: &ResidencyPolicy,
    ) -> Result<ResidencyPolicy, PolicyError> {
        let policy = asked.over(bound);
        self.check_bounded(&policy, bound)?;
        Ok(policy)
    }

    /// Whether `policy` is a valid policy here ([`Topology::check_policy`])
    /// that stays inside `bound`: [`PolicyError::Wider`] names every way it
    /// does not.
    pub fn check_bounded(&self, policy: &ResidencyPolicy, bound: &ResidencyPolicy) -> Result<(), PolicyError> {
        self.check_policy(policy)?;
        let mut wider = self.wider_countries(policy, bound);
        if policy.replicas < bound.replicas {
            wider.push(format!("replicas: {} is fewer than the operator's {}", policy.replicas, bound.replicas));
        }
        if policy.distinct_sites < bound.distinct_sites {
            wider.push(format!(
                "distinct_sites: {} is fewer than the operator's {}",
                policy.distinct_sites, bound.distinct_sites
            ));
        }
        wider.extend(wider_operators(policy, bound));
        for q in &bound.require_qualifications {
            if !policy.require_qualifications.iter().any(|have| have.eq_ignore_ascii_case(q)) {
                wider.push(format!("require_qualifications: {q}, which the operator requires, is missing"));
            }
        }
        if wider.is_empty() { Ok(()) } else { Err(PolicyError::Wider(wider)) }
    }

    /// The countries of a list of jurisdictions; `None`: anywhere.
    fn countries(&self, allow: &[String]) -> Option<BTreeSet<Country>> {
        if allow.is_empty() {
            return None;
        }
        Some(allow.iter().filter_map(|name| self.jurisdiction(name)).flatten().copied().collect())
    }

    fn wider_countries(&self, policy: &ResidencyPolicy, bound: &ResidencyPolicy) -> Vec<String> {
        let Some(allowed) = self.countries(&bound.allow) else { return Vec::new() };
        let within = bound.allow.join(", ");
        if policy.allow.is_empty() {
            return vec![format!("allow: anywhere reaches beyond the operator's {within}")];
        }
        let mut out = Vec::new();
        for name in &policy.allow {
            let outside: Vec<&str> = self
                .countries(std::slice::from_ref(name))
                .unwrap_or_default()
                .difference(&allowed)
                .map(|c| c.as_str())
                .collect();
            if !outside.is_empty() {
                out.push(format!("allow: {name} reaches beyond the operator's {within} ({})", outside.join(", ")));
            }
        }
        out
    }
}

fn wider_operators(policy: &ResidencyPolicy, bound: &ResidencyPolicy) -> Vec<String> {
    if bound.operators.is_empty() {
        return Vec::new();
    }
    let within = bound.operators.join(", ");
    if policy.operators.is_empty() {
        return vec![format!("operators: any operator reaches beyond the operator's {within}")];
    }
    policy
        .operators
        .iter()
        .filter(|id| !bound.operators.contains(id))
        .map(|id| format!("operators: {id} is not among the operator's {within}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::{fixture, policy};

    fn bound() -> ResidencyPolicy {
        ResidencyPolicy {
            operators: vec!["op-fr".into(), "op-de".into()],
            require_qualifications: vec!["secnumcloud".into()],
            ..policy(&["EU"], 2, 2)
        }
    }

    fn wider(asked: PolicyRequest) -> Vec<String> {
        match fixture(100).bucket_policy(&asked, &bound()) {
            Err(PolicyError::Wider(why)) => why,
            other => panic!("expected a widening, got {other:?}"),
        }
    }

    #[test]
    fn a_request_starts_from_the_bound_not_from_anywhere() {
        let topology = fixture(100);
        let narrowed = PolicyRequest { allow: Some(vec!["FR".into()]), replicas: Some(3), ..Default::default() };
        let got = topology.bucket_policy(&narrowed, &bound()).expect("narrower");
        assert_eq!(got, ResidencyPolicy { allow: vec!["FR".into()], replicas: 3, ..bound() });
        assert_eq!(topology.bucket_policy(&PolicyRequest::default(), &bound()), Ok(bound()));
        let more = PolicyRequest { require_qualifications: vec!["hds".into()], ..Default::default() };
        let got = topology.bucket_policy(&more, &bound()).expect("one more qualification");
        assert_eq!(got.require_qualifications, ["secnumcloud", "hds"]);
    }

    #[test]
    fn every_widening_is_named() {
        let anywhere = PolicyRequest { allow: Some(vec![]), ..Default::default() };
        assert_eq!(wider(anywhere), ["allow: anywhere reaches beyond the operator's EU"]);
        let us = PolicyRequest { allow: Some(vec!["FR".into(), "US".into()]), ..Default::default() };
        assert_eq!(wider(us), ["allow: US reaches beyond the operator's EU (US)"]);
        let fewer = PolicyRequest { replicas: Some(1), distinct_sites: Some(1), ..Default::default() };
        assert_eq!(
            wider(fewer),
            ["replicas: 1 is fewer than the operator's 2", "distinct_sites: 1 is fewer than the operator's 2"]
        );
        let operators = PolicyRequest { operators: Some(vec!["op-us".into()]), ..Default::default() };
        assert_eq!(wider(operators), ["operators: op-us is not among the operator's op-fr, op-de"]);
        let any = PolicyRequest { operators: Some(vec![]), ..Default::default() };
        assert_eq!(wider(any), ["operators: any operator reaches beyond the operator's op-fr, op-de"]);
    }

    #[test]
    fn a_whole_policy_missing_a_qualification_is_wider() {
        let without = ResidencyPolicy { require_qualifications: vec![], ..bound() };
        let why = fixture(100).check_bounded(&without, &bound()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(why.contains("require_qualifications: secnumcloud, which the operator requires, is missing"), "{why}");
        let upper = ResidencyPolicy { require_qualifications: vec!["SECNUMCLOUD".into()], ..bound() };
        assert_eq!(fixture(100).check_bounded(&upper, &bound()), Ok(()));
    }

    #[test]
    fn without_a_bound_every_valid_policy_is_within() {
        let topology = fixture(100);
        let anywhere = ResidencyPolicy::single();
        assert_eq!(topology.check_bounded(&policy(&["US"], 1, 1), &anywhere), Ok(()));
        assert_eq!(topology.check_bounded(&policy(&[], 5, 3), &anywhere), Ok(()));
        // Invalid is still invalid, and said as before.
        assert_eq!(
            topology.check_bounded(&policy(&[], 2, 3), &anywhere),
            Err(PolicyError::DistinctSites { sites: 3, replicas: 2 })
        );
    }
}
