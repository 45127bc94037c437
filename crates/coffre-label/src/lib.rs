//! Coffre's trust label: evaluates a deployment against SecNumCloud-style profiles from declared
//! and observed facts, and signs the result as a pre-assessment (never a qualification).
//!
//! Pure computation, no I/O. The binary hands over:
//! - declared facts, from its TOML config, validated by [`DeclaredFacts::from_raw`];
//! - observed facts, an [`ObservedFacts`] it fills from the running server;
//! - its [`coffre_topology::Topology`].
//!
//! # Config shape
//!
//! Top-level `[[entities]]` ([`RawEntity`]) and `[[third_parties]]` ([`RawThirdParty`]), and a
//! `[label]` table ([`RawLabel`]) with `provider` (an entity id), `admin_origins`,
//! `processing_countries`, `kms_countries` (country codes), `log_retention_days`,
//! `[label.contract]` ([`RawContract`]), `[label.operator_entities]` (operator id from
//! `[[operators]]` to entity id) and `[label.attestations]` (`name = true|false`). Every field is
//! optional: a missing fact makes the rules reading it UNKNOWN, never PASS. `example.toml` in this
//! crate is a French deployment that passes `secnumcloud-3.2`; the tests evaluate it.
//! [`parse_config_sections`] picks these sections out of a whole config file.
//!
//! ```toml
//! [[entities]]
//! id = "ent-coffre"
//! name = "Coffre Cloud SAS"
//! registered_office = "FR"
//! central_administration = "FR"
//! principal_establishment = "FR"
//! government_links = false
//! shareholders = [
//!     { holder = "ent-holding", capital = 60.0, voting = 70.0, board_majority = true },
//!     { holder = "Acme Ventures Inc.", country = "US", capital = 10.0, voting = 5.0, veto = false },
//! ]
//!
//! [label]
//! provider = "ent-coffre"
//! admin_origins = ["FR"]
//!
//! [label.operator_entities]
//! op-fr = "ent-coffre"
//! ```
//!
//! # Outputs
//!
//! [`evaluate()`] gives a [`Report`]: per rule PASS, FAIL, WARN, N/A or UNKNOWN, with the facts read
//! and their sources (`config: <path>` or `observed: <what>`). [`sign()`] writes it as JSON with a
//! detached JWS (the format is on [`sign()`]); [`verify`] checks it offline with the public key.

mod checks;
pub mod declared;
pub mod error;
pub mod evaluate;
pub mod observed;
pub mod ownership;
pub mod profile;
pub mod report;
pub mod sign;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

pub use declared::{
    Contract, DeclaredFacts, Entity, Holder, RawContract, RawDeclared, RawEntity, RawLabel, RawShareholder,
    RawThirdParty, Shareholder, ThirdParty, parse_config_sections,
};
pub use error::LabelError;
pub use evaluate::evaluate;
pub use observed::{Facts, ObservedBucket, ObservedFacts, ObservedListener, ObservedReplica, ObservedTarget};
pub use ownership::{Holding, Share, look_through};
pub use profile::{Check, Measure, Profile, Rule, Severity, builtin_profile, builtin_profiles, load_profile};
pub use report::{ASSESSMENT, FactUsed, Outcome, Report, RuleOutcome, Summary};
pub use sign::{sign, verify};
