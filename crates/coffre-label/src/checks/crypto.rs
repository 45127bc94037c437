//! Cryptography predicates on observed facts: encryption at rest, per-bucket keys, key custody,
//! customer-provided keys, and the TLS versions, suites and groups each listener enforces.

use super::{Ctx, Eval};
use crate::profile::TlsList;
use crate::report::{FactUsed, Outcome};

type Result3 = (Outcome, String, Vec<FactUsed>);

pub(super) fn all_objects_encrypted(ctx: &Ctx) -> Result3 {
    let observed = &ctx.facts.observed;
    let mut eval = Eval::default();
    let value = format!("{} of {}", observed.objects_encrypted, observed.objects_total);
    eval.fact("objects encrypted at rest", value, "observed: object metadata (encryption header of every object)");
    if observed.objects_total == 0 {
        return eval.not_applicable("no object stored yet").finish("");
    }
    if observed.objects_encrypted < observed.objects_total {
        eval.fail(format!("{} objects are not encrypted", observed.objects_total - observed.objects_encrypted));
    }
    eval.finish("every object is encrypted at rest")
}

fn listed(list: &[String], value: &str) -> bool {
    list.iter().any(|item| item.eq_ignore_ascii_case(value))
}

pub(super) fn algorithm_in(ctx: &Ctx, allowed: &[String]) -> Result3 {
    let algorithm = ctx.facts.observed.encryption_algorithm.as_str();
    let mut eval = Eval::default();
    eval.fact("encryption algorithm", algorithm, "observed: object encryption in force");
    if algorithm.is_empty() {
        eval.unknown("the encryption algorithm was not observed");
    } else if !listed(allowed, algorithm) {
        eval.fail(format!("{algorithm} is not one of {}", allowed.join(", ")));
    }
    eval.finish(&format!("{algorithm} is allowed"))
}

/// CRY-02: Coffre has no tenant object; a key per bucket is the finer, stricter reading.
pub(super) fn key_per_bucket(ctx: &Ctx) -> Result3 {
    let buckets = &ctx.facts.observed.buckets;
    let mut eval = Eval::default();
    let own = buckets.iter().filter(|b| b.has_own_key).count();
    eval.fact("buckets with their own key", format!("{own} of {}", buckets.len()), "observed: buckets[].has_own_key");
    if buckets.is_empty() {
        return eval.not_applicable("no bucket yet").finish("");
    }
    for (i, bucket) in buckets.iter().enumerate().filter(|(_, b)| !b.has_own_key) {
        eval.fact(format!("bucket {} own key", bucket.name), "no", format!("observed: buckets[{i}].has_own_key"));
        eval.fail(format!("bucket {} shares a key", bucket.name));
    }
    eval.finish("every bucket has its own key")
}

pub(super) fn custody_in(ctx: &Ctx, allowed: &[String], warn: &[String]) -> Result3 {
    let custody = ctx.facts.observed.kms_custody.as_str();
    let mut eval = Eval::default();
    eval.fact("key custody", custody, "observed: [kms] custodian in force");
    if custody.is_empty() {
        eval.unknown("the key custodian was not observed");
    } else if listed(warn, custody) {
        eval.warn(format!("{custody} custody: whether it is a security container is for the auditor to judge"));
    } else if !listed(allowed, custody) {
        eval.fail(format!("{custody} custody is not one of {}", allowed.join(", ")));
    }
    eval.finish(&format!("keys are held by the {custody} custodian"))
}

pub(super) fn customer_keys(ctx: &Ctx) -> Result3 {
    let offered = ctx.facts.observed.sse_c_offered;
    let mut eval = Eval::default();
    eval.fact(
        "SSE-C (customer-provided keys) offered",
        if offered { "yes" } else { "no" },
        "observed: S3 API features",
    );
    if !offered {
        eval.fail("customers cannot bring their own keys (SSE-C is off)");
    }
    eval.finish("customers can bring their own keys (SSE-C)")
}

/// `TLSv1.2`, `TLSv1_3`, `TLS1.2`, `SSLv3`... as 12, 13, 3; `None` if not a version.
pub(crate) fn tls_version(text: &str) -> Option<u8> {
    let upper = text.trim().to_ascii_uppercase().replace('_', ".");
    let (ssl, number) = match upper.strip_prefix("SSLV").or_else(|| upper.strip_prefix("SSL")) {
        Some(rest) => (true, rest),
        None => (false, upper.strip_prefix("TLSV").or_else(|| upper.strip_prefix("TLS"))?),
    };
    match (ssl, number.trim()) {
        (true, "2" | "2.0") => Some(2),
        (true, "3" | "3.0") => Some(3),
        (false, "1" | "1.0") => Some(10),
        (false, "1.1") => Some(11),
        (false, "1.2") => Some(12),
        (false, "1.3") => Some(13),
        _ => None,
    }
}

