//! Ownership predicates (SNC §19.6): seats of the provider and operators, look-through
//! holdings outside a jurisdiction, control rights, and links with governments.

use std::collections::BTreeSet;

use coffre_topology::OperatorId;

use super::{Ctx, Eval, pct};
use crate::declared::{Entity, Holder};
use crate::ownership::{Exposure, Share, Side, exposure, foreign_rights, holder_side, look_through};
use crate::profile::Measure;
use crate::report::{FactUsed, Outcome};

type Result3 = (Outcome, String, Vec<FactUsed>);

/// Rounding slack: 24.0 declared must not read as 24.0000001.
const SLACK: f64 = 1e-9;

/// The entities the rules bind: the provider, and the operator of every storage target.
fn subjects<'a>(ctx: &'a Ctx, eval: &mut Eval) -> Vec<&'a Entity> {
    let declared = &ctx.facts.declared;
    let mut subjects: Vec<&Entity> = Vec::new();
    match declared.provider.as_deref().and_then(|id| declared.entity(id)) {
        Some(provider) => {
            eval.fact("provider", &provider.id, "config: label.provider");
            subjects.push(provider);
        }
        None => eval.unknown("the provider is not declared (label.provider)"),
    }
    let operators: BTreeSet<&str> = ctx.facts.observed.targets.iter().map(|t| t.operator.as_str()).collect();
    for operator in operators {
        let entity = declared.operator_entities.get(&OperatorId(operator.to_owned())).and_then(|e| declared.entity(e));
        match entity {
            Some(entity) => {
                eval.fact(
                    format!("operator {operator}"),
                    &entity.id,
                    format!("config: label.operator_entities.{operator}"),
                );
                if !subjects.iter().any(|s| s.id == entity.id) {
                    subjects.push(entity);
                }
            }
            None => eval.unknown(format!("operator {operator} has no entity in label.operator_entities")),
        }
    }
    subjects
}

pub(super) fn entity_seats_in(ctx: &Ctx, jurisdiction: &str) -> Result3 {
    let mut eval = Eval::default();
    let allowed = ctx.set(jurisdiction);
    for entity in subjects(ctx, &mut eval) {
        for (field, seat) in entity.seats() {
            let shown = seat.map_or_else(|| "not declared".to_owned(), |c| c.to_string());
            eval.fact(format!("{} {field}", entity.id), shown, format!("config: {}.{field}", entity.path));
            match seat {
                None => eval.unknown(format!("{} {field} is not declared", entity.id)),
                Some(country) if !allowed.contains(&country) => {
                    eval.fail(format!("{} {field} is {country}, outside {jurisdiction}", entity.id))
                }
                Some(_) => {}
            }
        }
    }
    eval.finish(&format!("registered office, central administration and principal establishment in {jurisdiction}"))
}

fn measure(share: Share, which: Measure) -> f64 {
    match which {
        Measure::Capital => share.capital,
        Measure::Voting => share.voting,
    }
}

/// Records the undeclared part of an entity's ownership, when there is one.
fn unknown_fact(eval: &mut Eval, entity: &Entity, exposure: &Exposure, which: Measure) {
    let name = which.as_str();
    if measure(exposure.unknown, which) > SLACK {
        let why = exposure.gaps.join("; ");
        eval.fact(
            format!("{} {name} not attributed", entity.id),
            pct(measure(exposure.unknown, which)),
            format!("config: {}.shareholders ({why})", entity.path),
        );
    }
}

/// OWN-02: no single outside holder above `limit`, directly or indirectly.
pub(super) fn max_single(ctx: &Ctx, limit: f64, outside: &str, measures: Option<&[Measure]>) -> Result3 {
    let both = [Measure::Capital, Measure::Voting];
    let mut eval = Eval::default();
    let subjects = subjects(ctx, &mut eval);
    single_into(ctx, &mut eval, &subjects, limit, outside, measures.unwrap_or(&both));
    eval.finish(&format!("no holder outside {outside} above {}", pct(limit)))
}

fn single_into(ctx: &Ctx, eval: &mut Eval, subjects: &[&Entity], limit: f64, outside: &str, measures: &[Measure]) {
    let declared = &ctx.facts.declared;
    let inside = ctx.set(outside);
    for entity in subjects {
        let holdings = look_through(declared, entity);
        let exposure = exposure(declared, entity, inside);
        for &which in measures {
            let name = which.as_str();
            let largest = holdings
                .iter()
                .filter(|h| holder_side(declared, &h.holder, inside) == Side::Outside)
                .max_by(|a, b| measure(a.share, which).total_cmp(&measure(b.share, which)));
            let (holder, value) = largest.map_or(("none", 0.0), |h| (h.holder.name(), measure(h.share, which)));
            let source = format!("config: {}.shareholders (look-through)", entity.path);
            eval.fact(
                format!("{} largest {name} held outside {outside}", entity.id),
                format!("{} ({holder})", pct(value)),
                source,
            );
            unknown_fact(eval, entity, &exposure, which);
            let unknown = measure(exposure.unknown, which);
            if value > limit + SLACK {
                eval.fail(format!("{holder} holds {} of {} {name}, above {}", pct(value), entity.id, pct(limit)));
            } else if value + unknown > limit + SLACK {
                let worst = pct(value + unknown);
                eval.unknown(format!(
                    "{} of {} {name} is not attributed: the largest outside holding could reach {worst}",
                    pct(unknown),
                    entity.id
                ));
            }
        }
    }
}

