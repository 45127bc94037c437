//! The built-in predicates behind profile rules, and the accumulator each one fills: the facts
//! it read with their sources, and the worst outcome found with its reasons.

mod crypto;
mod owners;
mod place;
mod terms;

use std::collections::BTreeSet;

use coffre_topology::Country;

pub(crate) use crypto::tls_version;

use crate::observed::Facts;
use crate::profile::Check;
use crate::report::{FactUsed, Outcome};

/// Reasons and listed items beyond this are summarised, so that a million replicas stay readable.
const MAX_LISTED: usize = 10;

/// What one predicate found: the worst outcome so far, why, and the facts it read.
#[derive(Debug, Default)]
pub(crate) struct Eval {
    outcome: Option<Outcome>,
    reasons: Vec<String>,
    pub(crate) facts: Vec<FactUsed>,
}

impl Eval {
    pub(crate) fn fact(&mut self, name: impl Into<String>, value: impl ToString, source: impl Into<String>) {
        self.facts.push(FactUsed { name: name.into(), value: value.to_string(), source: source.into() });
    }

    pub(crate) fn fail(&mut self, reason: impl Into<String>) {
        self.raise(Outcome::Fail, reason.into());
    }

    pub(crate) fn unknown(&mut self, reason: impl Into<String>) {
        self.raise(Outcome::Unknown, reason.into());
    }

    pub(crate) fn warn(&mut self, reason: impl Into<String>) {
        self.raise(Outcome::Warn, reason.into());
    }

    /// Nothing to check: only meaningful before anything else was raised.
    pub(crate) fn not_applicable(mut self, reason: impl Into<String>) -> Eval {
        self.raise(Outcome::NotApplicable, reason.into());
        self
    }

    fn raise(&mut self, outcome: Outcome, reason: String) {
        self.outcome = Some(self.outcome.map_or(outcome, |current| current.max(outcome)));
        self.reasons.push(reason);
    }

    /// The outcome and one reason line; PASS when nothing was raised.
    pub(crate) fn finish(self, pass_reason: &str) -> (Outcome, String, Vec<FactUsed>) {
        let Some(outcome) = self.outcome else { return (Outcome::Pass, pass_reason.to_owned(), self.facts) };
        let mut reason = self.reasons.iter().take(MAX_LISTED).cloned().collect::<Vec<_>>().join("; ");
        if self.reasons.len() > MAX_LISTED {
            reason.push_str(&format!("; and {} more", self.reasons.len() - MAX_LISTED));
        }
        (outcome, reason, self.facts)
    }
}

/// A predicate's view of the facts.
pub(crate) struct Ctx<'a> {
    pub facts: &'a Facts,
}

static NO_COUNTRIES: BTreeSet<Country> = BTreeSet::new();

impl Ctx<'_> {
    /// Profiles are validated on load, so an unknown name only comes from a hand-built profile;
    /// dispatch turns it into UNKNOWN before any predicate runs.
    pub(crate) fn set(&self, name: &str) -> &BTreeSet<Country> {
        self.facts.topology.jurisdiction(name).unwrap_or(&NO_COUNTRIES)
    }
}

/// `12.5` as `12.5%`, without trailing zeros.
pub(crate) fn pct(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

pub(crate) fn yes_no(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "yes",
        Some(false) => "no",
        None => "not declared",
    }
}

pub(crate) fn country_list(countries: &[Country]) -> String {
    countries.iter().map(Country::as_str).collect::<Vec<_>>().join(", ")
}

/// Runs one check; returns its outcome, reason and facts, before severity is applied.
pub(crate) fn run(check: &Check, facts: &Facts) -> (Outcome, String, Vec<FactUsed>) {
    let ctx = Ctx { facts };
    if let Some(name) = check.jurisdictions().into_iter().find(|j| facts.topology.jurisdiction(j).is_none()) {
        let mut eval = Eval::default();
        eval.unknown(format!("the profile names an unknown jurisdiction {name:?}"));
        return eval.finish("");
    }
    match check {
        Check::CountriesIn { facts: set, jurisdiction } => place::countries_in(&ctx, *set, jurisdiction),
        Check::ObservedResidency { jurisdiction } => place::observed_residency(&ctx, jurisdiction.as_deref()),
        Check::LocationsComplete {} => place::locations_complete(&ctx),
        Check::EntitySeatsIn { jurisdiction } => owners::entity_seats_in(&ctx, jurisdiction),
        Check::MaxSingleForeignHolding { percent, outside, measures } => {
            owners::max_single(&ctx, *percent, outside, measures.as_deref())
        }
        Check::MaxTotalForeignHolding { percent, outside } => owners::max_total(&ctx, *percent, outside),
        Check::NoForeignVetoOrBoardMajority { outside } => owners::no_foreign_rights(&ctx, outside),
        Check::NoForeignControl { outside } => owners::no_foreign_control(&ctx, outside),
        Check::NoGovernmentLinks {} => owners::no_government_links(&ctx),
        Check::ThirdPartiesNoAccess { outside, access } => terms::third_parties_no_access(&ctx, outside, access),
        Check::ThirdPartiesAutonomy { outside } => terms::third_parties_autonomy(&ctx, outside),
        Check::MinRetentionDays { days, warn_above } => terms::min_retention(&ctx, *days, *warn_above),
        Check::AuditLogVerifies {} => terms::audit_log_verifies(&ctx),
        Check::ContractDays { min, max } => terms::contract_days(&ctx, min, max),
        Check::GoverningLawIn { jurisdiction } => terms::governing_law_in(&ctx, jurisdiction),
        Check::Attested { name } => terms::attested(&ctx, name),
        Check::AllObjectsEncrypted {} => crypto::all_objects_encrypted(&ctx),
        Check::EncryptionAlgorithmIn { allowed } => crypto::algorithm_in(&ctx, allowed),
        Check::KeyPerBucket {} => crypto::key_per_bucket(&ctx),
        Check::KmsCustodyIn { allowed, warn } => crypto::custody_in(&ctx, allowed, warn),
        Check::CustomerKeysOffered {} => crypto::customer_keys(&ctx),
        Check::TlsVersions { min, preferred } => crypto::tls_versions(&ctx, min, preferred.as_deref()),
        Check::TlsParametersIn { list, allowed, warn } => crypto::tls_parameters(&ctx, *list, allowed, warn),
    }
}
