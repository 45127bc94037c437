//! Profiles as data: versioned TOML files listing rules, each a built-in predicate with
//! parameters; the shipped ones are compiled in, others are loaded from text.

use std::collections::{BTreeMap, BTreeSet};

use coffre_topology::Topology;
use serde::Deserialize;
use time::{Date, Month};

use crate::error::LabelError;

/// A named set of rules at a version, in force from `effective`.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub id: String,
    pub version: String,
    pub effective: Date,
    pub title: String,
    pub aliases: Vec<String>,
    /// Scope and readings taken, printed at the top of every report.
    pub notes: String,
    pub rules: Vec<Rule>,
}

/// One rule: what it checks and where the requirement comes from.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The rule's stable id, e.g. `OWN-02`.
    pub id: String,
    pub title: String,
    /// Section of the source text, e.g. `SNC 3.2 §19.6.b`.
    pub source: String,
    pub severity: Severity,
    /// A doubtful reading and the one taken, repeated in the report.
    #[serde(default)]
    pub note: Option<String>,
    pub check: Check,
}

/// `blocking` failures are FAIL; `recommended` failures are reported as WARN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Blocking,
    Recommended,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Blocking => "blocking",
            Severity::Recommended => "recommended",
        }
    }
}

/// Which countries `countries_in` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactSet {
    /// Observed storage targets (the gateway's own countries when there is none).
    StorageTargets,
    /// Declared `label.processing_countries`.
    Processing,
    /// Declared `label.admin_origins`.
    AdminOrigins,
    /// Declared `label.kms_countries` (the gateway's for the embedded custodian).
    Kms,
}

/// Which list of a TLS listener `tls_parameters_in` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsList {
    Tls12Suites,
    Tls13Suites,
    Groups,
}

/// Which kind of access `third_parties_no_access` forbids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Data,
    Keys,
}

/// What a holding threshold measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Capital,
    Voting,
}

impl Measure {
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Capital => "capital",
            Measure::Voting => "voting",
        }
    }
}

/// A contract term in days, for `contract_days`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractTerm {
    DeletionNotice,
    SovereigntyChangeNotice,
    SwitchingNotice,
    SwitchingTransition,
    RetrievalWindow,
}

/// The built-in predicates a rule may use; jurisdictions are `EU`, `EEA` or a country code.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "predicate", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    CountriesIn {
        facts: FactSet,
        jurisdiction: String,
    },
    /// Registered office, central administration and principal establishment of the provider and operators.
    EntitySeatsIn {
        jurisdiction: String,
    },
    /// Capital and voting rights, unless `measures` narrows them.
    MaxSingleForeignHolding {
        percent: f64,
        outside: String,
        measures: Option<Vec<Measure>>,
    },
    MaxTotalForeignHolding {
        percent: f64,
        outside: String,
    },
    NoForeignVetoOrBoardMajority {
        outside: String,
    },
    /// No outside holder with more than half the votes or the right to appoint the board majority.
    NoForeignControl {
        outside: String,
    },
    NoGovernmentLinks {},
    ThirdPartiesNoAccess {
        outside: String,
        access: Vec<Access>,
    },
    ThirdPartiesAutonomy {
        outside: String,
    },
    MinRetentionDays {
        days: u64,
        warn_above: Option<u64>,
    },
    AuditLogVerifies {},
    AllObjectsEncrypted {},
    EncryptionAlgorithmIn {
        allowed: Vec<String>,
    },
    KeyPerBucket {},
    KmsCustodyIn {
        allowed: Vec<String>,
        #[serde(default)]
        warn: Vec<String>,
    },
    CustomerKeysOffered {},
    TlsVersions {
        min: String,
        preferred: Option<String>,
    },
    TlsParametersIn {
        list: TlsList,
        allowed: Vec<String>,
        #[serde(default)]
        warn: Vec<String>,
    },
    ObservedResidency {
        jurisdiction: Option<String>,
    },
    LocationsComplete {},
    ContractDays {
        #[serde(default)]
        min: BTreeMap<ContractTerm, u32>,
        #[serde(default)]
        max: BTreeMap<ContractTerm, u32>,
    },
    GoverningLawIn {
        jurisdiction: String,
    },
    /// A yes/no declaration in `[label.attestations]`, for what nothing can observe.
    Attested {
        name: String,
    },
}

