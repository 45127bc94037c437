//! Declared facts: the `[[entities]]`, `[[third_parties]]` and `[label]` config sections as
//! written, and their validation into [`DeclaredFacts`], naming the first bad field by its path.

use std::collections::{BTreeMap, BTreeSet};

use coffre_topology::{Country, OperatorId, Topology};
use serde::Deserialize;

use crate::error::LabelError;

/// One `[[entities]]` entry: a company, its seats and its shareholders.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntity {
    pub id: String,
    pub name: String,
    pub registered_office: Option<String>,
    pub central_administration: Option<String>,
    pub principal_establishment: Option<String>,
    #[serde(default)]
    pub shareholders: Vec<RawShareholder>,
    #[serde(default)]
    pub government_links: Option<bool>,
}

/// One shareholder of an entity, in percent of its capital and of its voting rights.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShareholder {
    /// An entity id (ownership is then looked through), or a free name for an ultimate holder.
    pub holder: String,
    /// Required when `holder` is not an entity id; refused when it is (the entity's seats count).
    pub country: Option<String>,
    pub capital: f64,
    pub voting: f64,
    #[serde(default)]
    pub veto: bool,
    /// The right to appoint the majority of the administration, management or supervisory board.
    #[serde(default)]
    pub board_majority: bool,
}

/// One `[[third_parties]]` entry: a subcontractor or technology licensor used by the service.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThirdParty {
    pub name: String,
    pub country: String,
    pub role: String,
    /// Whether it has the technical possibility to obtain customer data.
    #[serde(default)]
    pub data_access: Option<bool>,
    /// Whether it has the technical possibility to obtain key material or identities.
    #[serde(default)]
    pub key_access: Option<bool>,
    /// Country of whoever controls it, when that differs from `country`.
    #[serde(default)]
    pub controlled_from: Option<String>,
    #[serde(default)]
    pub snc_qualified: Option<bool>,
    /// Whether it guarantees the provider's continuous operating autonomy (SNC 19.6.d).
    #[serde(default)]
    pub autonomy_plan: Option<bool>,
}

/// `[label.contract]`: terms of the service agreement, in calendar days.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContract {
    /// The country whose law governs the agreement.
    pub governing_law: Option<String>,
    pub deletion_notice_days: Option<u32>,
    pub sovereignty_change_notice_days: Option<u32>,
    pub switching_notice_days: Option<u32>,
    pub switching_transition_days: Option<u32>,
    pub retrieval_window_days: Option<u32>,
}

/// The `[label]` table of the server config.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLabel {
    /// Entity id of the service provider.
    pub provider: Option<String>,
    pub admin_origins: Option<Vec<String>>,
    /// Where the gateway runs (S3 API, metadata, audit log, embedded KMS).
    pub processing_countries: Option<Vec<String>>,
    /// Where the key custodian (HSM, KMIP server) and its backups are.
    pub kms_countries: Option<Vec<String>>,
    /// Retention of the central log store, when logs are shipped beyond Coffre's audit log.
    pub log_retention_days: Option<u32>,
    pub contract: Option<RawContract>,
    /// Operator id (from `[[operators]]`) to entity id.
    #[serde(default)]
    pub operator_entities: BTreeMap<String, String>,
    /// Yes/no declarations for rules nothing can observe, e.g. `mfa_admin = true`.
    #[serde(default)]
    pub attestations: BTreeMap<String, bool>,
}

/// All declared facts as written: the two top-level arrays and the `[label]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeclared {
    #[serde(default)]
    pub entities: Vec<RawEntity>,
    #[serde(default)]
    pub third_parties: Vec<RawThirdParty>,
    #[serde(default)]
    pub label: RawLabel,
}

/// Picks `[[entities]]`, `[[third_parties]]` and `[label]` out of a whole server config,
/// ignoring its other sections.
pub fn parse_config_sections(config_toml: &str) -> Result<RawDeclared, LabelError> {
    #[derive(Deserialize)]
    struct Sections {
        #[serde(default)]
        entities: Vec<RawEntity>,
        #[serde(default)]
        third_parties: Vec<RawThirdParty>,
        #[serde(default)]
        label: RawLabel,
    }
    let sections: Sections =
        toml::from_str(config_toml).map_err(|e| LabelError::declared("config", e.message().to_owned()))?;
    Ok(RawDeclared { entities: sections.entities, third_parties: sections.third_parties, label: sections.label })
}

