//! The evaluator against examples from AWS's documentation of the policy
//! language and of S3 bucket policies (restated, each with the decision
//! AWS's text gives for it).

mod common;

use coffre_iam::{Context, Outcome};
use common::{Ask, bucket_policy, decide, identity_policy, user};

fn ask<'a>(identity: &'a coffre_iam::Identity, action: &'a str, resource: &'a str, context: Context) -> Ask<'a> {
    Ask { identity, action, resource, resource_tenant: "t1", context }
}

/// "Allows IAM users to access their home directory in Amazon S3": the
/// `${aws:username}` variable scopes listing and objects to the caller.
#[test]
fn home_directories_by_user_name() {
    let policy = identity_policy(
        r#"{"Version":"2012-10-17","Statement":[
          {"Sid":"List","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::home",
           "Condition":{"StringLike":{"s3:prefix":["","home/","home/${aws:username}/*"]}}},
          {"Sid":"Own","Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/home/${aws:username}/*"}]}"#,
    );
    let alice = user("t1", "alice");
    let named = |prefix: &str| Context::new().with("aws:username", "alice").with("s3:prefix", prefix);
    let d = decide(&ask(&alice, "s3:ListBucket", "arn:aws:s3:::home", named("home/alice/docs")), &[&policy], None);
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(d.deciding[0].statement, "List");
    let d = decide(&ask(&alice, "s3:ListBucket", "arn:aws:s3:::home", named("home/bob/")), &[&policy], None);
    assert_eq!(d.outcome, Outcome::ImplicitDeny);
    let own = "arn:aws:s3:::home/home/alice/cv.pdf";
    let d = decide(&ask(&alice, "s3:PutObject", own, named("")), &[&policy], None);
    assert!(d.allowed());
    let theirs = "arn:aws:s3:::home/home/bob/cv.pdf";
    assert!(!decide(&ask(&alice, "s3:GetObject", theirs, named("")), &[&policy], None).allowed());
}

/// "Explicit deny overrides allow": a Deny on DeleteObject beats `s3:*`.
#[test]
fn an_explicit_deny_beats_any_allow() {
    let allow =
        identity_policy(r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#);
    let deny = bucket_policy(
        r#"{"Version":"2012-10-17","Statement":{"Sid":"NoDelete","Effect":"Deny","Principal":"*",
            "Action":["s3:DeleteObject","s3:DeleteObjectVersion"],"Resource":"arn:aws:s3:::backups/*"}}"#,
    );
    let backup = user("t1", "backup");
    let object = "arn:aws:s3:::backups/2026/db.dump";
    let d = decide(&ask(&backup, "s3:DeleteObject", object, Context::new()), &[&allow], Some(&deny));
    assert_eq!(d.outcome, Outcome::ExplicitDeny);
    assert_eq!(d.explain(), "denied by bucket:NoDelete");
    assert!(decide(&ask(&backup, "s3:PutObject", object, Context::new()), &[&allow], Some(&deny)).allowed());
}

/// "Denies access unless the request uses TLS": `aws:SecureTransport`.
#[test]
fn requests_without_tls_are_denied() {
    let policy = bucket_policy(
        r#"{"Version":"2012-10-17","Statement":{"Sid":"TLSOnly","Effect":"Deny","Principal":"*","Action":"s3:*",
            "Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}}"#,
    );
    let allow =
        identity_policy(r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#);
    let alice = user("t1", "alice");
    let plain = Context::new().with("aws:SecureTransport", "false");
    let tls = Context::new().with("aws:SecureTransport", "true");
    assert_eq!(
        decide(&ask(&alice, "s3:GetObject", "arn:aws:s3:::b/k", plain), &[&allow], Some(&policy)).outcome,
        Outcome::ExplicitDeny
    );
    assert!(decide(&ask(&alice, "s3:GetObject", "arn:aws:s3:::b/k", tls), &[&allow], Some(&policy)).allowed());
}

/// "Restricting access to specific IP addresses": NotIpAddress in a Deny.
#[test]
fn access_from_outside_a_network_is_denied() {
    let policy = bucket_policy(
        r#"{"Version":"2012-10-17","Statement":[
          {"Sid":"Read","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
          {"Sid":"IPAllow","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*",
           "Condition":{"NotIpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:db8::/32"]}}}]}"#,
    );
    let anonymous = coffre_iam::Identity::anonymous();
    let from = |ip: &str| Context::new().with("aws:SourceIp", ip);
    let inside = decide(&ask(&anonymous, "s3:GetObject", "arn:aws:s3:::b/k", from("192.0.2.10")), &[], Some(&policy));
    assert!(inside.allowed());
    let v6 = decide(&ask(&anonymous, "s3:GetObject", "arn:aws:s3:::b/k", from("2001:db8::1")), &[], Some(&policy));
    assert!(v6.allowed());
    let outside =
        decide(&ask(&anonymous, "s3:GetObject", "arn:aws:s3:::b/k", from("198.51.100.1")), &[], Some(&policy));
    assert_eq!(outside.outcome, Outcome::ExplicitDeny);
}

