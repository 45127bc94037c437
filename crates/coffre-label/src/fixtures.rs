//! Test fixtures: the French deployment of `example.toml` with observed facts that pass
//! `secnumcloud-3.2`, and small builders for deployments sitting on one edge each.

use std::collections::{BTreeMap, BTreeSet};

use coffre_topology::{Country, RawOperator, RawTarget, Topology};
use serde::Deserialize;

use crate::declared::{DeclaredFacts, RawDeclared, RawEntity, RawShareholder, parse_config_sections};
use crate::observed::{Facts, ObservedBucket, ObservedFacts, ObservedListener, ObservedReplica, ObservedTarget};

pub(crate) const EXAMPLE: &str = include_str!("../example.toml");

pub(crate) fn eu() -> BTreeSet<Country> {
    Topology::empty().jurisdiction("EU").cloned().unwrap_or_default()
}

pub(crate) fn topology(text: &str) -> Topology {
    #[derive(Deserialize)]
    struct Sections {
        operators: Vec<RawOperator>,
        targets: Vec<RawTarget>,
    }
    let sections: Sections = toml::from_str(text).expect("example topology parses");
    Topology::from_raw(sections.operators, sections.targets, BTreeMap::new()).expect("example topology is valid")
}

/// `"X@US"` is an ultimate holder X in the US; anything else is an entity id. Capital = voting.
pub(crate) fn holder(spec: &str, percent: f64) -> RawShareholder {
    let (name, country) = match spec.split_once('@') {
        Some((name, country)) => (name, Some(country.to_owned())),
        None => (spec, None),
    };
    RawShareholder { holder: name.into(), country, capital: percent, voting: percent, ..Default::default() }
}

pub(crate) fn entity(id: &str, seat: &str, shareholders: Vec<RawShareholder>) -> RawEntity {
    let seat = Some(seat.to_owned());
    RawEntity {
        id: id.into(),
        name: id.to_uppercase(),
        registered_office: seat.clone(),
        central_administration: seat.clone(),
        principal_establishment: seat,
        shareholders,
        government_links: Some(false),
    }
}

/// Entities alone, for ownership tests: `(id, country of all three seats, shareholders)`.
pub(crate) fn with_entities(entities: Vec<(&str, &str, Vec<RawShareholder>)>) -> DeclaredFacts {
    let entities = entities.into_iter().map(|(id, seat, holders)| entity(id, seat, holders)).collect();
    let raw = RawDeclared { entities, ..Default::default() };
    DeclaredFacts::from_raw(raw, &Topology::empty()).expect("fixture entities are valid")
}

fn listener(name: &str) -> ObservedListener {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
    ObservedListener {
        name: name.into(),
        tls: true,
        versions: strings(&["TLSv1.3", "TLSv1.2"]),
        suites: strings(&[
            "TLS13_AES_256_GCM_SHA384",
            "TLS13_AES_128_GCM_SHA256",
            "TLS13_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ]),
        groups: strings(&["X25519", "secp256r1", "secp384r1"]),
    }
}

pub(crate) fn target(id: &str, country: &str, operator: &str) -> ObservedTarget {
    ObservedTarget {
        id: id.into(),
        country: country.into(),
        region: "r".into(),
        site: format!("{id}-a"),
        operator: operator.into(),
    }
}

pub(crate) fn replica(bucket: &str, key: &str, target: &str, country: &str) -> ObservedReplica {
    ObservedReplica { bucket: bucket.into(), key: key.into(), target: target.into(), country: country.into() }
}

/// What the French deployment reports: two FR targets, a FR-only bucket and one without policy.
pub(crate) fn fr_observed() -> ObservedFacts {
    ObservedFacts {
        targets: vec![target("par-1", "FR", "op-fr"), target("lil-1", "FR", "op-dc")],
        buckets: vec![
            ObservedBucket { name: "factures".into(), allowed_countries: Some(vec!["FR".into()]), has_own_key: true },
            ObservedBucket { name: "archives".into(), allowed_countries: None, has_own_key: true },
        ],
        replicas: vec![
            replica("factures", "2026/01.pdf", "par-1", "FR"),
            replica("factures", "2026/01.pdf", "lil-1", "FR"),
            replica("archives", "old.tar", "lil-1", "FR"),
        ],
        objects_total: 2,
        objects_encrypted: 2,
        encryption_algorithm: "AES-256-GCM".into(),
        kms_custody: "pkcs11".into(),
        listeners: vec![listener("s3"), listener("admin")],
        audit_log_verifies: Some(true),
        audit_retention_days: Some(365),
        sse_c_offered: true,
    }
}

pub(crate) fn fr_raw() -> RawDeclared {
    parse_config_sections(EXAMPLE).expect("example parses")
}

/// The example with its raw declarations edited, validated against its topology.
pub(crate) fn fr_facts_with(edit: impl FnOnce(&mut RawDeclared, &mut ObservedFacts)) -> Facts {
    let mut raw = fr_raw();
    let mut observed = fr_observed();
    edit(&mut raw, &mut observed);
    let topology = topology(EXAMPLE);
    let declared = DeclaredFacts::from_raw(raw, &topology).expect("edited example is valid");
    Facts { declared, observed, topology }
}

pub(crate) fn fr_facts() -> Facts {
    fr_facts_with(|_, _| {})
}
