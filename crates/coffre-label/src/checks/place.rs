//! Location predicates: declared and observed countries of targets, gateway, admins and keys,
//! and where replicas actually are compared with their bucket's policy.

use std::collections::{BTreeMap, BTreeSet};

use coffre_topology::Country;

use super::{Ctx, Eval, MAX_LISTED};
use crate::profile::FactSet;
use crate::report::{FactUsed, Outcome};

type Result3 = (Outcome, String, Vec<FactUsed>);

/// One located thing: its name in the report, its country as read, and where that was read.
struct Located {
    name: String,
    country: String,
    source: String,
}

pub(super) fn countries_in(ctx: &Ctx, set: FactSet, jurisdiction: &str) -> Result3 {
    let mut eval = Eval::default();
    let Some(items) = located(ctx, set, &mut eval) else { return eval.finish("") };
    let allowed = ctx.set(jurisdiction);
    for item in &items {
        eval.fact(&item.name, &item.country, &item.source);
        if !item.country.parse::<Country>().is_ok_and(|c| allowed.contains(&c)) {
            eval.fail(format!("{} is in {}, outside {jurisdiction}", item.name, item.country));
        }
    }
    eval.finish(&format!("{} location(s) read, all in {jurisdiction}", items.len()))
}

/// The countries a fact set stands for; `None` (with UNKNOWN raised) when not declared.
fn located(ctx: &Ctx, set: FactSet, eval: &mut Eval) -> Option<Vec<Located>> {
    let items = declared_or_observed(ctx, set).filter(|items| !items.is_empty());
    if items.is_none() {
        eval.unknown(format!("no country declared or observed for {}", fact_set_name(set)));
    }
    items
}

fn declared_or_observed(ctx: &Ctx, set: FactSet) -> Option<Vec<Located>> {
    let declared = &ctx.facts.declared;
    let observed = &ctx.facts.observed;
    let list = |name: &str, field: &str, countries: &[Country]| -> Vec<Located> {
        let located = countries.iter().enumerate().map(|(i, country)| Located {
            name: name.to_owned(),
            country: country.to_string(),
            source: format!("config: label.{field}[{i}]"),
        });
        located.collect()
    };
    let gateway = declared.processing_countries.as_deref();
    Some(match set {
        FactSet::StorageTargets if !observed.targets.is_empty() => observed
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| Located {
                name: format!("storage target {}", t.id),
                country: t.country.clone(),
                source: format!("observed: targets[{i}].country (declared in [[targets]])"),
            })
            .collect(),
        // Without targets the server stores objects on its own disks, where the gateway runs.
        FactSet::StorageTargets | FactSet::Processing => {
            list("gateway (local storage, metadata, audit log)", "processing_countries", gateway?)
        }
        FactSet::AdminOrigins => list("admin access origin", "admin_origins", declared.admin_origins.as_deref()?),
        FactSet::Kms => match (&declared.kms_countries, observed.kms_custody.as_str()) {
            (Some(countries), _) => list("key custodian", "kms_countries", countries),
            // The embedded custodian keeps its master key in the server's data directory.
            (None, "embedded") => list("embedded key custodian", "processing_countries", gateway?),
            (None, _) => return None,
        },
    })
}

fn fact_set_name(set: FactSet) -> &'static str {
    match set {
        FactSet::StorageTargets => "storage (label.processing_countries when there is no target)",
        FactSet::Processing => "processing (label.processing_countries)",
        FactSet::AdminOrigins => "admin access (label.admin_origins)",
        FactSet::Kms => "the key custodian (label.kms_countries)",
    }
}

