//! Look-through ownership: who holds an entity directly or indirectly, what part of it sits
//! outside a jurisdiction, what part is undeclared, and which foreign holders have control rights.

use std::collections::BTreeSet;
use std::ops::AddAssign;

use coffre_topology::Country;

use crate::declared::{DeclaredFacts, Entity, Holder, Shareholder};

/// Below this a percentage is rounding noise, not an undeclared holder.
const EPSILON: f64 = 1e-6;

/// A stake in percent of capital and of voting rights, each measured separately.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Share {
    pub capital: f64,
    pub voting: f64,
}

impl AddAssign for Share {
    fn add_assign(&mut self, other: Share) {
        self.capital += other.capital;
        self.voting += other.voting;
    }
}

impl Share {
    /// The whole of an entity.
    pub const FULL: Share = Share { capital: 100.0, voting: 100.0 };

    /// What a shareholder's percentages of an entity amount to, given this stake in that entity.
    fn through(self, capital: f64, voting: f64) -> Share {
        Share { capital: self.capital * capital / 100.0, voting: self.voting * voting / 100.0 }
    }

    fn is_zero(self) -> bool {
        self.capital <= EPSILON && self.voting <= EPSILON
    }
}

/// One holder's effective stake: products along each chain, summed over chains.
#[derive(Clone, Debug, PartialEq)]
pub struct Holding {
    pub holder: Holder,
    pub share: Share,
}

/// Every holder reached from `entity`, intermediate entities included, in first-seen order.
///
/// Capital and votes are multiplied along chains separately (the profiles' reading of
/// "directly or indirectly", see docs/trust-label.md; voting agreements are not modelled).
/// Cycles were refused at validation.
pub fn look_through(declared: &DeclaredFacts, entity: &Entity) -> Vec<Holding> {
    fn walk(declared: &DeclaredFacts, entity: &Entity, stake: Share, out: &mut Vec<Holding>) {
        for shareholder in &entity.shareholders {
            let part = stake.through(shareholder.capital, shareholder.voting);
            match out.iter_mut().find(|h| h.holder == shareholder.holder) {
                Some(holding) => holding.share += part,
                None => out.push(Holding { holder: shareholder.holder.clone(), share: part }),
            }
            if let Holder::Entity(id) = &shareholder.holder
                && let Some(next) = declared.entity(id)
            {
                walk(declared, next, part, out);
            }
        }
    }
    let mut holdings = Vec::new();
    walk(declared, entity, Share::FULL, &mut holdings);
    holdings
}

/// Where a holder sits relative to a jurisdiction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Inside,
    Outside,
    /// An entity with a seat not declared, and none known outside.
    Unknown,
}

/// An entity is outside if any of its three seats is (SNC 19.6.b: "or").
pub fn entity_side(entity: &Entity, inside: &BTreeSet<Country>) -> Side {
    let seats = entity.seats();
    if seats.iter().any(|(_, seat)| seat.is_some_and(|c| !inside.contains(&c))) {
        Side::Outside
    } else if seats.iter().any(|(_, seat)| seat.is_none()) {
        Side::Unknown
    } else {
        Side::Inside
    }
}

pub fn holder_side(declared: &DeclaredFacts, holder: &Holder, inside: &BTreeSet<Country>) -> Side {
    match holder {
        Holder::Ultimate { country, .. } if inside.contains(country) => Side::Inside,
        Holder::Ultimate { .. } => Side::Outside,
        Holder::Entity(id) => declared.entity(id).map_or(Side::Unknown, |e| entity_side(e, inside)),
    }
}

/// The part of an entity held from outside a jurisdiction, and the part nobody declared.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposure {
    /// Held through the first outside link of each chain (counted once, not again further up).
    pub outside: Share,
    /// Undeclared shareholders, or holders whose side is unknown.
    pub unknown: Share,
    /// Why `unknown` is not zero, for the report.
    pub gaps: Vec<String>,
}

/// Walks down inside entities only: everything held by an outside holder is already foreign.
pub fn exposure(declared: &DeclaredFacts, entity: &Entity, inside: &BTreeSet<Country>) -> Exposure {
    let mut exposure = Exposure::default();
    exposure_walk(declared, entity, Share::FULL, inside, &mut exposure);
    exposure
}

