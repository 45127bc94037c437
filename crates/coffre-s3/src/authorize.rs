//! Authorization at the S3 front: who asks (an access key, root, or nobody),
//! which actions on which resource, decided by `coffre-iam` against the
//! bucket's policy and its Block Public Access settings, before any body is read.
//!
//! Until tenants exist (#16), an access key is its own tenant: it may do
//! anything to its own buckets (an implicit identity policy) and, in the
//! buckets of others, what their policies grant it. Root is the operator
//! and acts in every tenant, but an explicit deny binds it too.

mod actions;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use coffre_core::meta::BucketRecord;
use coffre_core::service::ObjectService;
use coffre_core::types::{AccessKeyId, BucketName};
use coffre_iam::{
    Context, Decision, Identity, Outcome, Policies, Policy, PolicyKind, PolicyRef, PrincipalKind, Request,
};
use s3s::access::S3AccessContext;
use s3s::{S3Error, s3_error};

pub(crate) use actions::required;

/// Where a request came from, set by the front for each request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    pub(crate) ip: IpAddr,
    /// Over TLS (`aws:SecureTransport`).
    pub(crate) secure: bool,
}

impl Caller {
    /// The client behind the connection: the TCP peer, unless the peer is
    /// one of the operator's `trusted` proxies, whose `X-Forwarded-For` then
    /// names it (the rightmost address no trusted proxy holds) and whose
    /// `X-Forwarded-Proto: https` says it came over TLS. From anyone else
    /// these headers are ignored: a client cannot choose its own address.
    pub(crate) fn of(peer: IpAddr, tls: bool, headers: &http::HeaderMap, trusted: &[ipnet::IpNet]) -> Self {
        let from_proxy = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        if !from_proxy(&peer) {
            return Self { ip: peer, secure: tls };
        }
        let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).map(str::trim).collect();
        let mut ip = peer;
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(addr) if from_proxy(&addr) => ip = addr,
                Ok(addr) => {
                    ip = addr;
                    break;
                }
                // A hop that is no address: nothing left of it can be trusted.
                Err(_) => break,
            }
        }
        let proto = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok());
        Self { ip, secure: tls || proto.is_some_and(|p| p.eq_ignore_ascii_case("https")) }
    }
}

/// What authorization let this request use, for the operation to act on.
#[derive(Clone, Default)]
pub(crate) struct Grant {
    /// Each bucket as the decision read it: the operation uses these
    /// records rather than reading them again.
    pub(crate) buckets: Vec<Arc<BucketRecord>>,
    /// DeleteObjects names its keys in its body: each is decided there.
    pub(crate) per_key: Option<Arc<KeyCheck>>,
    /// The bucket's BlockPublicAcls: a public ACL is then a 403, not a 400.
    pub(crate) block_public_acls: bool,
}

/// The decision kept for the keys of a DeleteObjects body.
pub(crate) struct KeyCheck {
    authorizer: Authorizer,
    asker: Asker,
    bucket: Ruled,
    context: Context,
    /// The actions every key needs (`s3:DeleteObject`, maybe the bypass).
    actions: Vec<String>,
}

impl KeyCheck {
    /// Whether this key (and version) may be deleted, with its own tags as
    /// `s3:ExistingObjectTag/...`; the refusal otherwise.
    pub(crate) async fn allows(&self, key: &str, version: Option<&str>) -> Result<(), Denied> {
        let resource = format!("arn:aws:s3:::{}/{key}", self.bucket.record.name);
        let mut context = self.context.clone();
        self.authorizer.existing_tags(&self.bucket, key, version, &mut context).await?;
        let actions = self.actions.iter().map(|a| match a.as_str() {
            "s3:DeleteObject" if version.is_some() => "s3:DeleteObjectVersion".to_owned(),
            other => other.to_owned(),
        });
        self.authorizer.check_actions(&self.asker, &self.bucket, actions, &resource, &context)
    }
}

/// What one action comes to, and why.
pub struct Verdict {
    pub allowed: bool,
    /// `allowed by bucket-policy:Sid`, `denied: no statement allowed it`...
    pub why: String,
    /// The statements that decided, as `policy:statement`.
    pub deciding: Vec<String>,
}

/// `coffre iam simulate`: the decision the S3 front would make, made by
/// the same code on the bucket as it is now.
pub struct PolicySimulator(Authorizer);

