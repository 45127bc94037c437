//! Predicates on declared terms and attestations: third parties, log retention and integrity,
//! contract days, governing law, and yes/no declarations.

use std::collections::BTreeMap;

use super::{Ctx, Eval, yes_no};
use crate::declared::ThirdParty;
use crate::profile::{Access, ContractTerm};
use crate::report::{FactUsed, Outcome};

type Result3 = (Outcome, String, Vec<FactUsed>);

/// Third parties outside the jurisdiction, or controlled from outside it.
fn outside_parties<'a>(ctx: &'a Ctx, outside: &str, eval: &mut Eval) -> Vec<&'a ThirdParty> {
    let inside = ctx.set(outside);
    let parties = &ctx.facts.declared.third_parties;
    eval.fact("third parties declared", parties.len(), "config: third_parties");
    let foreign =
        |p: &&ThirdParty| !inside.contains(&p.country) || p.controlled_from.is_some_and(|c| !inside.contains(&c));
    parties.iter().filter(foreign).collect()
}

fn describe(party: &ThirdParty) -> String {
    let control = party.controlled_from.map(|c| format!(", controlled from {c}")).unwrap_or_default();
    format!("{} ({}, {}{control})", party.name, party.role, party.country)
}

/// SUB-01, KEY-03: no outside third party can technically reach data or keys.
pub(super) fn third_parties_no_access(ctx: &Ctx, outside: &str, access: &[Access]) -> Result3 {
    let mut eval = Eval::default();
    let parties = outside_parties(ctx, outside, &mut eval);
    if parties.is_empty() {
        return eval.not_applicable(format!("no third party outside {outside} is declared")).finish("");
    }
    for party in parties {
        for kind in access {
            let (field, value, what) = match kind {
                Access::Data => ("data_access", party.data_access, "customer data"),
                Access::Keys => ("key_access", party.key_access, "keys or identities"),
            };
            eval.fact(format!("{} {field}", describe(party)), yes_no(value), format!("config: {}.{field}", party.path));
            match value {
                Some(true) => eval.fail(format!("{} can reach {what}", party.name)),
                None => eval.unknown(format!("{} does not declare {field}", party.name)),
                Some(false) => {}
            }
        }
    }
    eval.finish(&format!("no third party outside {outside} can reach data or keys (declared; needs audit evidence)"))
}

/// SUB-02: outside third parties hold the SecNumCloud visa or guarantee operating autonomy.
pub(super) fn third_parties_autonomy(ctx: &Ctx, outside: &str) -> Result3 {
    let mut eval = Eval::default();
    let parties = outside_parties(ctx, outside, &mut eval);
    if parties.is_empty() {
        return eval.not_applicable(format!("no third party outside {outside} is declared")).finish("");
    }
    for party in parties {
        eval.fact(
            format!("{} holds the SecNumCloud visa", describe(party)),
            yes_no(party.snc_qualified),
            format!("config: {}.snc_qualified", party.path),
        );
        eval.fact(
            format!("{} autonomy_plan", describe(party)),
            yes_no(party.autonomy_plan),
            format!("config: {}.autonomy_plan", party.path),
        );
        match (party.snc_qualified, party.autonomy_plan) {
            (Some(true), _) | (_, Some(true)) => {}
            (Some(false), Some(false)) => eval.fail(format!("{} guarantees no operating autonomy", party.name)),
            _ => eval.unknown(format!("{} declares neither snc_qualified nor autonomy_plan", party.name)),
        }
    }
    eval.finish("every outside third party guarantees operating autonomy (declared)")
}

/// LOG-03: the longer of Coffre's audit retention and the declared central store's counts.
pub(super) fn min_retention(ctx: &Ctx, days: u64, warn_above: Option<u64>) -> Result3 {
    let observed = ctx.facts.observed.audit_retention_days;
    let declared = ctx.facts.declared.log_retention_days.map(u64::from);
    let mut eval = Eval::default();
    let shown = |v: Option<u64>| v.map_or_else(|| "unknown".to_owned(), |d| format!("{d} days"));
    eval.fact("audit log retention", shown(observed), "observed: audit log retention setting");
    eval.fact("central log retention", shown(declared), "config: label.log_retention_days");
    let Some(best) = observed.max(declared) else {
        eval.unknown("no log retention observed or declared");
        return eval.finish("");
    };
    if best < days {
        eval.fail(format!("logs are kept {best} days, less than {days}"));
    } else if let Some(limit) = warn_above.filter(|limit| best > *limit) {
        eval.warn(format!(
            "logs are kept {best} days, more than {limit}: justify it for logs holding personal data (CNIL)"
        ));
    }
    eval.finish(&format!("logs are kept {best} days, at least {days}"))
}

