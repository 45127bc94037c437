//! Differential test: the same generated policies and requests decided by
//! Coffre's evaluator and by `iam-rs` (an independent implementation of the
//! language, pinned in dev-dependencies only). They must agree on every
//! case: Allow, explicit Deny, or no applicable statement.

mod common;

use coffre_iam::{Context, Outcome};
use common::{ACTIONS, Ask, TARGETS, decide, identity_policy, render, stmt, user};
use iam_rs::{Arn, Decision, IAMPolicy, IAMRequest, Principal, PrincipalId, evaluate_policy};
use proptest::prelude::*;

fn oracle(text: &str, action: &str, resource: &str, prefix: &str) -> Outcome {
    let policy = IAMPolicy::from_json(text).expect("iam-rs reads the policy");
    let mut context = iam_rs::Context::new();
    context.insert("s3:prefix".into(), iam_rs::ContextValue::String(prefix.into()));
    let principal = Principal::Aws(PrincipalId::String("arn:aws:iam::123456789012:user/alice".into()));
    let request = IAMRequest::new_with_context(principal, action, Arn::parse(resource).expect("arn"), context);
    match evaluate_policy(&policy, &request).expect("iam-rs evaluates") {
        Decision::Allow => Outcome::Allow,
        Decision::Deny => Outcome::ExplicitDeny,
        Decision::NotApplicable => Outcome::ImplicitDeny,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn coffre_and_iam_rs_agree(
        statements in prop::collection::vec(stmt(), 1..5),
        action in 0..ACTIONS.len(), target in 0..TARGETS.len(), prefix in prop::sample::select(vec!["a/x", "b/y", ""]),
    ) {
        let text = render(&statements);
        let alice = user("t1", "alice");
        let ask = Ask {
            identity: &alice, action: ACTIONS[action], resource: TARGETS[target], resource_tenant: "t1",
            context: Context::new().with("s3:prefix", prefix),
        };
        let ours = decide(&ask, &[&identity_policy(&text)], None).outcome;
        prop_assert_eq!(ours, oracle(&text, ACTIONS[action], TARGETS[target], prefix), "policy {}", text);
    }
}
