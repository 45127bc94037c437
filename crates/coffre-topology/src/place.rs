//! Replica placement: weighted rendezvous hashing over the targets a policy allows and that are up,
//! spreading replicas over distinct sites; also the repair variant that keeps surviving replicas.

use std::collections::BTreeSet;

use sha2::{Digest as _, Sha256};
use time::Date;

use crate::policy::{PolicyError, ResidencyPolicy};
use crate::topology::{Target, TargetId, Topology};

/// Why no placement meets the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(
        "the residency policy needs {needed_replicas} replicas on {needed_sites} distinct sites \
         but only {eligible} allowed targets ({up} up, on {sites_up} sites) exist"
    )]
    Unsatisfiable { needed_replicas: u8, needed_sites: u8, eligible: usize, up: usize, sites_up: usize },
}

impl Topology {
    /// The targets that hold `object`'s replicas, best first; the same inputs always give the same answer.
    pub fn place(
        &self,
        policy: &ResidencyPolicy,
        object: &[u8],
        today: Date,
        is_up: impl Fn(&Target) -> bool,
    ) -> Result<Vec<TargetId>, PlacementError> {
        self.place_more(policy, object, today, is_up, &[])
    }

    /// Repair: keeps the targets of `keep` that the policy still allows (up or not: the caller
    /// says which replicas survive), then adds up targets until the policy holds. Kept ones come first.
    pub fn place_more(
        &self,
        policy: &ResidencyPolicy,
        object: &[u8],
        today: Date,
        is_up: impl Fn(&Target) -> bool,
        keep: &[TargetId],
    ) -> Result<Vec<TargetId>, PlacementError> {
        self.check_policy(policy)?;
        let eligible = self.eligible(policy, today);
        let mut chosen = kept(&eligible, keep);
        let up: Vec<&Target> = eligible.iter().copied().filter(|target| is_up(target)).collect();
        let ranked = rank(up.iter().copied().filter(|target| !chosen.iter().any(|c| c.id == target.id)), object);
        spread(policy, &mut chosen, &ranked);
        if chosen.len() < usize::from(policy.replicas) || site_count(&chosen) < usize::from(policy.distinct_sites) {
            return Err(PlacementError::Unsatisfiable {
                needed_replicas: policy.replicas,
                needed_sites: policy.distinct_sites,
                eligible: eligible.len(),
                up: up.len(),
                sites_up: site_count(&up),
            });
        }
        Ok(chosen.into_iter().map(|target| target.id.clone()).collect())
    }
}

/// The targets of `keep` still among `eligible`, once each, in `keep`'s order.
fn kept<'a>(eligible: &[&'a Target], keep: &[TargetId]) -> Vec<&'a Target> {
    let mut kept: Vec<&Target> = Vec::new();
    for id in keep {
        if let Some(&target) = eligible.iter().find(|target| &target.id == id)
            && !kept.iter().any(|k| &k.id == id)
        {
            kept.push(target);
        }
    }
    kept
}

/// Sites are told apart by name alone, so a site declared under two regions is never counted twice.
fn site_count(targets: &[&Target]) -> usize {
    targets.iter().map(|target| target.site.as_str()).collect::<BTreeSet<_>>().len()
}

/// Adds `ranked` targets to `chosen`: first the best target of each site not used yet, while
/// replicas or sites are short, then any remaining target while replicas are short.
fn spread<'a>(policy: &ResidencyPolicy, chosen: &mut Vec<&'a Target>, ranked: &[&'a Target]) {
    let mut sites: BTreeSet<&str> = chosen.iter().map(|target| target.site.as_str()).collect();
    for &target in ranked {
        let short = chosen.len() < usize::from(policy.replicas) || sites.len() < usize::from(policy.distinct_sites);
        if short && sites.insert(target.site.as_str()) {
            chosen.push(target);
        }
    }
    for &target in ranked {
        if chosen.len() >= usize::from(policy.replicas) {
            break;
        }
        if !chosen.iter().any(|c| c.id == target.id) {
            chosen.push(target);
        }
    }
}