/// Every replica must sit in its bucket's allowed countries and, if given, in the jurisdiction.
pub(super) fn observed_residency(ctx: &Ctx, jurisdiction: Option<&str>) -> Result3 {
    let observed = &ctx.facts.observed;
    let mut eval = Eval::default();
    let policies: BTreeMap<&str, Option<BTreeSet<&str>>> = observed
        .buckets
        .iter()
        .map(|b| (b.name.as_str(), b.allowed_countries.as_ref().map(|l| l.iter().map(String::as_str).collect())))
        .collect();
    for (i, bucket) in observed.buckets.iter().enumerate() {
        let policy = bucket.allowed_countries.as_ref().map_or_else(|| "no policy".to_owned(), |l| l.join(", "));
        eval.fact(
            format!("bucket {} allowed countries", bucket.name),
            policy,
            format!("observed: buckets[{i}].allowed_countries"),
        );
    }
    let has_policy = policies.values().any(Option::is_some);
    if observed.replicas.is_empty() || (!has_policy && jurisdiction.is_none()) {
        let why = if observed.replicas.is_empty() { "no replica observed" } else { "no bucket has a residency policy" };
        if observed.objects_total > 0 && observed.replicas.is_empty() {
            eval.unknown(format!("{} objects stored but no replica location observed", observed.objects_total));
            return eval.finish("");
        }
        return eval.not_applicable(why).finish("");
    }
    let allowed = jurisdiction.map(|j| ctx.set(j));
    let mut listed = 0;
    for (i, replica) in observed.replicas.iter().enumerate() {
        let Some(problem) = replica_problem(replica.country.as_str(), policies.get(replica.bucket.as_str()), allowed)
        else {
            continue;
        };
        if listed < MAX_LISTED {
            let name = format!("replica of {}/{} on {}", replica.bucket, replica.key, replica.target);
            eval.fact(name, &replica.country, format!("observed: replicas[{i}].country"));
            listed += 1;
        }
        match problem {
            Outcome::Unknown => {
                eval.unknown(format!("bucket {} of {} is not in the observed buckets", replica.bucket, replica.key))
            }
            _ => eval.fail(format!(
                "{}/{} has a replica in {} on {}",
                replica.bucket, replica.key, replica.country, replica.target
            )),
        }
    }
    eval.fact("replicas checked", observed.replicas.len(), "observed: replicas (placement map)");
    eval.finish(&format!("all {} replicas are where their bucket allows", observed.replicas.len()))
}

/// FAIL outside the jurisdiction or the bucket's policy; UNKNOWN for a bucket never observed.
fn replica_problem(
    country: &str,
    policy: Option<&Option<BTreeSet<&str>>>,
    allowed: Option<&BTreeSet<Country>>,
) -> Option<Outcome> {
    let in_jurisdiction = allowed.is_none_or(|set| country.parse::<Country>().is_ok_and(|c| set.contains(&c)));
    if !in_jurisdiction {
        return Some(Outcome::Fail);
    }
    match policy {
        None => Some(Outcome::Unknown),
        Some(Some(countries)) if !countries.contains(country) => Some(Outcome::Fail),
        Some(_) => None,
    }
}

/// LOC-04: every target states country, region, site and operator; or the gateway's countries.
pub(super) fn locations_complete(ctx: &Ctx) -> Result3 {
    let mut eval = Eval::default();
    let targets = &ctx.facts.observed.targets;
    if targets.is_empty() {
        match &ctx.facts.declared.processing_countries {
            Some(list) if !list.is_empty() => {
                eval.fact("gateway countries", super::country_list(list), "config: label.processing_countries")
            }
            _ => eval.unknown("no storage target and no label.processing_countries: the location is not declared"),
        }
        return eval.finish("the single gateway's location is declared");
    }
    for (i, t) in targets.iter().enumerate() {
        let value = format!("{}/{}/{} run by {}", t.country, t.region, t.site, t.operator);
        eval.fact(format!("storage target {}", t.id), &value, format!("observed: targets[{i}]"));
        if [&t.country, &t.region, &t.site, &t.operator].iter().any(|s| s.trim().is_empty()) {
            eval.fail(format!("storage target {} does not state its full location and operator", t.id));
        }
    }
    eval.finish("every storage target states country, region, site and operator")
}