/// A validated entity; `path` is where it was declared, e.g. `entities[0]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    pub id: String,
    pub name: String,
    pub registered_office: Option<Country>,
    pub central_administration: Option<Country>,
    pub principal_establishment: Option<Country>,
    pub shareholders: Vec<Shareholder>,
    pub government_links: Option<bool>,
    pub path: String,
}

impl Entity {
    /// The three seats of SNC 19.6.a with their field names.
    pub fn seats(&self) -> [(&'static str, Option<Country>); 3] {
        [
            ("registered_office", self.registered_office),
            ("central_administration", self.central_administration),
            ("principal_establishment", self.principal_establishment),
        ]
    }
}

/// A validated shareholding; percentages are within 0..=100.
#[derive(Clone, Debug, PartialEq)]
pub struct Shareholder {
    pub holder: Holder,
    pub capital: f64,
    pub voting: f64,
    pub veto: bool,
    pub board_majority: bool,
    pub path: String,
}

/// Who holds a share: a declared entity, or an ultimate holder known only by name and country.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    Entity(String),
    Ultimate { name: String, country: Country },
}

impl Holder {
    pub fn name(&self) -> &str {
        match self {
            Holder::Entity(id) => id,
            Holder::Ultimate { name, .. } => name,
        }
    }
}

/// A validated third party.
#[derive(Clone, Debug, PartialEq)]
pub struct ThirdParty {
    pub name: String,
    pub country: Country,
    pub role: String,
    pub data_access: Option<bool>,
    pub key_access: Option<bool>,
    pub controlled_from: Option<Country>,
    pub snc_qualified: Option<bool>,
    pub autonomy_plan: Option<bool>,
    pub path: String,
}

/// Validated contract terms; every field may be unknown.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contract {
    pub governing_law: Option<Country>,
    pub deletion_notice_days: Option<u32>,
    pub sovereignty_change_notice_days: Option<u32>,
    pub switching_notice_days: Option<u32>,
    pub switching_transition_days: Option<u32>,
    pub retrieval_window_days: Option<u32>,
}

/// Validated declared facts. `None` means not declared: rules reading it give UNKNOWN.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeclaredFacts {
    pub entities: Vec<Entity>,
    pub third_parties: Vec<ThirdParty>,
    pub provider: Option<String>,
    pub admin_origins: Option<Vec<Country>>,
    pub processing_countries: Option<Vec<Country>>,
    pub kms_countries: Option<Vec<Country>>,
    pub log_retention_days: Option<u32>,
    pub contract: Contract,
    pub operator_entities: BTreeMap<OperatorId, String>,
    pub attestations: BTreeMap<String, bool>,
}

impl DeclaredFacts {
    pub fn entity(&self, id: &str) -> Option<&Entity> {
        self.entities.iter().find(|entity| entity.id == id)
    }

    /// Validates everything; the first problem is returned with its config path.
    pub fn from_raw(raw: RawDeclared, topology: &Topology) -> Result<Self, LabelError> {
        let ids: BTreeSet<String> = raw.entities.iter().map(|e| e.id.clone()).collect();
        let mut entities = Vec::new();
        for (index, entity) in raw.entities.into_iter().enumerate() {
            let checked = validate_entity(&format!("entities[{index}]"), entity, &ids)?;
            if entities.iter().any(|e: &Entity| e.id == checked.id) {
                return Err(LabelError::declared(
                    format!("{}.id", checked.path),
                    format!("duplicate id {:?}", checked.id),
                ));
            }
            entities.push(checked);
        }
        reject_cycles(&entities)?;
        let third_parties = raw
            .third_parties
            .into_iter()
            .enumerate()
            .map(|(index, party)| validate_third_party(&format!("third_parties[{index}]"), party))
            .collect::<Result<_, _>>()?;
        let label = raw.label;
        let facts = DeclaredFacts {
            entities,
            third_parties,
            provider: entity_ref("label.provider", label.provider, &ids)?,
            admin_origins: country_list("label.admin_origins", label.admin_origins)?,
            processing_countries: country_list("label.processing_countries", label.processing_countries)?,
            kms_countries: country_list("label.kms_countries", label.kms_countries)?,
            log_retention_days: label.log_retention_days,
            contract: validate_contract(label.contract.unwrap_or_default())?,
            operator_entities: operator_entities(label.operator_entities, topology, &ids)?,
            attestations: label.attestations,
        };
        Ok(facts)
    }
}

fn non_empty(path: &str, value: String) -> Result<String, LabelError> {
    if value.trim().is_empty() { Err(LabelError::declared(path, "must not be empty")) } else { Ok(value) }
}