/// Targets by descending rendezvous score for `object`, ties broken by id.
fn rank<'a>(targets: impl Iterator<Item = &'a Target>, object: &[u8]) -> Vec<&'a Target> {
    let mut scored: Vec<(f64, &Target)> = targets.map(|target| (score(target, object), target)).collect();
    scored.sort_by(|(score_a, a), (score_b, b)| score_b.total_cmp(score_a).then_with(|| a.id.cmp(&b.id)));
    scored.into_iter().map(|(_, target)| target).collect()
}

/// Weighted rendezvous score `capacity / -ln(u)`, with `u` uniform in (0, 1) drawn from
/// SHA-256(target id ‖ 0x00 ‖ object): a target wins with probability proportional to its capacity.
pub fn score(target: &Target, object: &[u8]) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update(target.id.0.as_bytes());
    hasher.update([0u8]);
    hasher.update(object);
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let h = u64::from_be_bytes(first);
    // 52 bits plus a half is exact in an f64 and stays strictly inside (0, 1), so -ln(u) is finite and positive.
    let u = ((h >> 12) as f64 + 0.5) / (1u64 << 52) as f64;
    target.capacity as f64 / -u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::{TODAY, fixture, fixture_with, ids, policy};

    /// The fixture plus a heavy second target on site `par-a`, which must not take both FR replicas.
    fn crowded() -> Topology {
        fixture_with(100, &[("fr-a2", "FR", "par-a", "op-fr", 1000)])
    }

    fn site<'a>(topology: &'a Topology, id: &TargetId) -> &'a str {
        topology.target(id).map(|target| target.site.as_str()).unwrap_or("missing")
    }

    #[test]
    fn two_french_sites() {
        let topology = crowded();
        for key in 0..1000 {
            let placed = topology.place(&policy(&["FR"], 2, 2), format!("k{key}").as_bytes(), TODAY, |_| true);
            let placed = placed.expect("satisfiable");
            assert_eq!(placed.len(), 2);
            assert!(placed.iter().all(|id| id.0.starts_with("fr-")), "{placed:?}");
            assert_ne!(site(&topology, &placed[0]), site(&topology, &placed[1]));
        }
    }

    #[test]
    fn eu_policy_never_uses_the_us_target_and_is_deterministic() {
        let topology = fixture(100);
        let eu = policy(&["EU"], 3, 1);
        for key in 0..1000u32 {
            let placed = topology.place(&eu, &key.to_be_bytes(), TODAY, |_| true).expect("satisfiable");
            assert_eq!(placed.len(), 3);
            assert!(!placed.contains(&TargetId("us-1".into())), "{placed:?}");
            assert_eq!(placed.iter().collect::<BTreeSet<_>>().len(), 3, "{placed:?}");
            let again = fixture(100).place(&eu, &key.to_be_bytes(), TODAY, |_| true);
            assert_eq!(again.as_ref(), Ok(&placed));
        }
    }

    #[test]
    fn first_choice_follows_capacity() {
        let topology = fixture(300);
        let mut wins = std::collections::BTreeMap::<String, u32>::new();
        for key in 0..20_000u32 {
            let placed = topology.place(&policy(&[], 1, 1), &key.to_le_bytes(), TODAY, |_| true).expect("ok");
            *wins.entry(placed[0].0.clone()).or_default() += 1;
        }
        let big = f64::from(wins.get("fr-a").copied().unwrap_or(0));
        for other in ["fr-b", "fr-c", "de-1", "us-1"] {
            let ratio = big / f64::from(wins.get(other).copied().unwrap_or(1));
            assert!((2.0..=4.0).contains(&ratio), "fr-a/{other} = {ratio}, wins {wins:?}");
        }
    }

    #[test]
    fn down_targets_are_never_chosen() {
        let topology = fixture(100);
        for key in 0..1000u32 {
            let placed =
                topology.place(&policy(&["FR"], 2, 2), &key.to_be_bytes(), TODAY, |t| t.id.0 != "fr-a").expect("ok");
            assert_eq!(placed.iter().collect::<BTreeSet<_>>(), ids(&["fr-b", "fr-c"]).iter().collect());
        }
    }

    #[test]
    fn unsatisfiable_policy_explains() {
        let error = fixture(100).place(&policy(&["DE"], 4, 1), b"k", TODAY, |_| true).expect_err("one DE target");
        let expected =
            PlacementError::Unsatisfiable { needed_replicas: 4, needed_sites: 1, eligible: 1, up: 1, sites_up: 1 };
        assert_eq!(error, expected);
        assert_eq!(
            error.to_string(),
            "the residency policy needs 4 replicas on 1 distinct sites but only 1 allowed targets (1 up, on 1 sites) exist"
        );
        let one_site = crowded().place(&policy(&["FR"], 2, 2), b"k", TODAY, |t| t.site == "par-a");
        assert!(matches!(one_site, Err(PlacementError::Unsatisfiable { eligible: 4, up: 2, sites_up: 1, .. })));
        let invalid = fixture(100).place(&policy(&["FR"], 0, 1), b"k", TODAY, |_| true);
        assert!(matches!(invalid, Err(PlacementError::Policy(PolicyError::Replicas(0)))), "{invalid:?}");
    }

    #[test]
    fn expired_qualification_excludes_the_operator() {
        let topology = fixture(100);
        let qualified = ResidencyPolicy { require_qualifications: vec!["secnumcloud".into()], ..policy(&["EU"], 1, 1) };
        for key in 0..200u32 {
            let placed = topology.place(&qualified, &key.to_be_bytes(), TODAY, |_| true).expect("ok");
            assert_ne!(placed, ids(&["de-1"]));
        }
        let later = time::macros::date!(2028 - 01 - 01);
        assert!(topology.place(&qualified, b"k", later, |_| true).is_err());
    }

    #[test]
    fn place_more_keeps_survivors_and_adds_on_another_site() {
        let topology = crowded();
        let fr = policy(&["FR"], 2, 2);
        for key in 0..200u32 {
            let object = key.to_be_bytes();
            let placed = topology.place(&fr, &object, TODAY, |_| true).expect("ok");
            let (survivor, lost) = (&placed[0], &placed[1]);
            let repaired = topology.place_more(&fr, &object, TODAY, |t| &t.id != lost, std::slice::from_ref(survivor));
            let repaired = repaired.expect("a third French site is up");
            assert_eq!(repaired.len(), 2);
            assert_eq!(&repaired[0], survivor);
            assert_ne!(&repaired[1], lost);
            assert_ne!(site(&topology, &repaired[0]), site(&topology, &repaired[1]));
            assert_eq!(topology.satisfies(&fr, &repaired, TODAY), Ok(()));
        }
        // A kept replica the policy no longer allows is dropped.
        let repaired = topology.place_more(&fr, b"k", TODAY, |_| true, &ids(&["de-1", "fr-b"])).expect("ok");
        assert_eq!(repaired.len(), 2);
        assert_eq!(repaired[0].0, "fr-b");
        assert!(repaired[1].0.starts_with("fr-"));
    }

    #[test]
    fn place_more_deduplicates_and_tops_up() {
        let topology = fixture(100);
        let kept = ids(&["fr-a", "fr-a", "fr-b"]);
        let two_sites = policy(&["FR"], 2, 2);
        assert_eq!(topology.place_more(&two_sites, b"k", TODAY, |_| true, &kept), Ok(ids(&["fr-a", "fr-b"])));
        let three_sites = policy(&["FR"], 3, 3);
        assert_eq!(topology.place_more(&three_sites, b"k", TODAY, |_| true, &kept), Ok(ids(&["fr-a", "fr-b", "fr-c"])));
    }
}