impl PolicySimulator {
    pub fn new(service: Arc<ObjectService>, root: AccessKeyId) -> Self {
        Self(Authorizer::new(service, root))
    }

    /// Decides `action` on `resource` (`arn:aws:s3:::bucket[/key]`) for
    /// `principal` (an access key id, or `None` for anonymous), with the
    /// condition keys a request would carry, overridden by `context`.
    pub async fn simulate(
        &self,
        principal: Option<&str>,
        action: &str,
        resource: &str,
        context_keys: &[(String, String)],
    ) -> Result<Verdict, String> {
        let authorizer = &self.0;
        let asker = authorizer.asker(principal);
        if principal.is_some() && asker.key.is_none() {
            return Err(format!("{principal:?} is not an access key id"));
        }
        let path = resource.strip_prefix("arn:aws:s3:::").ok_or("the resource must be arn:aws:s3:::BUCKET[/KEY]")?;
        let (bucket, key) = match path.split_once('/') {
            Some((bucket, key)) => (bucket, Some(key)),
            None => (path, None),
        };
        let ruled = match authorizer.bucket(bucket, &asker).await {
            Ok(Some(ruled)) => ruled,
            Ok(None) | Err(_) => return Err(format!("no bucket named {bucket:?}")),
        };
        let mut context = context(&asker, &ruled.record, None, "", &http::HeaderMap::new());
        if let Some(key) = key {
            authorizer.existing_tags(&ruled, key, None, &mut context).await.map_err(|d| d.why)?;
        }
        for (name, value) in context_keys {
            context.set(name, value.clone());
        }
        Ok(authorizer.verdict(&asker, &ruled, action, resource, &context))
    }
}

/// A refusal, and the decision that made it (for the audit event).
pub(crate) struct Denied {
    pub(crate) error: S3Error,
    pub(crate) why: String,
}

/// Parsed bucket policies by bucket, so a request does not parse JSON: at
/// most one entry per bucket, replaced when its policy changes.
#[derive(Default)]
struct PolicyCache(Mutex<HashMap<BucketName, Arc<BucketPolicy>>>);
/// Enough for every bucket with a policy on a busy gateway; past it an
/// arbitrary entry makes room (parsing is the cost of a miss, nothing else).
const MAX_CACHED_POLICIES: usize = 4096;

/// A bucket as the decision sees it: its record, read once per request and
/// handed to the operation ([`Grant::buckets`]), and its policy parsed.
#[derive(Clone)]
struct Ruled {
    record: Arc<BucketRecord>,
    policy: Option<Arc<BucketPolicy>>,
}

struct BucketPolicy {
    /// The text parsed: an entry serves a record whose policy is this text.
    text: String,
    full: Policy,
    /// The same without its public statements, for RestrictPublicBuckets.
    private_part: Policy,
    /// It tests `s3:ExistingObjectTag/...`: the object's tags must be read.
    reads_object_tags: bool,
}

#[derive(Clone)]
pub(crate) struct Authorizer {
    service: Arc<ObjectService>,
    root: AccessKeyId,
    policies: Arc<PolicyCache>,
    /// What an access key may do in its own tenant: everything.
    key_policy: Arc<Policy>,
}

/// Who asks, as the evaluator names it.
#[derive(Clone)]
struct Asker {
    key: Option<AccessKeyId>,
    is_root: bool,
    identity: Identity,
}

impl Asker {
    /// The bucket's owner, or root (which acts in every tenant).
    fn in_tenant_of(&self, record: &BucketRecord) -> bool {
        self.is_root || self.key.as_ref() == Some(&record.owner)
    }
}

impl Authorizer {
    pub(crate) fn new(service: Arc<ObjectService>, root: AccessKeyId) -> Self {
        let text =
            r#"{"Version":"2012-10-17","Statement":{"Sid":"OwnTenant","Effect":"Allow","Action":"*","Resource":"*"}}"#;
        let key_policy = Policy::parse(text, PolicyKind::Identity).unwrap_or_else(|e| unreachable!("{e}"));
        Self { service, root, policies: Arc::default(), key_policy: Arc::new(key_policy) }
    }

