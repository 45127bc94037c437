//! Properties every decision keeps, over generated policies and requests:
//! a deny cannot be outweighed, adding an Allow never removes access,
//! NotAction is the complement of Action, and a decision cites real statements.

mod common;

use coffre_iam::{Context, Outcome, Policy};
use common::{ACTIONS, Ask, PATTERNS, Stmt, TARGETS, decide, identity_policy, render, stmt, user};
use proptest::prelude::*;

fn outcome(policies: &[&Policy], action: &str, resource: &str, prefix: &str) -> Outcome {
    let alice = user("t1", "alice");
    let ask = Ask {
        identity: &alice,
        action,
        resource,
        resource_tenant: "t1",
        context: Context::new().with("s3:prefix", prefix),
    };
    decide(&ask, policies, None).outcome
}

proptest! {
    #[test]
    fn a_deny_that_applies_always_wins(
        statements in prop::collection::vec(stmt(), 1..5),
        action in 0..ACTIONS.len(), target in 0..TARGETS.len(), prefix in prop::sample::select(vec!["a/x", "b/y", ""]),
    ) {
        let policy = identity_policy(&render(&statements));
        let mut denying = statements.clone();
        denying.push(Stmt { deny: true, not_action: false, actions: vec![0], resources: vec![0], prefix: None });
        let with_deny = identity_policy(&render(&denying));
        prop_assert_eq!(outcome(&[&with_deny], ACTIONS[action], TARGETS[target], prefix), Outcome::ExplicitDeny);
        // ...and splitting the statements across two policies changes nothing.
        let blanket = identity_policy(&render(&denying[denying.len() - 1..]));
        prop_assert_eq!(outcome(&[&policy, &blanket], ACTIONS[action], TARGETS[target], prefix), Outcome::ExplicitDeny);
    }

    #[test]
    fn adding_an_allow_never_takes_access_away(
        statements in prop::collection::vec(stmt(), 1..5), extra in stmt(),
        action in 0..ACTIONS.len(), target in 0..TARGETS.len(), prefix in prop::sample::select(vec!["a/x", "b/y", ""]),
    ) {
        let before = outcome(&[&identity_policy(&render(&statements))], ACTIONS[action], TARGETS[target], prefix);
        let mut more = statements.clone();
        more.push(Stmt { deny: false, ..extra });
        let after = outcome(&[&identity_policy(&render(&more))], ACTIONS[action], TARGETS[target], prefix);
        if before == Outcome::Allow { prop_assert_eq!(after, Outcome::Allow); }
        if before == Outcome::ExplicitDeny { prop_assert_eq!(after, Outcome::ExplicitDeny); }
    }

    #[test]
    fn not_action_is_the_complement_of_action(
        patterns in prop::collection::vec(0..PATTERNS.len(), 1..3), action in 0..ACTIONS.len(),
    ) {
        let one = |not_action| {
            let s = Stmt { deny: false, not_action, actions: patterns.clone(), resources: vec![0], prefix: None };
            outcome(&[&identity_policy(&render(&[s]))], ACTIONS[action], TARGETS[0], "") == Outcome::Allow
        };
        prop_assert_ne!(one(false), one(true));
    }

    #[test]
    fn a_decision_cites_only_statements_that_exist(
        statements in prop::collection::vec(stmt(), 1..5),
        action in 0..ACTIONS.len(), target in 0..TARGETS.len(),
    ) {
        let policy = identity_policy(&render(&statements));
        let alice = user("t1", "alice");
        let ask = Ask { identity: &alice, action: ACTIONS[action], resource: TARGETS[target], resource_tenant: "t1", context: Context::new() };
        let decision = decide(&ask, &[&policy], None);
        prop_assert_eq!(decision.deciding.is_empty(), decision.outcome == Outcome::ImplicitDeny);
        for cited in &decision.deciding {
            let index: usize = cited.statement.trim_start_matches('#').parse().map_err(|_| TestCaseError::fail("index"))?;
            let s = &statements[index - 1];
            prop_assert_eq!(s.deny, decision.outcome == Outcome::ExplicitDeny);
        }
    }
}
