//! The raw `[[operators]]`, `[[targets]]` and `[jurisdictions]` config sections and their
//! validation into a [`Topology`], reporting the first problem with its field path.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use time::Date;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::country::{BUILTIN, Country, UnknownCountry};
use crate::topology::{Operator, OperatorId, Qualification, Target, TargetId, TargetKind, Topology};

/// One `[[operators]]` entry as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperator {
    pub id: String,
    pub name: String,
    pub country: String,
    #[serde(default)]
    pub ownership: BTreeMap<String, f64>,
    #[serde(default)]
    pub qualifications: Vec<RawQualification>,
}

/// One `qualifications` entry as written: `{ name = "secnumcloud", expires = "2027-12-31" }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQualification {
    pub name: String,
    pub expires: String,
}

/// One `[[targets]]` entry as written; the S3 fields belong to `kind = "s3"` only.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub id: String,
    pub kind: String,
    pub endpoint: String,
    pub country: String,
    pub region: String,
    pub site: String,
    pub operator: String,
    pub capacity: String,
    #[serde(default)]
    pub bucket: Option<String>,
    #[serde(default)]
    pub access_key: Option<String>,
    #[serde(default)]
    pub secret_key: Option<String>,
    #[serde(default)]
    pub s3_region: Option<String>,
}

// Written by hand so that printing a config never leaks an S3 secret key.
impl fmt::Debug for RawTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawTarget")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .field("country", &self.country)
            .field("region", &self.region)
            .field("site", &self.site)
            .field("operator", &self.operator)
            .field("capacity", &self.capacity)
            .field("bucket", &self.bucket)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<redacted>"))
            .field("s3_region", &self.s3_region)
            .finish()
    }
}

/// The first invalid field of a topology config, e.g. `targets[2].country`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct TopologyError {
    pub path: String,
    pub problem: Problem,
}

/// What is wrong with the field a [`TopologyError`] names.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error(transparent)]
    UnknownCountry(#[from] UnknownCountry),
    #[error("must not be empty")]
    Empty,
    #[error("duplicate id {0:?}")]
    Duplicate(String),
    #[error("share {0} is negative or not a number")]
    NegativeShare(f64),
    #[error("shares add up to {0}%, more than 100%")]
    OwnershipOver100(f64),
    #[error("unknown jurisdiction {0:?} (expected a country code such as FR, EU, EEA or a name from [jurisdictions])")]
    UnknownJurisdiction(String),
    #[error("unknown operator {0:?} (not declared in [[operators]])")]
    UnknownOperator(String),
    #[error("unknown target kind {0:?} (expected \"node\" or \"s3\")")]
    UnknownKind(String),
    #[error("{0:?} is not an http:// or https:// URL")]
    BadEndpoint(String),
    #[error("{0:?} is not a size such as \"100GiB\", \"500 GB\" or \"1048576\"")]
    BadCapacity(String),
    #[error("must be above zero")]
    ZeroCapacity,
    #[error("{0:?} is not a YYYY-MM-DD date")]
    BadDate(String),
    #[error("required for an s3 target")]
    MissingForS3,
    #[error("only allowed on s3 targets")]
    OnlyForS3,
    #[error("{0:?} is already a built-in jurisdiction or a country code")]
    ClashesWithBuiltin(String),
    #[error("jurisdictions refer to each other in a cycle: {0}")]
    Cycle(String),
}

const DATE: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// S3 services that do not care about regions still need one to sign requests.
const DEFAULT_S3_REGION: &str = "us-east-1";

impl Topology {
    /// Validates the config sections, in order: operators, targets, then jurisdictions.
    pub fn from_raw(
        operators: Vec<RawOperator>,
        targets: Vec<RawTarget>,
        jurisdictions: BTreeMap<String, Vec<String>>,
    ) -> Result<Topology, TopologyError> {
        let mut topology = Topology::empty();
        for (index, raw) in operators.into_iter().enumerate() {
            let operator = operator(&format!("operators[{index}]"), raw, &topology, &jurisdictions)?;
            topology.operators.insert(operator.id.clone(), operator);
        }
        for (index, raw) in targets.into_iter().enumerate() {
            let target = target(&format!("targets[{index}]"), raw, &topology)?;
            topology.targets.push(target);
        }
        topology.jurisdictions = expand_jurisdictions(&jurisdictions)?;
        Ok(topology)
    }
}

fn at(path: &str, field: &str, problem: Problem) -> TopologyError {
    TopologyError { path: format!("{path}.{field}"), problem }
}