/// CRY-04: every listener uses TLS, nothing below `min`, and `preferred` on (else WARN).
pub(super) fn tls_versions(ctx: &Ctx, min: &str, preferred: Option<&str>) -> Result3 {
    let listeners = &ctx.facts.observed.listeners;
    let mut eval = Eval::default();
    if listeners.is_empty() {
        eval.unknown("no listener was observed");
        return eval.finish("");
    }
    let floor = tls_version(min).unwrap_or(u8::MAX);
    let wanted = preferred.and_then(tls_version);
    for (i, listener) in listeners.iter().enumerate() {
        let shown = if listener.tls { listener.versions.join(", ") } else { "plaintext".to_owned() };
        eval.fact(format!("{} listener versions", listener.name), shown, format!("observed: listeners[{i}].versions"));
        let versions: Vec<Option<u8>> = listener.versions.iter().map(|v| tls_version(v)).collect();
        if !listener.tls {
            eval.fail(format!("the {} listener serves plaintext", listener.name));
        } else if versions.is_empty() || versions.contains(&None) {
            eval.unknown(format!("the {} listener's versions are not all recognised", listener.name));
        } else if versions.iter().flatten().any(|v| *v < floor) {
            eval.fail(format!("the {} listener accepts a version below {min}", listener.name));
        } else if wanted.is_some_and(|w| !versions.contains(&Some(w))) {
            eval.warn(format!("the {} listener does not offer {}", listener.name, preferred.unwrap_or_default()));
        }
    }
    eval.finish(&format!("every listener uses TLS, {min} at least"))
}

/// rustls writes TLS 1.3 suites `TLS13_…`; IANA writes `TLS_…`. Groups are compared upper case.
fn normalise(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    match upper.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => match upper.as_str() {
            "P-256" | "P256" => "SECP256R1".to_owned(),
            "P-384" | "P384" => "SECP384R1".to_owned(),
            "P-521" | "P521" => "SECP521R1".to_owned(),
            _ => upper,
        },
    }
}

/// The items of one listener a `TlsList` reads; TLS 1.2 suites are the ones named `…_WITH_…`.
fn items(list: TlsList, suites: &[String], groups: &[String]) -> Vec<String> {
    match list {
        TlsList::Groups => groups.iter().map(|g| normalise(g)).collect(),
        TlsList::Tls12Suites => suites.iter().map(|s| normalise(s)).filter(|s| s.contains("_WITH_")).collect(),
        TlsList::Tls13Suites => suites.iter().map(|s| normalise(s)).filter(|s| !s.contains("_WITH_")).collect(),
    }
}

/// CRY-05..07: every suite or group of every TLS listener is allowed (or only tolerated: WARN).
pub(super) fn tls_parameters(ctx: &Ctx, list: TlsList, allowed: &[String], warn: &[String]) -> Result3 {
    let mut eval = Eval::default();
    let tls: Vec<_> = ctx.facts.observed.listeners.iter().enumerate().filter(|(_, l)| l.tls).collect();
    if tls.is_empty() {
        return eval.not_applicable("no TLS listener (see CRY-04)").finish("");
    }
    let field = if list == TlsList::Groups { "groups" } else { "suites" };
    for (i, listener) in tls {
        let found = items(list, &listener.suites, &listener.groups);
        eval.fact(
            format!("{} listener {field}", listener.name),
            found.join(", "),
            format!("observed: listeners[{i}].{field}"),
        );
        let version = if list == TlsList::Tls12Suites { 12 } else { 13 };
        let offers_version = listener.versions.iter().any(|v| tls_version(v) == Some(version));
        if found.is_empty() && (list == TlsList::Groups || offers_version) {
            eval.unknown(format!("the {} listener reports no {field}", listener.name));
        }
        for item in found {
            let normalised = |l: &[String]| l.iter().any(|a| normalise(a) == item);
            if normalised(warn) {
                eval.warn(format!("{item} on the {} listener is tolerated, not recommended", listener.name));
            } else if !normalised(allowed) {
                eval.fail(format!("{item} on the {} listener is not allowed", listener.name));
            }
        }
    }
    eval.finish(&format!("every {field} entry is on the recommended list"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_versions_parse_in_every_spelling() {
        for (text, number) in [("TLSv1.2", 12), ("TLSv1_3", 13), ("tls1.1", 11), ("TLSv1", 10), ("SSLv3", 3)] {
            assert_eq!(tls_version(text), Some(number), "{text}");
        }
        assert_eq!(tls_version("TLSv1.4"), None);
        assert_eq!(tls_version("QUIC"), None);
    }

    #[test]
    fn rustls_and_iana_names_meet() {
        assert_eq!(normalise("TLS13_AES_256_GCM_SHA384"), "TLS_AES_256_GCM_SHA384");
        assert_eq!(normalise("secp256r1"), normalise("P-256"));
    }
}