    /// Decides a request s3s has authenticated and routed.
    pub(crate) async fn authorize(&self, cx: &mut S3AccessContext<'_>) -> Result<Grant, Denied> {
        let asker = self.asker(cx.credentials().map(|c| c.access_key.as_str()));
        let operation = cx.s3_op().name().to_owned();
        let operation = operation.as_str();
        let (bucket, key) = match cx.s3_path() {
            s3s::path::S3Path::Root => return self.account_level(&asker),
            s3s::path::S3Path::Bucket { bucket } => (bucket.to_string(), None),
            s3s::path::S3Path::Object { bucket, key } => (bucket.to_string(), Some(key.to_string())),
        };
        if operation == "CreateBucket" {
            return self.account_level(&asker);
        }
        let Some(ruled) = self.bucket(&bucket, &asker).await? else { return Ok(Grant::default()) };
        let caller = cx.extensions_mut().get::<Caller>().copied();
        let query = cx.uri().query().unwrap_or("");
        let mut context = context(&asker, &ruled.record, caller, query, cx.headers());
        if let Some(key) = &key {
            let version = query_param(query, "versionId");
            self.existing_tags(&ruled, key, version.as_deref(), &mut context).await?;
        }
        let resource = match &key {
            Some(key) => format!("arn:aws:s3:::{bucket}/{key}"),
            None => format!("arn:aws:s3:::{bucket}"),
        };
        let version_named = query_param(query, "versionId").is_some();
        let needed = required(operation, version_named, cx.headers());
        if operation == "DeleteObjects" {
            if !asker.in_tenant_of(&ruled.record) && !self.policy_may_allow(&asker, &ruled, &needed) {
                return Err(denied(&asker, "s3:DeleteObject", &resource, "denied: no statement allowed it"));
            }
            let buckets = vec![ruled.record.clone()];
            let check = KeyCheck { authorizer: self.clone(), asker, bucket: ruled, context, actions: needed };
            return Ok(Grant { buckets, per_key: Some(Arc::new(check)), block_public_acls: false });
        }
        if let Err(denied) = self.check_actions(&asker, &ruled, needed.into_iter(), &resource, &context) {
            return Err(self.missing_or_denied(denied, &asker, &ruled, operation, key.as_deref(), &context).await);
        }
        let block_public_acls = ruled.record.public_access.is_some_and(|b| b.block_public_acls);
        let source = self.copy_source(cx, operation, &asker, caller, &ruled).await?;
        let mut grant = Grant { buckets: vec![ruled.record], per_key: None, block_public_acls };
        // A copy within one bucket reads its record once, for both ends.
        grant.buckets.extend(source.filter(|s| s.name != grant.buckets[0].name));
        Ok(grant)
    }

    /// Every action must be allowed.
    fn check_actions(
        &self,
        asker: &Asker,
        bucket: &Ruled,
        needed: impl Iterator<Item = String>,
        resource: &str,
        context: &Context,
    ) -> Result<(), Denied> {
        for action in needed {
            let verdict = self.verdict(asker, bucket, &action, resource, context);
            if !verdict.allowed {
                return Err(denied(asker, &action, resource, &verdict.why));
            }
        }
        Ok(())
    }

    /// One action's verdict: the evaluator's decision, and the two rules
    /// that keep a bucket in its owner's hands: only the owner's tenant
    /// reaches the policy and Block Public Access, and no explicit deny
    /// locks it out of its policy.
    fn verdict(&self, asker: &Asker, bucket: &Ruled, action: &str, resource: &str, context: &Context) -> Verdict {
        let same_tenant = asker.in_tenant_of(&bucket.record);
        if actions::owner_only(action) && !same_tenant {
            let why = "denied: only the bucket owner's tenant may do this".to_owned();
            return Verdict { allowed: false, why, deciding: Vec::new() };
        }
        let decision = self.decide(asker, bucket, action, resource, context);
        let deciding = decision.deciding.iter().map(ToString::to_string).collect();
        if same_tenant && decision.outcome == Outcome::ExplicitDeny && actions::never_locked_out(action) {
            let why = format!("allowed: the owner is never locked out of its policy ({})", decision.explain());
            return Verdict { allowed: true, why, deciding };
        }
        Verdict { allowed: decision.allowed(), why: decision.explain(), deciding }
    }