impl Check {
    /// The jurisdiction names the check refers to, for validation.
    pub(crate) fn jurisdictions(&self) -> Vec<&str> {
        match self {
            Check::CountriesIn { jurisdiction, .. }
            | Check::EntitySeatsIn { jurisdiction }
            | Check::GoverningLawIn { jurisdiction } => vec![jurisdiction],
            Check::MaxSingleForeignHolding { outside, .. }
            | Check::MaxTotalForeignHolding { outside, .. }
            | Check::NoForeignVetoOrBoardMajority { outside }
            | Check::NoForeignControl { outside }
            | Check::ThirdPartiesNoAccess { outside, .. }
            | Check::ThirdPartiesAutonomy { outside } => vec![outside],
            Check::ObservedResidency { jurisdiction } => jurisdiction.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Parameters that parse but make no sense, as a problem text.
    fn problem(&self) -> Option<String> {
        match self {
            Check::MaxSingleForeignHolding { percent, .. } | Check::MaxTotalForeignHolding { percent, .. }
                if !(0.0..=100.0).contains(percent) =>
            {
                Some(format!("percent {percent} is not within 0..=100"))
            }
            Check::TlsVersions { min, preferred } => std::iter::once(min)
                .chain(preferred)
                .find(|v| crate::checks::tls_version(v).is_none())
                .map(|v| format!("{v:?} is not a TLS version")),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    id: String,
    version: String,
    effective: toml::value::Datetime,
    title: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    notes: String,
    rules: Vec<Rule>,
}

/// Parses and checks a profile file.
pub fn load_profile(text: &str) -> Result<Profile, LabelError> {
    let raw: RawProfile = toml::from_str(text).map_err(|e| LabelError::profile("(text)", e.to_string()))?;
    let name = raw.id.clone();
    let effective = toml_date(&raw.effective).ok_or_else(|| LabelError::profile(&name, "effective is not a date"))?;
    let profile = Profile {
        id: raw.id,
        version: raw.version,
        effective,
        title: raw.title,
        aliases: raw.aliases,
        notes: raw.notes,
        rules: raw.rules,
    };
    validate(&profile)?;
    Ok(profile)
}

fn toml_date(value: &toml::value::Datetime) -> Option<Date> {
    let date = value.date.filter(|_| value.time.is_none())?;
    Date::from_calendar_date(i32::from(date.year), Month::try_from(date.month).ok()?, date.day).ok()
}

fn validate(profile: &Profile) -> Result<(), LabelError> {
    let fail = |problem: String| Err(LabelError::profile(&profile.id, problem));
    if [&profile.id, &profile.version, &profile.title].iter().any(|s| s.trim().is_empty()) {
        return fail("id, version and title must not be empty".into());
    }
    if profile.rules.is_empty() {
        return fail("has no rules".into());
    }
    let mut seen = BTreeSet::new();
    let builtin = Topology::empty();
    for rule in &profile.rules {
        if rule.id.trim().is_empty() || rule.source.trim().is_empty() || !seen.insert(rule.id.as_str()) {
            return fail(format!("rule {:?}: empty or duplicate id, or no source", rule.id));
        }
        if let Some(name) = rule.check.jurisdictions().into_iter().find(|j| builtin.jurisdiction(j).is_none()) {
            return fail(format!(
                "rule {}: unknown jurisdiction {name:?} (expected EU, EEA or a country code)",
                rule.id
            ));
        }
        if let Some(problem) = rule.check.problem() {
            return fail(format!("rule {}: {problem}", rule.id));
        }
    }
    Ok(())
}

/// The profile files shipped with the binary.
const BUILTIN: &[&str] = &[
    include_str!("../profiles/secnumcloud-3.2.toml"),
    include_str!("../profiles/hds-2.toml"),
    include_str!("../profiles/gaiax-label-3.toml"),
    include_str!("../profiles/data-act.toml"),
];

/// Every shipped profile (each is checked by the tests, so none is skipped in practice).
pub fn builtin_profiles() -> Vec<Profile> {
    BUILTIN.iter().filter_map(|text| load_profile(text).ok()).collect()
}

/// A shipped profile by id or alias, e.g. `cloud-de-confiance` for `secnumcloud-3.2`.
pub fn builtin_profile(name: &str) -> Option<Profile> {
    builtin_profiles().into_iter().find(|p| p.id == name || p.aliases.iter().any(|alias| alias == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_loads() {
        for text in BUILTIN {
            if let Err(e) = load_profile(text) {
                panic!("{e}");
            }
        }
        let ids: Vec<_> = builtin_profiles().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, ["secnumcloud-3.2", "hds-2", "gaiax-label-3", "data-act"]);
        assert_eq!(builtin_profile("cloud-de-confiance").map(|p| p.id).as_deref(), Some("secnumcloud-3.2"));
        assert!(builtin_profile("qualified").is_none());
    }

    #[test]
    fn bad_profiles_are_refused() {
        let head = "id = \"p\"\nversion = \"1\"\neffective = 2026-01-01\ntitle = \"P\"\n";
        let rule = |check: &str| {
            format!(
                "{head}[[rules]]\nid = \"R\"\ntitle = \"t\"\nsource = \"s\"\nseverity = \"blocking\"\ncheck = {check}\n"
            )
        };
        assert!(load_profile(&rule("{ predicate = \"no_government_links\" }")).is_ok());
        for bad in [
            "{ predicate = \"no_such_thing\" }",
            "{ predicate = \"countries_in\", facts = \"processing\", jurisdiction = \"MARS\" }",
            "{ predicate = \"max_total_foreign_holding\", percent = 140.0, outside = \"EU\" }",
            "{ predicate = \"tls_versions\", min = \"TLSv9\" }",
            "{ predicate = \"key_per_bucket\", extra = 1 }",
            "{ predicate = \"countries_in\", facts = \"kms\", jurisdiction = \"EU\", extra = 1 }",
        ] {
            assert!(load_profile(&rule(bad)).is_err(), "{bad}");
        }
        assert!(load_profile(head).is_err(), "no rules");
    }
}