/// Cross-account access needs both sides: the bucket policy naming the
/// other account, and that account's own identity policy.
#[test]
fn another_tenant_needs_both_the_bucket_policy_and_its_own() {
    let grant = bucket_policy(
        r#"{"Version":"2012-10-17","Statement":{"Sid":"Partner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::t2:root"},
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
    );
    let own = identity_policy(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#,
    );
    let partner = user("t2", "reader");
    let object = "arn:aws:s3:::b/k";
    assert!(decide(&ask(&partner, "s3:GetObject", object, Context::new()), &[&own], Some(&grant)).allowed());
    let no_own = decide(&ask(&partner, "s3:GetObject", object, Context::new()), &[], Some(&grant));
    assert_eq!(no_own.outcome, Outcome::ImplicitDeny, "the partner's own policies must allow it too");
    let stranger = user("t3", "reader");
    assert!(!decide(&ask(&stranger, "s3:GetObject", object, Context::new()), &[&own], Some(&grant)).allowed());
}

/// NotAction: "allow everything except IAM" in a tenant.
#[test]
fn not_action_allows_all_but_the_listed() {
    let policy = identity_policy(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}}"#,
    );
    let alice = user("t1", "alice");
    assert!(decide(&ask(&alice, "s3:GetObject", "arn:aws:s3:::b/k", Context::new()), &[&policy], None).allowed());
    assert!(
        !decide(&ask(&alice, "iam:CreateUser", "arn:aws:iam::t1:user/x", Context::new()), &[&policy], None).allowed()
    );
}

/// Date conditions bound a grant in time ("three months of read access").
#[test]
fn a_grant_expires_with_its_date_condition() {
    let policy = identity_policy(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::study/cohort/*",
            "Condition":{"DateGreaterThan":{"aws:CurrentTime":"2026-09-01T00:00:00Z"},"DateLessThan":{"aws:CurrentTime":"2026-12-01T00:00:00Z"}}}}"#,
    );
    let team = user("t1", "team");
    let at = |when: &str| Context::new().with("aws:CurrentTime", when);
    let object = "arn:aws:s3:::study/cohort/a.csv";
    assert!(decide(&ask(&team, "s3:GetObject", object, at("2026-10-15T12:00:00Z")), &[&policy], None).allowed());
    assert!(!decide(&ask(&team, "s3:GetObject", object, at("2026-12-07T12:00:00Z")), &[&policy], None).allowed());
}

/// A 2008-10-17 policy takes `${...}` as literal text.
#[test]
fn old_policies_have_no_variables() {
    let policy = identity_policy(
        r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*"}}"#,
    );
    let alice = user("t1", "alice");
    let named = || Context::new().with("aws:username", "alice");
    assert!(!decide(&ask(&alice, "s3:GetObject", "arn:aws:s3:::b/alice/k", named()), &[&policy], None).allowed());
    assert!(
        decide(&ask(&alice, "s3:GetObject", "arn:aws:s3:::b/${aws:username}/k", named()), &[&policy], None).allowed()
    );
}

/// `may_allow` bounds a request whose resources come later: true only when
/// some Allow names the principal and the action.
#[test]
fn may_allow_looks_at_principal_and_action_only() {
    let policy = bucket_policy(
        r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::t2:root"},"Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/tmp/*",
           "Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
          {"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#,
    );
    assert!(coffre_iam::may_allow(&policy, &user("t2", "x"), "s3:DeleteObject"));
    assert!(!coffre_iam::may_allow(&policy, &user("t3", "x"), "s3:DeleteObject"));
    assert!(!coffre_iam::may_allow(&policy, &user("t2", "x"), "s3:PutObject"));
    assert!(!coffre_iam::may_allow(&policy, &coffre_iam::Identity::anonymous(), "s3:DeleteObject"));
}