    /// ListBuckets and CreateBucket: any key, nobody anonymous.
    fn account_level(&self, asker: &Asker) -> Result<Grant, Denied> {
        match asker.key {
            Some(_) => Ok(Grant::default()),
            None => Err(Denied {
                error: s3_error!(AccessDenied, "Anonymous users cannot do this: sign the request"),
                why: "denied: anonymous request at account level".to_owned(),
            }),
        }
    }

    fn asker(&self, access_key: Option<&str>) -> Asker {
        let Some(key) = access_key.and_then(|k| AccessKeyId::parse(k).ok()) else {
            return Asker { key: None, is_root: false, identity: Identity::anonymous() };
        };
        let identity = Identity {
            ids: vec![
                (PrincipalKind::Aws, key.as_str().to_owned()),
                (PrincipalKind::Aws, format!("arn:aws:iam::{key}:root")),
            ],
            tenant: Some(key.as_str().to_owned()),
        };
        Asker { is_root: key == self.root, key: Some(key), identity }
    }

    /// The bucket's record, with its policy parsed: the request's one read
    /// of it. `None` lets the operation answer for a bucket that does not
    /// exist (to a signed request only).
    async fn bucket(&self, bucket: &str, asker: &Asker) -> Result<Option<Ruled>, Denied> {
        let anonymous_refused = || Denied {
            error: s3_error!(AccessDenied, "Access Denied"),
            why: "denied: anonymous request for a bucket that does not exist".to_owned(),
        };
        let Ok(name) = BucketName::parse(bucket) else {
            return if asker.key.is_some() { Ok(None) } else { Err(anonymous_refused()) };
        };
        match self.service.meta().bucket(&name).await {
            Ok(Some(record)) => Ok(Some(Ruled { policy: self.policies.get(&record), record: Arc::new(record) })),
            Ok(None) if asker.key.is_some() => Ok(None),
            Ok(None) => Err(anonymous_refused()),
            Err(e) => Err(Denied { error: crate::error::s3_err(e), why: "metadata unavailable".to_owned() }),
        }
    }

    fn decide(&self, asker: &Asker, bucket: &Ruled, action: &str, resource: &str, context: &Context) -> Decision {
        let record = &bucket.record;
        let same_tenant = asker.in_tenant_of(record);
        let restrict = record.public_access.is_some_and(|b| b.restrict_public_buckets) && !same_tenant;
        let resource_policy = bucket.policy.as_ref().map(|p| if restrict { &p.private_part } else { &p.full });
        let policies = Policies {
            identity: match asker.key {
                Some(_) => vec![PolicyRef { name: "access-key", policy: &self.key_policy }],
                None => Vec::new(),
            },
            resource: resource_policy.map(|policy| PolicyRef { name: "bucket-policy", policy }),
            session: None,
        };
        // Root acts in every tenant; anyone else in its own.
        let tenant = if asker.is_root { asker.identity.tenant.as_deref() } else { Some(record.owner.as_str()) };
        let request = Request { identity: &asker.identity, action, resource, resource_tenant: tenant, context };
        coffre_iam::evaluate(&policies, &request)
    }

    /// A read denied on a key that does not exist is a 404 to a caller who
    /// may list that key (`s3:ListBucket` with `s3:prefix` the key), as on
    /// AWS: listing would tell it anyway. Anyone else gets the 403.
    async fn missing_or_denied(
        &self,
        denied: Denied,
        asker: &Asker,
        bucket: &Ruled,
        operation: &str,
        key: Option<&str>,
        context: &Context,
    ) -> Denied {
        let (Some(key), true) = (key, matches!(operation, "GetObject" | "HeadObject")) else { return denied };
        let mut listing = context.clone();
        listing.set("s3:prefix", key);
        let arn = format!("arn:aws:s3:::{}", bucket.record.name);
        if !self.decide(asker, bucket, "s3:ListBucket", &arn, &listing).allowed() {
            return denied;
        }
        let Ok(object_key) = coffre_core::types::ObjectKey::parse(key) else { return denied };
        match self.service.meta().object(&bucket.record.name, &object_key, None).await {
            Ok(None) => Denied {
                error: crate::error::s3_err(coffre_core::Error::NoSuchKey),
                why: format!("{}; the key does not exist and the caller may list it", denied.why),
            },
            _ => denied,
        }
    }