/// LOG-05: the audit log's hash chain and signed heads verify.
pub(super) fn audit_log_verifies(ctx: &Ctx) -> Result3 {
    let verifies = ctx.facts.observed.audit_log_verifies;
    let mut eval = Eval::default();
    eval.fact(
        "audit log verifies",
        yes_no(verifies).replace("not declared", "not checked"),
        "observed: audit log verification",
    );
    match verifies {
        Some(false) => eval.fail("the audit log does not verify: it was altered or damaged"),
        None => eval.unknown("the audit log was not verified"),
        Some(true) => {}
    }
    eval.finish("the audit log is tamper-evident and verifies")
}

fn term(ctx: &Ctx, term: ContractTerm) -> (Option<u32>, &'static str) {
    let contract = &ctx.facts.declared.contract;
    match term {
        ContractTerm::DeletionNotice => (contract.deletion_notice_days, "deletion_notice_days"),
        ContractTerm::SovereigntyChangeNotice => {
            (contract.sovereignty_change_notice_days, "sovereignty_change_notice_days")
        }
        ContractTerm::SwitchingNotice => (contract.switching_notice_days, "switching_notice_days"),
        ContractTerm::SwitchingTransition => (contract.switching_transition_days, "switching_transition_days"),
        ContractTerm::RetrievalWindow => (contract.retrieval_window_days, "retrieval_window_days"),
    }
}

/// Contract terms within bounds, in calendar days.
pub(super) fn contract_days(
    ctx: &Ctx,
    min: &BTreeMap<ContractTerm, u32>,
    max: &BTreeMap<ContractTerm, u32>,
) -> Result3 {
    let mut eval = Eval::default();
    let mut terms: Vec<ContractTerm> = min.keys().chain(max.keys()).copied().collect();
    terms.sort();
    terms.dedup();
    for name in terms {
        let (value, field) = term(ctx, name);
        let shown = value.map_or_else(|| "not declared".to_owned(), |d| format!("{d} days"));
        eval.fact(field, shown, format!("config: label.contract.{field}"));
        let Some(days) = value else {
            eval.unknown(format!("label.contract.{field} is not declared"));
            continue;
        };
        if let Some(low) = min.get(&name).filter(|low| days < **low) {
            eval.fail(format!("{field} is {days}, less than {low}"));
        }
        if let Some(high) = max.get(&name).filter(|high| days > **high) {
            eval.fail(format!("{field} is {days}, more than {high}"));
        }
    }
    eval.finish("contract terms within bounds")
}

pub(super) fn governing_law_in(ctx: &Ctx, jurisdiction: &str) -> Result3 {
    let law = ctx.facts.declared.contract.governing_law;
    let mut eval = Eval::default();
    eval.fact(
        "governing law",
        law.map_or_else(|| "not declared".to_owned(), |c| c.to_string()),
        "config: label.contract.governing_law",
    );
    match law {
        None => eval.unknown("the governing law of the agreement is not declared"),
        Some(country) if !ctx.set(jurisdiction).contains(&country) => {
            eval.fail(format!("the agreement is governed by the law of {country}, outside {jurisdiction}"))
        }
        Some(_) => {}
    }
    eval.finish(&format!("the agreement is governed by the law of a state in {jurisdiction}"))
}

/// What nothing can observe: PASS only on an explicit `true`, which still needs audit evidence.
pub(super) fn attested(ctx: &Ctx, name: &str) -> Result3 {
    let value = ctx.facts.declared.attestations.get(name).copied();
    let mut eval = Eval::default();
    eval.fact(name, yes_no(value), format!("config: label.attestations.{name}"));
    match value {
        Some(false) => eval.fail(format!("declared not met (label.attestations.{name} = false)")),
        None => eval.unknown(format!("not observable and not declared: set label.attestations.{name}")),
        Some(true) => {}
    }
    eval.finish("declared met by the operator; to be backed by audit evidence")
}
