//! Attacks on bucket policies, Block Public Access and enforced ownership,
//! each against a real `coffre serve`:
//!
//! - nothing is anonymous until a bucket policy allows it AND the bucket's
//!   Block Public Access lets a public policy in and count;
//! - another access key gets exactly what a policy names, never more, and
//!   never the policy itself;
//! - an explicit deny binds the owner and root too, but never locks the
//!   owner out of the policy; bypassing GOVERNANCE is a permission;
//! - each denial names its deciding statement in the audit log;
//! - a malformed policy or a public ACL is refused and changes nothing.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectLockRetention, ObjectLockRetentionMode, PublicAccessBlockConfiguration};
use coffre_e2e::http::{http_get, raw_request};
use coffre_e2e::objects::put;
use coffre_e2e::{Server, audit, error_code};

fn policy(statements: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)
}

async fn open_block(c: &Client, bucket: &str) {
    let off = PublicAccessBlockConfiguration::builder()
        .block_public_acls(false)
        .ignore_public_acls(false)
        .block_public_policy(false)
        .restrict_public_buckets(false)
        .build();
    c.put_public_access_block().bucket(bucket).public_access_block_configuration(off).send().await.expect("open block");
}

fn anonymous_put(server: &Server, path: &str) -> u16 {
    let request =
        format!("PUT {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx", server.s3);
    raw_request(server.s3, request.as_bytes()).map_or(0, |(status, _)| status)
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_anonymous_until_a_policy_and_the_block_allow_it() {
    let server = Server::start();
    let (id, secret) = server.create_key("alice");
    let alice = server.client_as(&id, &secret);
    alice.create_bucket().bucket("site").send().await.expect("create");
    put(&alice, "site", "public/index.html", b"hello".to_vec()).await;
    put(&alice, "site", "private/payroll.csv", b"secret".to_vec()).await;
    let status = |path: &str| http_get(server.s3, path).map_or(0, |(s, _)| s);
    assert_eq!(status("/site/public/index.html"), 403, "no policy: nothing anonymous");

    let read = policy(
        r#"{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/public/*"}"#,
    );
    let refused = alice.put_bucket_policy().bucket("site").policy(&read).send().await;
    assert_eq!(error_code(refused), ("AccessDenied".to_owned(), 403), "the default block refuses a public policy");
    assert!(alice.get_bucket_policy().bucket("site").send().await.is_err(), "nothing was stored");

    open_block(&alice, "site").await;
    alice.put_bucket_policy().bucket("site").policy(&read).send().await.expect("a public policy, block open");
    let status_out = alice.get_bucket_policy_status().bucket("site").send().await.expect("status");
    assert_eq!(status_out.policy_status().and_then(|s| s.is_public()), Some(true));
    assert_eq!(http_get(server.s3, "/site/public/index.html"), Some((200, "hello".to_owned())));
    assert_eq!(status("/site/private/payroll.csv"), 403, "outside the granted prefix");
    assert_eq!(status("/site"), 403, "listing was not granted");
    assert_eq!(status("/"), 403, "no anonymous ListBuckets");
    assert_eq!(anonymous_put(&server, "/site/public/defaced.html"), 403, "writing was not granted");
    assert!(alice.head_object().bucket("site").key("public/defaced.html").send().await.is_err(), "nothing written");

    // RestrictPublicBuckets takes the public grant back without touching the policy.
    let restrict = PublicAccessBlockConfiguration::builder().restrict_public_buckets(true).build();
    alice
        .put_public_access_block()
        .bucket("site")
        .public_access_block_configuration(restrict)
        .send()
        .await
        .expect("restrict");
    assert_eq!(status("/site/public/index.html"), 403, "restricted: the public grant no longer counts");
    assert!(alice.get_object().bucket("site").key("public/index.html").send().await.is_ok(), "the owner still reads");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_key_gets_exactly_what_the_policy_names() {
    let server = Server::start();
    let (a_id, a_secret) = server.create_key("alice");
    let (b_id, b_secret) = server.create_key("bob");
    let (alice, bob) = (server.client_as(&a_id, &a_secret), server.client_as(&b_id, &b_secret));
    alice.create_bucket().bucket("shared").send().await.expect("create");
    put(&alice, "shared", "reports/q1.pdf", b"q1".to_vec()).await;
    put(&alice, "shared", "hr/salaries.csv", b"hr".to_vec()).await;
    assert_eq!(error_code(bob.get_object().bucket("shared").key("reports/q1.pdf").send().await).0, "AccessDenied");

    let grant = policy(&format!(
        r#"{{"Sid":"BobReadsReports","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{b_id}:root"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/reports/*"}},
           {{"Sid":"BobLists","Effect":"Allow","Principal":{{"AWS":"{b_id}"}},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::shared","Condition":{{"StringLike":{{"s3:prefix":"reports/*"}}}}}}"#
    ));
    alice.put_bucket_policy().bucket("shared").policy(&grant).send().await.expect("a policy naming bob");
    let got = bob.get_object().bucket("shared").key("reports/q1.pdf").send().await.expect("granted read");
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), b"q1");
    let listed = bob.list_objects_v2().bucket("shared").prefix("reports/").send().await.expect("granted listing");
    assert_eq!(listed.contents().len(), 1);

    let denied = [
        error_code(bob.get_object().bucket("shared").key("hr/salaries.csv").send().await),
        error_code(bob.list_objects_v2().bucket("shared").send().await),
        error_code(bob.list_objects_v2().bucket("shared").prefix("hr/").send().await),
        error_code(
            bob.put_object().bucket("shared").key("reports/q2.pdf").body(ByteStream::from_static(b"x")).send().await,
        ),
        error_code(bob.delete_object().bucket("shared").key("reports/q1.pdf").send().await),
        error_code(bob.get_object_tagging().bucket("shared").key("reports/q1.pdf").send().await),
        error_code(bob.get_bucket_policy().bucket("shared").send().await),
        error_code(bob.delete_bucket_policy().bucket("shared").send().await),
        error_code(
            bob.put_bucket_policy()
                .bucket("shared")
                .policy(policy(
                    r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::shared/*"}"#,
                ))
                .send()
                .await,
        ),
        error_code(bob.delete_public_access_block().bucket("shared").send().await),
        error_code(bob.delete_bucket().bucket("shared").send().await),
    ];
    for (i, (code, status)) in denied.iter().enumerate() {
        assert_eq!((code.as_str(), *status), ("AccessDenied", 403), "call {i}");
    }
    let buckets = bob.list_buckets().send().await.expect("list");
    assert!(buckets.buckets().is_empty(), "a grant does not make alice's bucket bob's: {buckets:?}");
    assert_eq!(coffre_e2e::objects::get(&alice, "shared", "reports/q1.pdf").await, b"q1", "nothing changed");

    // Even `s3:*` granted does not hand over the policy or the block: they stay the owner's.
    let everything = policy(&format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"{b_id}"}},"Action":"s3:*","Resource":["arn:aws:s3:::shared","arn:aws:s3:::shared/*"]}}"#
    ));
    alice.put_bucket_policy().bucket("shared").policy(&everything).send().await.expect("grant everything");
    bob.get_object().bucket("shared").key("hr/salaries.csv").send().await.expect("s3:* reads");
    let owners = [
        error_code(bob.get_bucket_policy().bucket("shared").send().await),
        error_code(bob.delete_bucket_policy().bucket("shared").send().await),
        error_code(bob.put_bucket_policy().bucket("shared").policy(&everything).send().await),
        error_code(bob.get_public_access_block().bucket("shared").send().await),
        error_code(bob.delete_public_access_block().bucket("shared").send().await),
    ];
    for (i, (code, status)) in owners.iter().enumerate() {
        assert_eq!((code.as_str(), *status), ("AccessDenied", 403), "owner-only call {i}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_explicit_deny_binds_owner_and_root_without_locking_the_owner_out() {
    let server = Server::start();
    let (id, secret) = server.create_key("alice");
    let alice = server.client_as(&id, &secret);
    let root = server.client();
    alice.create_bucket().bucket("vault").send().await.expect("create");
    put(&alice, "vault", "ledger", b"1".to_vec()).await;
    let deny = policy(
        r#"{"Sid":"NoDelete","Effect":"Deny","Principal":"*","Action":["s3:DeleteObject","s3:DeleteObjectVersion","s3:PutBucketPolicy","s3:DeleteBucketPolicy","s3:GetBucketPolicy"],"Resource":["arn:aws:s3:::vault","arn:aws:s3:::vault/*"]}"#,
    );
    alice.put_bucket_policy().bucket("vault").policy(&deny).send().await.expect("put deny");
    assert_eq!(error_code(alice.delete_object().bucket("vault").key("ledger").send().await).0, "AccessDenied");
    assert_eq!(error_code(root.delete_object().bucket("vault").key("ledger").send().await).0, "AccessDenied");
    assert_eq!(coffre_e2e::objects::get(&alice, "vault", "ledger").await, b"1", "still there");

    let events = audit::events(&server.data_dir, &["--operation", "DeleteObject"]);
    let denial = events.iter().find(|e| e["error"] == "AccessDenied").expect("the denial is in the log");
    assert!(denial["detail"].as_str().is_some_and(|d| d.contains("bucket-policy:NoDelete")), "{denial}");

    // The policy denies its own management, yet the owner is never locked out.
    alice.get_bucket_policy().bucket("vault").send().await.expect("the owner reads its policy");
    alice.delete_bucket_policy().bucket("vault").send().await.expect("the owner removes its policy");
    alice.delete_object().bucket("vault").key("ledger").send().await.expect("delete once the deny is gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn bypassing_governance_retention_is_a_permission() {
    let server = Server::start();
    let (id, secret) = server.create_key("alice");
    let alice = server.client_as(&id, &secret);
    alice.create_bucket().bucket("worm").object_lock_enabled_for_bucket(true).send().await.expect("create");
    let until = aws_smithy_types::DateTime::from_secs(time_now() + 3600);
    let retention =
        ObjectLockRetention::builder().mode(ObjectLockRetentionMode::Governance).retain_until_date(until).build();
    let written = put(&alice, "worm", "record", b"r".to_vec()).await;
    let version = written.version_id().expect("versioned").to_owned();
    alice.put_object_retention().bucket("worm").key("record").retention(retention).send().await.expect("retain");
    let deny = policy(
        r#"{"Sid":"NoBypass","Effect":"Deny","Principal":"*","Action":"s3:BypassGovernanceRetention","Resource":"arn:aws:s3:::worm/*"}"#,
    );
    alice.put_bucket_policy().bucket("worm").policy(&deny).send().await.expect("deny bypass");
    let bypass =
        alice.delete_object().bucket("worm").key("record").version_id(&version).bypass_governance_retention(true);
    assert_eq!(error_code(bypass.clone().send().await).0, "AccessDenied", "the bypass is not permitted");
    alice.head_object().bucket("worm").key("record").version_id(&version).send().await.expect("the version stays");
    alice.delete_bucket_policy().bucket("worm").send().await.expect("drop the deny");
    bypass.send().await.expect("the owner may bypass once no policy denies it");
}

fn time_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[tokio::test(flavor = "multi_thread")]
async fn conditions_see_the_transport_and_the_source_address() {
    let server = Server::start();
    let (a_id, a_secret) = server.create_key("alice");
    let (b_id, b_secret) = server.create_key("bob");
    let (alice, bob) = (server.client_as(&a_id, &a_secret), server.client_as(&b_id, &b_secret));
    alice.create_bucket().bucket("lab").send().await.expect("create");
    put(&alice, "lab", "data", b"d".to_vec()).await;
    let from = |net: &str| {
        policy(&format!(
            r#"{{"Sid":"FromLab","Effect":"Allow","Principal":{{"AWS":"{b_id}"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::lab/*","Condition":{{"IpAddress":{{"aws:SourceIp":"{net}"}}}}}}"#
        ))
    };
    alice.put_bucket_policy().bucket("lab").policy(from("127.0.0.0/8")).send().await.expect("policy");
    bob.get_object().bucket("lab").key("data").send().await.expect("from loopback");
    alice.put_bucket_policy().bucket("lab").policy(from("10.0.0.0/8")).send().await.expect("policy");
    assert_eq!(error_code(bob.get_object().bucket("lab").key("data").send().await).0, "AccessDenied");

    let tls_only = policy(
        r#"{"Sid":"TLSOnly","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::lab","arn:aws:s3:::lab/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
    );
    alice.put_bucket_policy().bucket("lab").policy(&tls_only).send().await.expect("policy");
    assert_eq!(error_code(alice.get_object().bucket("lab").key("data").send().await).0, "AccessDenied", "plain HTTP");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_policies_and_public_acls_change_nothing() {
    let server = Server::start();
    let (id, secret) = server.create_key("alice");
    let alice = server.client_as(&id, &secret);
    alice.create_bucket().bucket("docs").send().await.expect("create");
    let good = policy(
        r#"{"Sid":"Keep","Effect":"Deny","Principal":"*","Action":"s3:DeleteBucket","Resource":"arn:aws:s3:::docs"}"#,
    );
    alice.put_bucket_policy().bucket("docs").policy(&good).send().await.expect("a good policy");
    let bad = [
        "{not json".to_owned(),
        policy(r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::docs/*"}"#),
        policy(r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}"#),
        policy(r#"{"Effect":"Allow","Principal":"*","Action":"iam:CreateUser","Resource":"arn:aws:s3:::docs/*"}"#),
        policy(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::docs/*","Condition":{"NumericLessThan":{"s3:max-keys":"ten"}}}"#,
        ),
    ];
    for text in &bad {
        let refused = error_code(alice.put_bucket_policy().bucket("docs").policy(text).send().await);
        assert_eq!(refused, ("MalformedPolicy".to_owned(), 400), "{text}");
    }
    let kept = alice.get_bucket_policy().bucket("docs").send().await.expect("get");
    assert_eq!(kept.policy(), Some(good.as_str()), "the good policy is kept as written");

    let acl =
        || alice.put_object().bucket("docs").key("k").acl("public-read".into()).body(ByteStream::from_static(b"x"));
    assert_eq!(error_code(acl().send().await), ("AccessDenied".to_owned(), 403), "BlockPublicAcls is on");
    open_block(&alice, "docs").await;
    assert_eq!(
        error_code(acl().send().await),
        ("AccessControlListNotSupported".to_owned(), 400),
        "ownership is enforced"
    );
    assert!(alice.head_object().bucket("docs").key("k").send().await.is_err(), "nothing stored");
    let bucket_acl = alice.create_bucket().bucket("open").acl("public-read-write".into()).send().await;
    assert_eq!(error_code(bucket_acl).0, "InvalidBucketAclWithObjectOwnership");
    alice
        .put_object()
        .bucket("docs")
        .key("k")
        .acl("private".into())
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("private is accepted");
    let grants = alice.get_bucket_acl().bucket("docs").send().await.expect("acl");
    assert_eq!(grants.grants().len(), 1, "the owner's grant only");
    let ownership = alice.get_bucket_ownership_controls().bucket("docs").send().await.expect("ownership");
    let rule = &ownership.ownership_controls().expect("controls").rules()[0];
    assert_eq!(rule.object_ownership().as_str(), "BucketOwnerEnforced");
}

/// DeleteObjects names its keys in its body: each is decided by itself, so a
/// deny on a prefix cannot be slipped past in a batch, and a grant on a
/// prefix lets a batch delete there only.
#[tokio::test(flavor = "multi_thread")]
async fn each_key_of_a_batch_delete_is_decided_by_itself() {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let server = Server::start();
    let (a_id, a_secret) = server.create_key("alice");
    let (b_id, b_secret) = server.create_key("bob");
    let (alice, bob) = (server.client_as(&a_id, &a_secret), server.client_as(&b_id, &b_secret));
    alice.create_bucket().bucket("batch").send().await.expect("create");
    for key in ["protected/a", "tmp/b", "tmp/c", "other/d"] {
        put(&alice, "batch", key, b"x".to_vec()).await;
    }
    let rules = policy(&format!(
        r#"{{"Sid":"KeepProtected","Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::batch/protected/*"}},
           {{"Sid":"BobCleansTmp","Effect":"Allow","Principal":{{"AWS":"{b_id}"}},"Action":"s3:DeleteObject","Resource":"arn:aws:s3:::batch/tmp/*"}}"#
    ));
    alice.put_bucket_policy().bucket("batch").policy(&rules).send().await.expect("policy");
    let batch = |keys: &[&str]| {
        let objects = keys.iter().map(|k| ObjectIdentifier::builder().key(*k).build().expect("id")).collect();
        Delete::builder().set_objects(Some(objects)).build().expect("delete")
    };
    let by_alice =
        alice.delete_objects().bucket("batch").delete(batch(&["protected/a", "other/d"])).send().await.expect("batch");
    let refused: Vec<_> = by_alice.errors().iter().map(|e| (e.key().unwrap_or(""), e.code().unwrap_or(""))).collect();
    assert_eq!(refused, [("protected/a", "AccessDenied")]);
    assert_eq!(by_alice.deleted().len(), 1, "other/d went");
    let by_bob =
        bob.delete_objects().bucket("batch").delete(batch(&["tmp/b", "protected/a"])).send().await.expect("batch");
    let refused: Vec<_> = by_bob.errors().iter().map(|e| (e.key().unwrap_or(""), e.code().unwrap_or(""))).collect();
    assert_eq!(refused, [("protected/a", "AccessDenied")]);
    assert_eq!(coffre_e2e::objects::get(&alice, "batch", "protected/a").await, b"x", "the protected key stays");
    assert!(alice.head_object().bucket("batch").key("tmp/b").send().await.is_err(), "bob's granted key went");
    assert_eq!(coffre_e2e::objects::get(&alice, "batch", "tmp/c").await, b"x", "untouched");
    let events = audit::events(&server.data_dir, &["--operation", "DeleteObjects"]);
    assert!(
        events.iter().any(|e| e["detail"]
            .as_str()
            .is_some_and(|d| d.contains("protected/a: denied by bucket-policy:KeepProtected"))),
        "{events:?}"
    );
}

/// A missing key is a 404 to a caller who may list it, and a 403 to one who
/// may not: the answer tells nothing a listing would not.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_key_is_told_only_to_who_may_list_it() {
    let server = Server::start();
    let (a_id, a_secret) = server.create_key("alice");
    let (b_id, b_secret) = server.create_key("bob");
    let (alice, bob) = (server.client_as(&a_id, &a_secret), server.client_as(&b_id, &b_secret));
    alice.create_bucket().bucket("probe").send().await.expect("create");
    put(&alice, "probe", "private/exists", b"x".to_vec()).await;
    let list_public = policy(&format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"{b_id}"}},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::probe","Condition":{{"StringLike":{{"s3:prefix":"public/*"}}}}}}"#
    ));
    alice.put_bucket_policy().bucket("probe").policy(&list_public).send().await.expect("policy");
    let head = |key: &'static str| bob.head_object().bucket("probe").key(key).send();
    assert_eq!(error_code(head("public/missing").await).1, 404);
    assert_eq!(error_code(head("private/missing").await).1, 403);
    assert_eq!(error_code(head("private/exists").await).1, 403);
    assert_eq!(error_code(bob.get_object().bucket("probe").key("public/missing").send().await).1, 404);
}

/// `block_public_access_by_default = false`: new buckets start without the block.
#[tokio::test(flavor = "multi_thread")]
async fn new_buckets_may_start_without_the_block_when_the_operator_says_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("coffre.toml");
    std::fs::write(&config, "block_public_access_by_default = false\n").expect("config");
    let server = Server::start_with_config(&tmp.path().join("data"), &config, &[]);
    let root = server.client();
    root.create_bucket().bucket("open").send().await.expect("create");
    let got = error_code(root.get_public_access_block().bucket("open").send().await);
    assert_eq!(got, ("NoSuchPublicAccessBlockConfiguration".to_owned(), 404));
    let read = policy(r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::open/*"}"#);
    root.put_bucket_policy().bucket("open").policy(&read).send().await.expect("a public policy is accepted");
}

/// `coffre iam simulate` decides as the front does, on the bucket as it is,
/// and names the statements that decided; each simulated answer is checked
/// against the real request.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_simulates_the_fronts_decision_and_names_its_statements() {
    let server = Server::start();
    let (a_id, a_secret) = server.create_key("alice");
    let (b_id, b_secret) = server.create_key("bob");
    let (alice, bob) = (server.client_as(&a_id, &a_secret), server.client_as(&b_id, &b_secret));
    alice.create_bucket().bucket("sim").send().await.expect("create");
    put(&alice, "sim", "reports/q1", b"q1".to_vec()).await;
    put(&alice, "sim", "hr/pay", b"hr".to_vec()).await;
    let rules = policy(&format!(
        r#"{{"Sid":"BobReads","Effect":"Allow","Principal":{{"AWS":"{b_id}"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::sim/*"}},
           {{"Sid":"NoHr","Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::sim/hr/*"}},
           {{"Sid":"LabOnly","Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::sim/*","Condition":{{"NotIpAddress":{{"aws:SourceIp":"10.0.0.0/8"}}}}}}"#
    ));
    alice.put_bucket_policy().bucket("sim").policy(&rules).send().await.expect("policy");
    let simulate = |principal: &str, action: &str, resource: &str, context: &[&str]| {
        let mut args =
            vec!["iam", "simulate", "--principal", principal, "--action", action, "--resource", resource, "--json"];
        for c in context {
            args.extend(["--context", c]);
        }
        server.cli_json(&args)
    };
    let reads = simulate(&b_id, "s3:GetObject", "arn:aws:s3:::sim/reports/q1", &[]);
    assert_eq!(reads["decision"].as_str(), Some("allow"));
    let cited: Vec<&str> =
        reads["statements"].as_array().expect("statements").iter().filter_map(|s| s.as_str()).collect();
    assert_eq!(cited, ["access-key:OwnTenant", "bucket-policy:BobReads"], "another tenant needs both");
    bob.get_object().bucket("sim").key("reports/q1").send().await.expect("the front agrees: allowed");

    let hr = simulate(&b_id, "s3:GetObject", "arn:aws:s3:::sim/hr/pay", &[]);
    assert_eq!((hr["decision"].as_str(), hr["statements"][0].as_str()), (Some("deny"), Some("bucket-policy:NoHr")));
    assert_eq!(
        error_code(bob.get_object().bucket("sim").key("hr/pay").send().await).0,
        "AccessDenied",
        "the front agrees"
    );

    let anonymous = simulate("anonymous", "s3:GetObject", "arn:aws:s3:::sim/reports/q1", &[]);
    assert_eq!(anonymous["explanation"].as_str(), Some("denied: no statement allowed it"));
    assert_eq!(http_get(server.s3, "/sim/reports/q1").map(|(s, _)| s), Some(403), "the front agrees");

    let outside = simulate(&a_id, "s3:PutObject", "arn:aws:s3:::sim/x", &["aws:SourceIp=192.0.2.1"]);
    assert_eq!(outside["statements"][0].as_str(), Some("bucket-policy:LabOnly"));
    let inside = simulate(&a_id, "s3:PutObject", "arn:aws:s3:::sim/x", &["aws:SourceIp=10.1.2.3"]);
    assert_eq!(inside["decision"].as_str(), Some("allow"), "{inside}");
    let put = alice.put_object().bucket("sim").key("x").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(error_code(put).0, "AccessDenied", "the front agrees: 127.0.0.1 is outside 10.0.0.0/8");

    let missing = server.cli(&[
        "iam",
        "simulate",
        "--principal",
        &b_id,
        "--action",
        "s3:GetObject",
        "--resource",
        "arn:aws:s3:::nope/k",
    ]);
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("no bucket named"));
}

/// `X-Forwarded-For` and `X-Forwarded-Proto` count only from the proxies
/// the operator trusts: anyone else sending them is judged by its own TCP
/// address and transport, so a client cannot pick the address a policy sees.
#[tokio::test(flavor = "multi_thread")]
async fn forwarded_addresses_count_only_from_the_proxies_the_operator_trusts() {
    use coffre_e2e::signed::{Key, presigned};
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("coffre.toml");
    std::fs::write(&config, "trusted_proxies = [\"127.0.0.1\"]\n").expect("config");
    let behind_proxy = Server::start_with_config(&tmp.path().join("proxied"), &config, &[]);
    let direct = Server::start();
    for (server, trusted) in [(&behind_proxy, true), (&direct, false)] {
        let (a_id, a_secret) = server.create_key("alice");
        let (b_id, b_secret) = server.create_key("bob");
        let alice = server.client_as(&a_id, &a_secret);
        alice.create_bucket().bucket("lab").send().await.expect("create");
        put(&alice, "lab", "data", b"d".to_vec()).await;
        let rules = policy(&format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"{b_id}"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::lab/*","Condition":{{"IpAddress":{{"aws:SourceIp":"10.0.0.0/8"}},"Bool":{{"aws:SecureTransport":"true"}}}}}}"#
        ));
        alice.put_bucket_policy().bucket("lab").policy(&rules).send().await.expect("policy");
        let host = server.s3;
        let get = |headers: &str| {
            let (target, _) = presigned(Key::new(&b_id, &b_secret), "GET", host, "/lab/data", 300, &|n| n.to_owned());
            let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n");
            coffre_e2e::raw_request(host, request.as_bytes()).map_or(0, |(status, _)| status)
        };
        let forwarded = "X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: https\r\n";
        assert_eq!(get(forwarded), if trusted { 200 } else { 403 }, "trusted proxy: {trusted}");
        assert_eq!(get("X-Forwarded-For: 10.1.2.3\r\n"), 403, "not over TLS, whoever says so");
        assert_eq!(get(""), 403, "from 127.0.0.1 itself");
    }
}

/// A condition on the object's own tags holds on every path to the object:
/// a batch delete checks each key's tags, and a copy its source's.
#[tokio::test(flavor = "multi_thread")]
async fn tag_conditions_hold_in_batches_and_copies() {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let server = Server::start();
    let (a_id, a_secret) = server.create_key("alice");
    let (b_id, b_secret) = server.create_key("bob");
    let (alice, bob) = (server.client_as(&a_id, &a_secret), server.client_as(&b_id, &b_secret));
    alice.create_bucket().bucket("tags").send().await.expect("create");
    alice.create_bucket().bucket("copies").send().await.expect("create");
    let tagged = |key: &'static str, tagging: &'static str| {
        alice.put_object().bucket("tags").key(key).tagging(tagging).body(ByteStream::from_static(b"t")).send()
    };
    tagged("kept", "hold=yes").await.expect("put");
    tagged("loose", "hold=no").await.expect("put");
    let rules = policy(&format!(
        r#"{{"Sid":"Hold","Effect":"Deny","Principal":"*","Action":["s3:DeleteObject","s3:GetObject"],"Resource":"arn:aws:s3:::tags/*","Condition":{{"StringEquals":{{"s3:ExistingObjectTag/hold":"yes"}}}}}},
           {{"Sid":"Bob","Effect":"Allow","Principal":{{"AWS":"{b_id}"}},"Action":["s3:GetObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::tags/*"}}"#
    ));
    alice.put_bucket_policy().bucket("tags").policy(&rules).send().await.expect("policy");
    let objects = ["kept", "loose"].map(|k| ObjectIdentifier::builder().key(k).build().expect("id"));
    let batch = Delete::builder().set_objects(Some(objects.to_vec())).build().expect("delete");
    let done = alice.delete_objects().bucket("tags").delete(batch).send().await.expect("batch");
    let refused: Vec<_> = done.errors().iter().map(|e| e.key().unwrap_or("")).collect();
    assert_eq!(refused, ["kept"], "the held key is refused inside the batch");
    let listed = alice.list_objects_v2().bucket("tags").send().await.expect("list");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["kept"], "the held key is still there, the loose one went");

    let grant = policy(&format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"{b_id}"}},"Action":"s3:PutObject","Resource":"arn:aws:s3:::copies/*"}}"#
    ));
    alice.put_bucket_policy().bucket("copies").policy(&grant).send().await.expect("policy");
    assert_eq!(error_code(bob.get_object().bucket("tags").key("kept").send().await).0, "AccessDenied");
    let copy = bob.copy_object().bucket("copies").key("stolen").copy_source("tags/kept").send().await;
    assert_eq!(error_code(copy).0, "AccessDenied", "a copy cannot read what a GET may not");
    assert!(alice.head_object().bucket("copies").key("stolen").send().await.is_err(), "nothing copied");
}

/// The bucket-record reads PostgreSQL ran for the server's database while
/// `requests` ran (pg_stat_statements, reset first).
async fn bucket_record_reads(url: &str, requests: impl std::future::Future<Output = ()>) -> u64 {
    coffre_e2e::pg::psql(url, "SELECT pg_stat_statements_reset()");
    requests.await;
    let sql = "SELECT COALESCE(sum(s.calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
               WHERE d.datname = current_database() AND s.query = 'SELECT record FROM buckets WHERE name = $1'";
    let out = coffre_e2e::pg::psql(url, sql);
    out.trim().parse().unwrap_or_else(|e| panic!("{out:?} is no count: {e}"))
}

/// 19 denies with conditions that do not apply, then a grant to `reader`.
fn twenty_statements(reader: &str) -> String {
    let denies = (1..=19).map(|i| {
        format!(
            r#"{{"Sid":"D{i}","Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::ruled/secret-{i}/*","Condition":{{"IpAddress":{{"aws:SourceIp":"10.{i}.0.0/16"}}}}}}"#
        )
    });
    let grant = format!(
        r#"{{"Sid":"Reader","Effect":"Allow","Principal":{{"AWS":"{reader}"}},"Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::ruled/*"}}"#
    );
    policy(&denies.chain([grant]).collect::<Vec<_>>().join(","))
}

/// The cost requirement: deciding a request under a bucket policy reads
/// the bucket's record once, and the operation acts on that same read (it
/// used to read it again). Counted by PostgreSQL itself, for GET and PUT by
/// the owner and by a key only the policy lets in, for a browser's GET (its
/// CORS headers), and for copies.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_under_a_policy_reads_its_bucket_record_once() {
    let server = Server::start();
    let Some(url) = coffre_e2e::pg::pg_url_for(&server.data_dir) else {
        eprintln!("skipped: the reads are counted in PostgreSQL (COFFRE_TEST_PG)");
        return;
    };
    let preloaded = coffre_e2e::pg::psql(&url, "SHOW shared_preload_libraries");
    assert!(preloaded.contains("pg_stat_statements"), "the cluster must preload it (scripts/pg-server.sh)");
    coffre_e2e::pg::psql(&url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    let (alice_id, alice_secret) = server.create_key("alice");
    let (bob_id, bob_secret) = server.create_key("bob");
    let (alice, bob) = (server.client_as(&alice_id, &alice_secret), server.client_as(&bob_id, &bob_secret));
    for bucket in ["ruled", "elsewhere"] {
        alice.create_bucket().bucket(bucket).send().await.expect("create");
        put(&alice, bucket, "data/k", vec![7u8; 4096]).await;
    }
    alice.put_bucket_policy().bucket("ruled").policy(twenty_statements(&bob_id)).send().await.expect("policy");
    let rule = aws_sdk_s3::types::CorsRule::builder().allowed_methods("GET").allowed_origins("https://app.example");
    let cors = aws_sdk_s3::types::CorsConfiguration::builder().cors_rules(rule.build().expect("rule")).build();
    alice.put_bucket_cors().bucket("ruled").cors_configuration(cors.expect("cors")).send().await.expect("put cors");

    const N: u64 = 10;
    let gets = |c: &Client| {
        let c = c.clone();
        async move {
            for _ in 0..N {
                c.get_object().bucket("ruled").key("data/k").send().await.expect("GET");
            }
        }
    };
    let puts = |c: &Client| {
        let c = c.clone();
        async move {
            for i in 0..N {
                put(&c, "ruled", &format!("data/{i}"), vec![1u8; 4096]).await;
            }
        }
    };
    // A browser's GET: the answer's CORS headers come from the same record.
    let from_a_page = || {
        let c = alice.clone();
        async move {
            for _ in 0..N {
                let get = c.get_object().bucket("ruled").key("data/k").customize();
                get.mutate_request(|r| drop(r.headers_mut().insert("origin", "https://app.example")))
                    .send()
                    .await
                    .expect("GET");
            }
        }
    };
    let copies = |from: &'static str| {
        let c = alice.clone();
        async move {
            for i in 0..N {
                let copy = c.copy_object().bucket("ruled").key(format!("copy/{i}")).copy_source(from);
                copy.send().await.expect("copy");
            }
        }
    };
    let found = [
        ("GET by the owner", bucket_record_reads(&url, gets(&alice)).await),
        ("PUT by the owner", bucket_record_reads(&url, puts(&alice)).await),
        ("GET by a key the policy lets in", bucket_record_reads(&url, gets(&bob)).await),
        ("PUT by a key the policy lets in", bucket_record_reads(&url, puts(&bob)).await),
        ("GET with an Origin, under CORS rules", bucket_record_reads(&url, from_a_page()).await),
        ("copy within one bucket", bucket_record_reads(&url, copies("ruled/data/k")).await),
        ("copy from another bucket", bucket_record_reads(&url, copies("elsewhere/data/k")).await),
    ];
    let once = found.map(|(what, _)| (what, if what == "copy from another bucket" { 2 * N } else { N }));
    assert_eq!(found, once, "bucket record reads for {N} requests of each kind (two buckets: two records)");
}