/// OWN-03: all outside holders together at most `limit`, counted at their first outside link.
pub(super) fn max_total(ctx: &Ctx, limit: f64, outside: &str) -> Result3 {
    let declared = &ctx.facts.declared;
    let mut eval = Eval::default();
    for entity in subjects(ctx, &mut eval) {
        let exposure = exposure(declared, entity, ctx.set(outside));
        for which in [Measure::Capital, Measure::Voting] {
            let name = which.as_str();
            let value = measure(exposure.outside, which);
            let source = format!("config: {}.shareholders (look-through)", entity.path);
            eval.fact(format!("{} {name} held outside {outside}", entity.id), pct(value), source);
            unknown_fact(&mut eval, entity, &exposure, which);
            let worst = value + measure(exposure.unknown, which);
            if value > limit + SLACK {
                eval.fail(format!(
                    "holders outside {outside} hold {} of {} {name}, above {}",
                    pct(value),
                    entity.id,
                    pct(limit)
                ));
            } else if worst > limit + SLACK {
                eval.unknown(format!(
                    "{} of {} {name} is not attributed: the outside total could reach {}",
                    pct(measure(exposure.unknown, which)),
                    entity.id,
                    pct(worst)
                ));
            }
        }
    }
    eval.finish(&format!("holders outside {outside} hold at most {} together", pct(limit)))
}

/// OWN-04: no veto and no board-majority right for an outside holder, over the entity or a controlling parent.
pub(super) fn no_foreign_rights(ctx: &Ctx, outside: &str) -> Result3 {
    let mut eval = Eval::default();
    let subjects = subjects(ctx, &mut eval);
    rights_into(ctx, &mut eval, &subjects, outside, true);
    eval.finish(&format!("no holder outside {outside} has a veto or board-majority right"))
}

/// OWN-05: no outside holder with more than half the votes (look-through) or a board majority;
/// a veto alone is not read as decisive influence here.
pub(super) fn no_foreign_control(ctx: &Ctx, outside: &str) -> Result3 {
    let mut eval = Eval::default();
    let subjects = subjects(ctx, &mut eval);
    single_into(ctx, &mut eval, &subjects, 50.0, outside, &[Measure::Voting]);
    rights_into(ctx, &mut eval, &subjects, outside, false);
    eval.finish(&format!("no holder outside {outside} controls the provider or an operator"))
}

fn rights_into(ctx: &Ctx, eval: &mut Eval, subjects: &[&Entity], outside: &str, with_veto: bool) {
    for entity in subjects {
        if entity.shareholders.is_empty() {
            eval.unknown(format!("{} declares no shareholders", entity.id));
            continue;
        }
        eval.fact(
            format!("{} shareholders", entity.id),
            entity.shareholders.len(),
            format!("config: {}.shareholders", entity.path),
        );
        for right in foreign_rights(&ctx.facts.declared, entity, ctx.set(outside)) {
            let kind = if right.shareholder.board_majority { "board_majority" } else { "veto" };
            if kind == "veto" && !with_veto {
                continue;
            }
            let holder = right.shareholder.holder.name();
            eval.fact(
                format!("{holder} {kind} over {}", right.over.id),
                "yes",
                format!("config: {}.{kind}", right.shareholder.path),
            );
            match right.side {
                Side::Unknown => eval.unknown(format!(
                    "{holder} holds a {kind} right over {} and a seat of it is not declared",
                    right.over.id
                )),
                _ => eval.fail(format!("{holder}, outside {outside}, holds a {kind} right over {}", right.over.id)),
            }
        }
    }
}

/// OWN-07: declared links with a government need a manual review; undeclared ones are unknown.
pub(super) fn no_government_links(ctx: &Ctx) -> Result3 {
    let declared = &ctx.facts.declared;
    let mut eval = Eval::default();
    let mut entities: Vec<&Entity> = Vec::new();
    for subject in subjects(ctx, &mut eval) {
        let holders = look_through(declared, subject).into_iter().filter_map(|h| match h.holder {
            Holder::Entity(id) => declared.entity(&id),
            Holder::Ultimate { .. } => None,
        });
        for entity in std::iter::once(subject).chain(holders) {
            if !entities.iter().any(|e| e.id == entity.id) {
                entities.push(entity);
            }
        }
    }
    for entity in entities {
        eval.fact(
            format!("{} government links", entity.id),
            super::yes_no(entity.government_links),
            format!("config: {}.government_links", entity.path),
        );
        match entity.government_links {
            Some(true) => eval.warn(format!("{} declares links with a government: manual review", entity.id)),
            None => eval.unknown(format!("{} does not declare government_links", entity.id)),
            Some(false) => {}
        }
    }
    eval.finish("no declared link with a government")
}