fn exposure_walk(
    declared: &DeclaredFacts,
    entity: &Entity,
    stake: Share,
    inside: &BTreeSet<Country>,
    out: &mut Exposure,
) {
    if entity.shareholders.is_empty() {
        out.unknown += stake;
        out.gaps.push(format!("{} declares no shareholders", entity.id));
        return;
    }
    let declared_capital: f64 = entity.shareholders.iter().map(|s| s.capital).sum();
    let declared_voting: f64 = entity.shareholders.iter().map(|s| s.voting).sum();
    let residual = stake.through(100.0 - declared_capital, 100.0 - declared_voting);
    if !residual.is_zero() {
        out.unknown += residual;
        out.gaps.push(format!("shareholders of {} are declared for less than 100%", entity.id));
    }
    for shareholder in &entity.shareholders {
        let part = stake.through(shareholder.capital, shareholder.voting);
        match holder_side(declared, &shareholder.holder, inside) {
            Side::Outside => out.outside += part,
            Side::Unknown => {
                out.unknown += part;
                out.gaps.push(format!("a seat of {} is not declared", shareholder.holder.name()));
            }
            Side::Inside => {
                if let Holder::Entity(id) = &shareholder.holder
                    && let Some(next) = declared.entity(id)
                {
                    exposure_walk(declared, next, part, inside, out);
                }
            }
        }
    }
}

/// A veto or board-majority right held by a holder not known to be inside.
#[derive(Clone, Debug)]
pub struct ControlRight<'a> {
    pub shareholder: &'a Shareholder,
    /// The entity the right is held over.
    pub over: &'a Entity,
    pub side: Side,
}

/// Rights over `entity`, and over inside entities that control it (veto, board majority or
/// more than half the votes): a right over a controlling parent is a right over the child.
pub fn foreign_rights<'a>(
    declared: &'a DeclaredFacts,
    entity: &'a Entity,
    inside: &BTreeSet<Country>,
) -> Vec<ControlRight<'a>> {
    let mut rights = Vec::new();
    for shareholder in &entity.shareholders {
        let side = holder_side(declared, &shareholder.holder, inside);
        if (shareholder.veto || shareholder.board_majority) && side != Side::Inside {
            rights.push(ControlRight { shareholder, over: entity, side });
        }
        let controls = shareholder.veto || shareholder.board_majority || shareholder.voting > 50.0;
        if side == Side::Inside
            && controls
            && let Holder::Entity(id) = &shareholder.holder
            && let Some(parent) = declared.entity(id)
        {
            rights.extend(foreign_rights(declared, parent, inside));
        }
    }
    rights
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declared::RawDeclared;
    use crate::fixtures::{entity, eu, holder, with_entities};
    use coffre_topology::Topology;

    #[test]
    fn chains_multiply_and_paths_add() {
        // op <- 60% hold (FR) <- 40% X (US), and op <- 10% X directly: X = 0.6 * 40 + 10 = 34.
        let declared = with_entities(vec![
            ("op", "FR", vec![holder("hold", 60.0), holder("X@US", 10.0), holder("p@FR", 30.0)]),
            ("hold", "FR", vec![holder("X@US", 40.0), holder("q@FR", 60.0)]),
        ]);
        let holdings = look_through(&declared, &declared.entities[0]);
        let x = holdings.iter().find(|h| h.holder.name() == "X").map(|h| h.share.capital);
        assert!(x.is_some_and(|x| (x - 34.0).abs() < 1e-9), "{x:?}");
        let exposure = exposure(&declared, &declared.entities[0], &eu());
        assert!((exposure.outside.capital - 34.0).abs() < 1e-9 && exposure.unknown.capital.abs() < 1e-9);
    }

    #[test]
    fn undeclared_and_unknown_seats_are_unknown_share() {
        // op: 50% by hold, whose registered office is not declared; 40% FR; 10% nobody declared.
        let mut hold = entity("hold", "FR", vec![holder("p@FR", 100.0)]);
        hold.registered_office = None;
        let op = entity("op", "FR", vec![holder("hold", 50.0), holder("p@FR", 40.0)]);
        let raw = RawDeclared { entities: vec![op, hold], ..Default::default() };
        let declared = DeclaredFacts::from_raw(raw, &Topology::empty()).expect("valid entities");
        let exposure = exposure(&declared, &declared.entities[0], &eu());
        assert!((exposure.unknown.capital - 60.0).abs() < 1e-9, "{exposure:?}");
        assert_eq!(exposure.gaps.len(), 2);
    }
}