fn non_empty(path: &str, field: &str, value: String) -> Result<String, TopologyError> {
    if value.trim().is_empty() { Err(at(path, field, Problem::Empty)) } else { Ok(value) }
}

fn country(path: &str, field: &str, code: &str) -> Result<Country, TopologyError> {
    code.parse().map_err(|unknown: UnknownCountry| at(path, field, unknown.into()))
}

fn operator(
    path: &str,
    raw: RawOperator,
    topology: &Topology,
    jurisdictions: &BTreeMap<String, Vec<String>>,
) -> Result<Operator, TopologyError> {
    let id = OperatorId(non_empty(path, "id", raw.id)?);
    if topology.operator(&id).is_some() {
        return Err(at(path, "id", Problem::Duplicate(id.0)));
    }
    let name = non_empty(path, "name", raw.name)?;
    let country = country(path, "country", &raw.country)?;
    check_ownership(&format!("{path}.ownership"), &raw.ownership, jurisdictions)?;
    let qualifications = raw
        .qualifications
        .into_iter()
        .enumerate()
        .map(|(index, q)| qualification(&format!("{path}.qualifications[{index}]"), q))
        .collect::<Result<_, _>>()?;
    Ok(Operator { id, name, country, ownership: raw.ownership, qualifications })
}

fn check_ownership(
    path: &str,
    shares: &BTreeMap<String, f64>,
    jurisdictions: &BTreeMap<String, Vec<String>>,
) -> Result<(), TopologyError> {
    for (key, share) in shares {
        // User jurisdictions are validated after the operators; knowing the name exists is enough here.
        if !BUILTIN.contains_key(key.as_str()) && !jurisdictions.contains_key(key) {
            return Err(at(path, key, Problem::UnknownJurisdiction(key.clone())));
        }
        if share.is_nan() || *share < 0.0 {
            return Err(at(path, key, Problem::NegativeShare(*share)));
        }
    }
    let total: f64 = shares.values().sum();
    // Slack for decimal rounding, so that 33.33 + 33.33 + 33.34 is exactly full ownership.
    if total > 100.0 + 1e-9 {
        return Err(TopologyError { path: path.to_owned(), problem: Problem::OwnershipOver100(total) });
    }
    Ok(())
}

fn qualification(path: &str, raw: RawQualification) -> Result<Qualification, TopologyError> {
    let name = non_empty(path, "name", raw.name)?;
    let expires = Date::parse(&raw.expires, DATE).map_err(|_| at(path, "expires", Problem::BadDate(raw.expires)))?;
    Ok(Qualification { name, expires })
}

fn target(path: &str, mut raw: RawTarget, topology: &Topology) -> Result<Target, TopologyError> {
    let id = TargetId(non_empty(path, "id", std::mem::take(&mut raw.id))?);
    if topology.target(&id).is_some() {
        return Err(at(path, "id", Problem::Duplicate(id.0)));
    }
    let kind = target_kind(path, &mut raw)?;
    let endpoint = endpoint(path, raw.endpoint)?;
    let country = country(path, "country", &raw.country)?;
    let region = non_empty(path, "region", raw.region)?;
    let site = non_empty(path, "site", raw.site)?;
    let operator = OperatorId(raw.operator);
    if topology.operator(&operator).is_none() {
        return Err(at(path, "operator", Problem::UnknownOperator(operator.0)));
    }
    let capacity = parse_capacity(&raw.capacity).map_err(|problem| at(path, "capacity", problem))?;
    Ok(Target { id, kind, endpoint, country, region, site, operator, capacity })
}

fn target_kind(path: &str, raw: &mut RawTarget) -> Result<TargetKind, TopologyError> {
    match raw.kind.as_str() {
        "node" => {
            let s3_fields = [
                ("bucket", &raw.bucket),
                ("access_key", &raw.access_key),
                ("secret_key", &raw.secret_key),
                ("s3_region", &raw.s3_region),
            ];
            match s3_fields.into_iter().find(|(_, value)| value.is_some()) {
                Some((field, _)) => Err(at(path, field, Problem::OnlyForS3)),
                None => Ok(TargetKind::Node),
            }
        }
        "s3" => {
            let required = |field: &str, value: Option<String>| {
                value.filter(|v| !v.trim().is_empty()).ok_or_else(|| at(path, field, Problem::MissingForS3))
            };
            Ok(TargetKind::S3 {
                bucket: required("bucket", raw.bucket.take())?,
                access_key: required("access_key", raw.access_key.take())?,
                secret_key: required("secret_key", raw.secret_key.take())?,
                region: raw.s3_region.take().unwrap_or_else(|| DEFAULT_S3_REGION.to_owned()),
            })
        }
        other => Err(at(path, "kind", Problem::UnknownKind(other.to_owned()))),
    }
}