fn country(path: &str, code: &str) -> Result<Country, LabelError> {
    code.parse().map_err(|e: coffre_topology::UnknownCountry| LabelError::declared(path, e.to_string()))
}

fn optional_country(path: &str, code: Option<String>) -> Result<Option<Country>, LabelError> {
    code.map(|code| country(path, &code)).transpose()
}

fn country_list(path: &str, codes: Option<Vec<String>>) -> Result<Option<Vec<Country>>, LabelError> {
    let Some(codes) = codes else { return Ok(None) };
    let countries = codes.iter().enumerate().map(|(i, code)| country(&format!("{path}[{i}]"), code));
    countries.collect::<Result<_, _>>().map(Some)
}

fn entity_ref(path: &str, id: Option<String>, ids: &BTreeSet<String>) -> Result<Option<String>, LabelError> {
    match id {
        Some(id) if !ids.contains(&id) => Err(LabelError::declared(path, format!("unknown entity {id:?}"))),
        other => Ok(other),
    }
}

fn validate_entity(path: &str, raw: RawEntity, ids: &BTreeSet<String>) -> Result<Entity, LabelError> {
    let id = non_empty(&format!("{path}.id"), raw.id)?;
    let shareholders = raw
        .shareholders
        .into_iter()
        .enumerate()
        .map(|(i, holder)| validate_shareholder(&format!("{path}.shareholders[{i}]"), holder, &id, ids))
        .collect::<Result<Vec<_>, _>>()?;
    for (field, total) in [
        ("capital", shareholders.iter().map(|s| s.capital).sum::<f64>()),
        ("voting", shareholders.iter().map(|s| s.voting).sum::<f64>()),
    ] {
        // Slack for decimal rounding, so that 33.33 + 33.33 + 33.34 is full ownership.
        if total > 100.0 + 1e-9 {
            return Err(LabelError::declared(format!("{path}.shareholders"), format!("{field} adds up to {total}%")));
        }
    }
    Ok(Entity {
        name: non_empty(&format!("{path}.name"), raw.name)?,
        registered_office: optional_country(&format!("{path}.registered_office"), raw.registered_office)?,
        central_administration: optional_country(
            &format!("{path}.central_administration"),
            raw.central_administration,
        )?,
        principal_establishment: optional_country(
            &format!("{path}.principal_establishment"),
            raw.principal_establishment,
        )?,
        shareholders,
        government_links: raw.government_links,
        path: path.to_owned(),
        id,
    })
}

fn validate_shareholder(
    path: &str,
    raw: RawShareholder,
    owner: &str,
    ids: &BTreeSet<String>,
) -> Result<Shareholder, LabelError> {
    let name = non_empty(&format!("{path}.holder"), raw.holder)?;
    if name == owner {
        return Err(LabelError::declared(format!("{path}.holder"), "an entity cannot hold itself"));
    }
    let holder = match (ids.contains(&name), raw.country) {
        (true, Some(_)) => {
            return Err(LabelError::declared(format!("{path}.country"), "not allowed for an entity (its seats count)"));
        }
        (true, None) => Holder::Entity(name),
        (false, Some(code)) => Holder::Ultimate { name, country: country(&format!("{path}.country"), &code)? },
        (false, None) => {
            let problem = format!("required: {name:?} is not an entity id, so it is an ultimate holder");
            return Err(LabelError::declared(format!("{path}.country"), problem));
        }
    };
    Ok(Shareholder {
        holder,
        capital: percent(&format!("{path}.capital"), raw.capital)?,
        voting: percent(&format!("{path}.voting"), raw.voting)?,
        veto: raw.veto,
        board_majority: raw.board_majority,
        path: path.to_owned(),
    })
}

fn percent(path: &str, value: f64) -> Result<f64, LabelError> {
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(LabelError::declared(path, format!("{value} is not a percentage between 0 and 100")))
    }
}

/// Look-through multiplies along chains, so a cycle would make holdings undefined.
fn reject_cycles(entities: &[Entity]) -> Result<(), LabelError> {
    fn visit<'a>(entity: &'a Entity, all: &'a [Entity], stack: &mut Vec<&'a str>) -> Result<(), LabelError> {
        if let Some(start) = stack.iter().position(|id| *id == entity.id) {
            let cycle = format!("{} -> {}", stack[start..].join(" -> "), entity.id);
            return Err(LabelError::declared(
                format!("{}.shareholders", entity.path),
                format!("ownership cycle: {cycle}"),
            ));
        }
        stack.push(&entity.id);
        for shareholder in &entity.shareholders {
            if let Holder::Entity(id) = &shareholder.holder
                && let Some(holder) = all.iter().find(|e| &e.id == id)
            {
                visit(holder, all, stack)?;
            }
        }
        stack.pop();
        Ok(())
    }
    entities.iter().try_for_each(|entity| visit(entity, entities, &mut Vec::new()))
}