    /// `s3:ExistingObjectTag/KEY` for each tag of the object (the version
    /// named, else the current one), read only when the policy tests them:
    /// the one request that costs a second metadata read.
    async fn existing_tags(
        &self,
        bucket: &Ruled,
        key: &str,
        version: Option<&str>,
        context: &mut Context,
    ) -> Result<(), Denied> {
        let reads = bucket.policy.as_ref().is_some_and(|p| p.reads_object_tags);
        let (Ok(object_key), true) = (coffre_core::types::ObjectKey::parse(key), reads) else { return Ok(()) };
        let version = version.and_then(|v| coffre_core::types::VersionId::parse(v).ok());
        let found = self.service.meta().object(&bucket.record.name, &object_key, version.as_ref()).await;
        let found =
            found.map_err(|e| Denied { error: crate::error::s3_err(e), why: "metadata unavailable".to_owned() })?;
        for (name, value) in found.map(|v| v.meta.tags).unwrap_or_default() {
            context.set(&format!("s3:ExistingObjectTag/{name}"), value);
        }
        Ok(())
    }

    /// Whether the bucket's policy could allow these actions to someone
    /// outside the owner's tenant, for some key (see [`coffre_iam::may_allow`]).
    fn policy_may_allow(&self, asker: &Asker, bucket: &Ruled, needed: &[String]) -> bool {
        let Some(parsed) = &bucket.policy else { return false };
        let restrict = bucket.record.public_access.is_some_and(|b| b.restrict_public_buckets);
        let policy = if restrict { &parsed.private_part } else { &parsed.full };
        needed.iter().all(|action| coffre_iam::may_allow(policy, &asker.identity, action))
    }

    /// CopyObject and UploadPartCopy read their source: `s3:GetObject` there.
    async fn copy_source(
        &self,
        cx: &mut S3AccessContext<'_>,
        operation: &str,
        asker: &Asker,
        caller: Option<Caller>,
        target: &Ruled,
    ) -> Result<Option<Arc<BucketRecord>>, Denied> {
        if !matches!(operation, "CopyObject" | "UploadPartCopy") {
            return Ok(None);
        }
        let Some((bucket, key, version)) = cx.headers().get("x-amz-copy-source").and_then(copy_source) else {
            return Ok(None);
        };
        let source = if target.record.name.as_str() == bucket {
            target.clone()
        } else {
            let Some(source) = self.bucket(&bucket, asker).await? else { return Ok(None) };
            source
        };
        let mut context = context(asker, &source.record, caller, "", cx.headers());
        // The source's own tags, or a copy would read past a tag condition.
        self.existing_tags(&source, &key, version.as_deref(), &mut context).await?;
        let action = if version.is_some() { "s3:GetObjectVersion" } else { "s3:GetObject" };
        let resource = format!("arn:aws:s3:::{bucket}/{key}");
        let decision = self.decide(asker, &source, action, &resource, &context);
        if !decision.allowed() {
            return Err(denied(asker, action, &resource, &decision.explain()));
        }
        Ok(Some(source.record))
    }
}

impl PolicyCache {
    /// The record's policy, parsed: from the cache when the entry for this
    /// bucket was parsed from the same text (compared, not hashed: a hit
    /// costs a lookup by name and a byte comparison that stops at the first
    /// difference), else parsed now, outside the lock, and kept.
    fn get(&self, record: &BucketRecord) -> Option<Arc<BucketPolicy>> {
        let text = record.policy.as_deref()?;
        // Entries are whole once inserted: a poisoned lock still guards a sound map.
        let cache = || self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let cached = cache().get(&record.name).cloned();
        if let Some(found) = cached.filter(|p| p.text == text) {
            return Some(found);
        }
        let parsed = Arc::new(BucketPolicy::parse(text)?);
        let mut cache = cache();
        if cache.len() >= MAX_CACHED_POLICIES
            && !cache.contains_key(&record.name)
            && let Some(evicted) = cache.keys().next().cloned()
        {
            cache.remove(&evicted);
        }
        cache.insert(record.name.clone(), parsed.clone());
        Some(parsed)
    }
}