fn endpoint(path: &str, url: String) -> Result<String, TopologyError> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let has_host = rest.is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
    if has_host { Ok(url) } else { Err(at(path, "endpoint", Problem::BadEndpoint(url))) }
}

/// Bytes in `"100GiB"`, `"500 GB"` or `"1048576"`; decimal units are powers of 1000, binary ones of 1024.
pub fn parse_capacity(text: &str) -> Result<u64, Problem> {
    let bad = || Problem::BadCapacity(text.to_owned());
    let trimmed = text.trim();
    let (digits, unit) = trimmed.split_at(trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len()));
    let multiplier: u64 = match unit.trim_start().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KIB" => 1 << 10,
        "MIB" => 1 << 20,
        "GIB" => 1 << 30,
        "TIB" => 1 << 40,
        _ => return Err(bad()),
    };
    let count: u64 = digits.parse().map_err(|_| bad())?;
    match count.checked_mul(multiplier) {
        None => Err(bad()),
        Some(0) => Err(Problem::ZeroCapacity),
        Some(bytes) => Ok(bytes),
    }
}

/// Expands every user jurisdiction to its countries, after checking names and members.
fn expand_jurisdictions(
    raw: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, BTreeSet<Country>>, TopologyError> {
    for (name, members) in raw {
        let path = format!("jurisdictions.{name}");
        if name.trim().is_empty() {
            return Err(TopologyError { path, problem: Problem::Empty });
        }
        if BUILTIN.contains_key(name.as_str()) {
            return Err(TopologyError { path, problem: Problem::ClashesWithBuiltin(name.clone()) });
        }
        for (index, member) in members.iter().enumerate() {
            if !BUILTIN.contains_key(member.as_str()) && !raw.contains_key(member) {
                let problem = Problem::UnknownJurisdiction(member.clone());
                return Err(TopologyError { path: format!("{path}[{index}]"), problem });
            }
        }
    }
    let mut expanded = BTreeMap::new();
    for name in raw.keys() {
        expand(name, raw, &mut Vec::new(), &mut expanded)?;
    }
    Ok(expanded)
}

/// Depth-first expansion; `stack` holds the names being expanded, to catch cycles.
fn expand(
    name: &str,
    raw: &BTreeMap<String, Vec<String>>,
    stack: &mut Vec<String>,
    expanded: &mut BTreeMap<String, BTreeSet<Country>>,
) -> Result<BTreeSet<Country>, TopologyError> {
    if let Some(countries) = expanded.get(name) {
        return Ok(countries.clone());
    }
    // Names were checked, and user names cannot shadow built-ins: not user-defined means built-in.
    let Some(members) = raw.get(name) else {
        return Ok(BUILTIN.get(name).cloned().unwrap_or_default());
    };
    if let Some(start) = stack.iter().position(|seen| seen == name) {
        let cycle = format!("{} -> {name}", stack[start..].join(" -> "));
        return Err(TopologyError { path: format!("jurisdictions.{}", stack[start]), problem: Problem::Cycle(cycle) });
    }
    stack.push(name.to_owned());
    let mut countries = BTreeSet::new();
    for member in members {
        countries.extend(expand(member, raw, stack, expanded)?);
    }
    stack.pop();
    expanded.insert(name.to_owned(), countries.clone());
    Ok(countries)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = r#"
[cluster]
secret = "the binary's business"

[[operators]]
id = "op-fr"
name = "Exemple Cloud SAS"
country = "FR"
ownership = { FR = 80.0, DE = 20.0 }
qualifications = [{ name = "secnumcloud", expires = "2027-12-31" }]

[[operators]]
id = "op-de"
name = "Beispiel GmbH"
country = "DE"
ownership = { NORDICS = 100.0 }

[[targets]]
id = "par-1"
kind = "node"
endpoint = "http://127.0.0.1:9101"
country = "FR"
region = "paris"
site = "par-a"
operator = "op-fr"
capacity = "100GiB"

[[targets]]
id = "fra-1"
kind = "node"
endpoint = "https://fra-1.example.de"
country = "DE"
region = "hesse"
site = "fra-a"
operator = "op-de"
capacity = "500 GB"

[[targets]]
id = "sto-s3"
kind = "s3"
endpoint = "https://s3.example.se"
bucket = "coffre"
access_key = "AK"
secret_key = "SK"
country = "SE"
region = "stockholm"
site = "sto-a"
operator = "op-de"
capacity = "1048576"

[jurisdictions]
NORDICS = ["DK", "FI", "SE", "NO", "IS"]
"#;

    #[derive(Deserialize)]
    struct Config {
        operators: Vec<RawOperator>,
        targets: Vec<RawTarget>,
        #[serde(default)]
        jurisdictions: BTreeMap<String, Vec<String>>,
    }

    pub(crate) fn load(text: &str) -> Result<Topology, TopologyError> {
        let config: Config = toml::from_str(text).expect("test TOML is well-formed");
        Topology::from_raw(config.operators, config.targets, config.jurisdictions)
    }

    /// Validates [`EXAMPLE`] with `from` replaced by `to`, expecting an error at `path`; returns the message.
    fn rejects(from: &str, to: &str, path: &str) -> String {
        assert!(EXAMPLE.contains(from), "{from:?} is not in the example");
        let message = load(&EXAMPLE.replacen(from, to, 1)).expect_err("should be rejected").to_string();
        assert!(message.starts_with(&format!("{path}: ")), "expected {path}, got: {message}");
        message
    }

    fn country(code: &str) -> Country {
        code.parse().expect("test country code")
    }

    #[test]
    fn example_validates() {
        let topology = load(EXAMPLE).expect("example is valid");
        assert_eq!(topology.targets().len(), 3);
        let par = topology.target(&TargetId("par-1".into())).expect("par-1");
        assert_eq!(par.location(), "FR/paris/par-a");
        assert_eq!(par.kind, TargetKind::Node);
        assert_eq!(par.capacity, 100 << 30);
        assert_eq!(topology.targets()[1].capacity, 500_000_000_000);
        let TargetKind::S3 { bucket, region, .. } = &topology.targets()[2].kind else { panic!("sto-s3 is s3") };
        assert_eq!((bucket.as_str(), region.as_str()), ("coffre", "us-east-1"));
        let op = topology.operator(&OperatorId("op-fr".into())).expect("op-fr");
        assert_eq!(op.ownership.get("FR"), Some(&80.0));
        assert!(op.qualified("SecNumCloud", time::macros::date!(2027 - 12 - 31)));
        assert!(topology.jurisdiction("NORDICS").is_some_and(|set| set.contains(&country("SE"))));
    }

    #[test]
    fn unknown_fields_are_refused_by_serde() {
        let text = EXAMPLE.replacen("site = \"par-a\"", "site = \"par-a\"\nzone = \"z\"", 1);
        let error = toml::from_str::<Config>(&text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("zone"), "{error}");
    }

    #[test]
    fn rejects_unknown_target_country() {
        let message = rejects("country = \"SE\"", "country = \"XX\"", "targets[2].country");
        assert_eq!(
            message,
            "targets[2].country: unknown country code \"XX\" (expected an ISO 3166-1 alpha-2 code such as FR)"
        );
    }

    #[test]
    fn rejects_lower_case_operator_country() {
        rejects("country = \"FR\"", "country = \"fr\"", "operators[0].country");
    }

    #[test]
    fn rejects_ownership_over_100() {
        rejects("DE = 20.0", "DE = 30.0", "operators[0].ownership");
    }

    #[test]
    fn rejects_negative_ownership() {
        rejects("DE = 20.0", "DE = -5.0", "operators[0].ownership.DE");
    }

    #[test]
    fn rejects_ownership_by_unknown_jurisdiction() {
        rejects("NORDICS = 100.0", "SCANDINAVIA = 100.0", "operators[1].ownership.SCANDINAVIA");
    }

    #[test]
    fn rejects_unknown_operator() {
        rejects("operator = \"op-de\"", "operator = \"op-xx\"", "targets[1].operator");
    }

    #[test]
    fn rejects_duplicate_operator_id() {
        rejects("id = \"op-de\"", "id = \"op-fr\"", "operators[1].id");
    }

    #[test]
    fn rejects_duplicate_target_id() {
        rejects("id = \"fra-1\"", "id = \"par-1\"", "targets[1].id");
    }

    #[test]
    fn rejects_empty_id() {
        rejects("id = \"sto-s3\"", "id = \"\"", "targets[2].id");
    }

    #[test]
    fn rejects_empty_site() {
        rejects("site = \"fra-a\"", "site = \" \"", "targets[1].site");
    }

    #[test]
    fn rejects_empty_region() {
        rejects("region = \"paris\"", "region = \"\"", "targets[0].region");
    }

    #[test]
    fn rejects_empty_operator_name() {
        rejects("name = \"Beispiel GmbH\"", "name = \"\"", "operators[1].name");
    }

    #[test]
    fn rejects_endpoint_without_scheme() {
        rejects("\"https://fra-1.example.de\"", "\"fra-1.example.de:9000\"", "targets[1].endpoint");
        rejects("\"http://127.0.0.1:9101\"", "\"http://\"", "targets[0].endpoint");
    }

    #[test]
    fn rejects_unparseable_capacity() {
        for bad in ["lots", "100 GiBs", "-5GB", "", "GB", "99999999999TiB"] {
            rejects("\"100GiB\"", &format!("{bad:?}"), "targets[0].capacity");
        }
    }

    #[test]
    fn rejects_zero_capacity() {
        let message = rejects("\"100GiB\"", "\"0 TB\"", "targets[0].capacity");
        assert!(message.ends_with("must be above zero"), "{message}");
    }

    #[test]
    fn parses_capacities() {
        assert_eq!(parse_capacity("1048576"), Ok(1_048_576));
        assert_eq!(parse_capacity("500 GB"), Ok(500_000_000_000));
        assert_eq!(parse_capacity("2KiB"), Ok(2048));
        assert_eq!(parse_capacity("3 tb"), Ok(3_000_000_000_000));
        assert_eq!(parse_capacity("7B"), Ok(7));
    }

    #[test]
    fn rejects_bad_expiry_date() {
        rejects("\"2027-12-31\"", "\"31/12/2027\"", "operators[0].qualifications[0].expires");
    }

    #[test]
    fn rejects_s3_target_without_secret() {
        rejects("secret_key = \"SK\"\n", "", "targets[2].secret_key");
    }

    #[test]
    fn rejects_node_target_with_bucket() {
        rejects("region = \"hesse\"", "region = \"hesse\"\nbucket = \"b\"", "targets[1].bucket");
    }

    #[test]
    fn rejects_unknown_kind() {
        rejects("kind = \"s3\"", "kind = \"ftp\"", "targets[2].kind");
    }

    #[test]
    fn rejects_jurisdiction_named_like_a_builtin_or_a_country() {
        rejects("NORDICS = [", "EU = [\"FR\"]\nNORDICS = [", "jurisdictions.EU");
        rejects("NORDICS = [", "CH = [\"FR\"]\nNORDICS = [", "jurisdictions.CH");
    }

    #[test]
    fn rejects_unknown_jurisdiction_member() {
        rejects("\"IS\"]", "\"IS\", \"XX\"]", "jurisdictions.NORDICS[5]");
    }

    #[test]
    fn rejects_jurisdiction_cycle() {
        let message = rejects("NORDICS = [", "A = [\"B\"]\nB = [\"NORDICS\", \"A\"]\nNORDICS = [", "jurisdictions.A");
        assert!(message.contains("A -> B -> A"), "{message}");
        rejects("NORDICS = [\"DK\"", "NORDICS = [\"NORDICS\"", "jurisdictions.NORDICS");
    }

    #[test]
    fn builtin_and_user_jurisdictions_resolve() {
        let text = EXAMPLE.replacen("NORDICS = [", "WIDE = [\"EU\", \"NORDICS\", \"CH\"]\nNORDICS = [", 1);
        let topology = load(&text).expect("valid");
        let eu = topology.jurisdiction("EU").expect("EU");
        assert!(eu.contains(&country("FR")) && !eu.contains(&country("CH")) && !eu.contains(&country("US")));
        assert!(topology.jurisdiction("EEA").is_some_and(|eea| eea.contains(&country("NO"))));
        let wide = topology.jurisdiction("WIDE").expect("WIDE");
        for code in ["FR", "CH", "NO", "IS", "HU"] {
            assert!(wide.contains(&country(code)), "{code}");
        }
        assert_eq!(wide.len(), 27 + 2 + 1, "EU, NO and IS from NORDICS, CH");
        assert!(topology.jurisdiction("nordics").is_none());
    }

    #[test]
    fn raw_target_debug_redacts_the_secret() {
        let config: Config = toml::from_str(EXAMPLE).expect("example parses");
        let shown = format!("{:?}", config.targets[2]);
        assert!(!shown.contains("\"SK\"") && shown.contains("<redacted>"), "{shown}");
    }
}