fn validate_third_party(path: &str, raw: RawThirdParty) -> Result<ThirdParty, LabelError> {
    Ok(ThirdParty {
        name: non_empty(&format!("{path}.name"), raw.name)?,
        country: country(&format!("{path}.country"), &raw.country)?,
        role: non_empty(&format!("{path}.role"), raw.role)?,
        data_access: raw.data_access,
        key_access: raw.key_access,
        controlled_from: optional_country(&format!("{path}.controlled_from"), raw.controlled_from)?,
        snc_qualified: raw.snc_qualified,
        autonomy_plan: raw.autonomy_plan,
        path: path.to_owned(),
    })
}

fn validate_contract(raw: RawContract) -> Result<Contract, LabelError> {
    Ok(Contract {
        governing_law: optional_country("label.contract.governing_law", raw.governing_law)?,
        deletion_notice_days: raw.deletion_notice_days,
        sovereignty_change_notice_days: raw.sovereignty_change_notice_days,
        switching_notice_days: raw.switching_notice_days,
        switching_transition_days: raw.switching_transition_days,
        retrieval_window_days: raw.retrieval_window_days,
    })
}

fn operator_entities(
    raw: BTreeMap<String, String>,
    topology: &Topology,
    ids: &BTreeSet<String>,
) -> Result<BTreeMap<OperatorId, String>, LabelError> {
    let mut map = BTreeMap::new();
    for (operator, entity) in raw {
        let path = format!("label.operator_entities.{operator}");
        let operator = OperatorId(operator);
        if topology.operator(&operator).is_none() {
            return Err(LabelError::declared(
                path,
                format!("unknown operator {:?} (not in [[operators]])", operator.0),
            ));
        }
        if !ids.contains(&entity) {
            return Err(LabelError::declared(path, format!("unknown entity {entity:?}")));
        }
        map.insert(operator, entity);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DeclaredFacts, LabelError> {
        DeclaredFacts::from_raw(parse_config_sections(text)?, &Topology::empty())
    }

    fn path_of(result: Result<DeclaredFacts, LabelError>) -> String {
        match result {
            Err(LabelError::Declared { path, .. }) => path,
            other => format!("unexpected {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field_path() {
        let bad_capital = r#"
            [[entities]]
            id = "a"
            name = "A"
            [[entities]]
            id = "b"
            name = "B"
            shareholders = [{ holder = "x", country = "US", capital = 120.0, voting = 1.0 }]
        "#;
        assert_eq!(path_of(parse(bad_capital)), "entities[1].shareholders[0].capital");
        let no_country =
            "[[entities]]\nid = \"a\"\nname = \"A\"\nshareholders = [{ holder = \"x\", capital = 1.0, voting = 1.0 }]";
        assert_eq!(path_of(parse(no_country)), "entities[0].shareholders[0].country");
        let bad_origin = "[label]\nadmin_origins = [\"FR\", \"XX\"]";
        assert_eq!(path_of(parse(bad_origin)), "label.admin_origins[1]");
        let bad_operator = "[label.operator_entities]\nop-x = \"a\"";
        assert_eq!(path_of(parse(bad_operator)), "label.operator_entities.op-x");
    }

    #[test]
    fn cycles_are_rejected() {
        let cycle = r#"
            [[entities]]
            id = "a"
            name = "A"
            shareholders = [{ holder = "b", capital = 50.0, voting = 50.0 }]
            [[entities]]
            id = "b"
            name = "B"
            shareholders = [{ holder = "a", capital = 50.0, voting = 50.0 }]
        "#;
        let err = parse(cycle).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("ownership cycle: a -> b -> a"), "{err}");
    }

    #[test]
    fn unknown_fields_and_over_100_percent_are_refused() {
        assert!(parse("[label]\nadmin_origin = [\"FR\"]").is_err());
        let over = r#"
            [[entities]]
            id = "a"
            name = "A"
            shareholders = [{ holder = "x", country = "FR", capital = 60.0, voting = 60.0 },
                            { holder = "y", country = "FR", capital = 50.0, voting = 40.0 }]
        "#;
        assert_eq!(path_of(parse(over)), "entities[0].shareholders");
    }
}