impl BucketPolicy {
    /// `None` for a stored policy that no longer reads: it grants nothing.
    fn parse(text: &str) -> Option<Self> {
        let full = match Policy::parse(text, PolicyKind::Resource) {
            Ok(p) => p,
            Err(e) => {
                // Checked when put: only a change of the language can make one unreadable.
                tracing::error!(error = %e, "a stored bucket policy does not parse");
                return None;
            }
        };
        let private_part = Policy {
            statements: full.statements.iter().filter(|s| !is_public_statement(s, &full)).cloned().collect(),
            ..full.clone()
        };
        let reads_object_tags = full
            .statements
            .iter()
            .flat_map(|s| &s.conditions)
            .any(|c| c.key.to_ascii_lowercase().starts_with("s3:existingobjecttag/"));
        Some(Self { text: text.to_owned(), full, private_part, reads_object_tags })
    }
}

fn is_public_statement(statement: &coffre_iam::Statement, policy: &Policy) -> bool {
    coffre_iam::is_public(&Policy { statements: vec![statement.clone()], ..policy.clone() })
}

fn denied(asker: &Asker, action: &str, resource: &str, why: &str) -> Denied {
    let who = asker.key.as_ref().map_or("anonymous", AccessKeyId::as_str);
    Denied {
        error: s3_error!(AccessDenied, "Access Denied: {who} is not allowed to perform {action} on {resource}"),
        why: why.to_owned(),
    }
}

/// `bucket/key[?versionId=...]`, percent-decoded, with or without a leading `/`.
fn copy_source(value: &http::HeaderValue) -> Option<(String, String, Option<String>)> {
    let text = value.to_str().ok()?;
    let (path, query) = text.split_once('?').unwrap_or((text, ""));
    let path = urlencoding::decode(path.trim_start_matches('/')).ok()?;
    let (bucket, key) = path.split_once('/')?;
    Some((bucket.to_owned(), key.to_owned(), query_param(query, "versionId")))
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| urlencoding::decode(v).map(|d| d.into_owned()).unwrap_or_else(|_| v.to_owned()))
}

/// The condition keys a request carries, as AWS names them.
fn context(
    asker: &Asker,
    record: &BucketRecord,
    caller: Option<Caller>,
    query: &str,
    headers: &http::HeaderMap,
) -> Context {
    let mut c = Context::new();
    let now = time::OffsetDateTime::now_utc();
    if let Ok(text) = now.format(&time::format_description::well_known::Rfc3339) {
        c.set("aws:CurrentTime", text);
    }
    c.set("aws:EpochTime", now.unix_timestamp().to_string());
    if let Some(caller) = caller {
        c.set("aws:SourceIp", caller.ip.to_string());
        c.set("aws:SecureTransport", caller.secure.to_string());
    }
    match &asker.key {
        Some(key) => {
            c.set("aws:PrincipalType", "Account");
            c.set("aws:userid", key.as_str());
            c.set("aws:PrincipalAccount", key.as_str());
            c.set("aws:PrincipalArn", format!("arn:aws:iam::{key}:root"));
        }
        None => {
            c.set("aws:PrincipalType", "Anonymous");
        }
    }
    for (param, key) in [
        ("prefix", "s3:prefix"),
        ("delimiter", "s3:delimiter"),
        ("max-keys", "s3:max-keys"),
        ("versionId", "s3:VersionId"),
    ] {
        if let Some(v) = query_param(query, param) {
            c.set(key, v);
        }
    }
    request_headers(&mut c, headers);
    if let Some(residency) = &record.residency {
        c.set_all("coffre:ResidencyJurisdiction", residency.allow.clone());
    }
    c
}

/// Condition keys read from request headers.
fn request_headers(c: &mut Context, headers: &http::HeaderMap) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    for (name, key) in [
        ("x-amz-server-side-encryption", "s3:x-amz-server-side-encryption"),
        ("x-amz-server-side-encryption-aws-kms-key-id", "s3:x-amz-server-side-encryption-aws-kms-key-id"),
        ("x-amz-acl", "s3:x-amz-acl"),
        ("x-amz-copy-source", "s3:x-amz-copy-source"),
        ("x-amz-metadata-directive", "s3:x-amz-metadata-directive"),
        ("x-amz-storage-class", "s3:x-amz-storage-class"),
        ("x-amz-object-lock-mode", "s3:object-lock-mode"),
        ("x-amz-object-lock-retain-until-date", "s3:object-lock-retain-until-date"),
        ("x-amz-object-lock-legal-hold", "s3:object-lock-legal-hold"),
        ("x-amz-server-side-encryption-customer-algorithm", "s3:x-amz-server-side-encryption-customer-algorithm"),
        ("referer", "aws:Referer"),
        ("user-agent", "aws:UserAgent"),
    ] {
        if let Some(v) = header(name) {
            c.set(key, v);
        }
    }
    if let Some(tagging) = header("x-amz-tagging") {
        let tags: Vec<(String, String)> = tagging
            .split('&')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                Some((urlencoding::decode(k).ok()?.into_owned(), urlencoding::decode(v).ok()?.into_owned()))
            })
            .collect();
        for (k, v) in &tags {
            c.set(&format!("s3:RequestObjectTag/{k}"), v.clone());
        }
        c.set_all("s3:RequestObjectTagKeys", tags.into_iter().map(|(k, _)| k).collect());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use coffre_core::meta::BucketRecord;
    use coffre_core::types::{AccessKeyId, BucketName};

    use super::{Caller, MAX_CACHED_POLICIES, PolicyCache};

    fn with_policy(bucket: &str, sid: &str) -> BucketRecord {
        let name = BucketName::parse(bucket).expect("name");
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{sid}","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
        );
        let owner = AccessKeyId::parse("AKIAOWNER0000000000A").expect("key");
        BucketRecord { policy: Some(text), ..BucketRecord::new(name, owner) }
    }

    #[test]
    fn a_cached_policy_serves_its_bucket_until_the_text_changes() {
        let cache = PolicyCache::default();
        let first = cache.get(&with_policy("ruled", "One")).expect("parsed");
        let again = cache.get(&with_policy("ruled", "One")).expect("cached");
        assert!(Arc::ptr_eq(&first, &again), "the same text on a record read again is a hit");
        let changed = cache.get(&with_policy("ruled", "Two")).expect("parsed again");
        assert_eq!(changed.full.statements[0].sid.as_deref(), Some("Two"), "a changed policy is never served stale");
        let other = cache.get(&with_policy("other", "One")).expect("another bucket");
        assert!(!Arc::ptr_eq(&first, &other), "entries are per bucket");
        assert!(cache.get(&BucketRecord { policy: None, ..with_policy("ruled", "One") }).is_none());
    }

    #[test]
    fn the_policy_cache_holds_one_entry_per_bucket_and_no_more_than_its_bound() {
        let cache = PolicyCache::default();
        for sid in ["A", "B", "C"] {
            cache.get(&with_policy("ruled", sid)).expect("parsed");
        }
        assert_eq!(cache.0.lock().expect("lock").len(), 1, "a bucket's new policy replaces its old one");
        for i in 0..MAX_CACHED_POLICIES + 10 {
            cache.get(&with_policy(&format!("bucket-{i}"), "A")).expect("parsed");
        }
        assert_eq!(cache.0.lock().expect("lock").len(), MAX_CACHED_POLICIES);
        let last = with_policy(&format!("bucket-{}", MAX_CACHED_POLICIES + 9), "A");
        assert!(cache.0.lock().expect("lock").contains_key(&last.name), "the newest entry is kept");
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-for", http::HeaderValue::from_static("203.0.113.9, 198.51.100.7, 10.0.0.2"));
        headers.insert("x-forwarded-proto", http::HeaderValue::from_static("https"));
        let peer = "10.0.0.1".parse().expect("ip");
        let via_proxy = Caller::of(peer, false, &headers, &trusted);
        assert_eq!((via_proxy.ip.to_string(), via_proxy.secure), ("198.51.100.7".to_owned(), true));
        let direct = Caller::of("192.0.2.1".parse().expect("ip"), false, &headers, &trusted);
        assert_eq!((direct.ip.to_string(), direct.secure), ("192.0.2.1".to_owned(), false), "a client's own headers");
        let untrusting = Caller::of(peer, false, &headers, &[]);
        assert_eq!(untrusting.ip, peer);
        headers.insert("x-forwarded-for", http::HeaderValue::from_static("junk, 10.0.0.3"));
        assert_eq!(Caller::of(peer, false, &headers, &trusted).ip.to_string(), "10.0.0.3", "stops at a non-address");
    }
}
