//! The decision: which statements apply to a request, and what AWS's
//! evaluation logic makes of them (explicit deny first, then the allows each
//! kind of policy must give), with the deciding statements named.

use crate::pattern::{matches, wildcard_match};
use crate::policy::{Effect, Matcher, Policy, Principals, Statement};
use crate::request::{Identity, Request};
use crate::vars::expand;

/// A policy in force, with the name a decision will cite.
#[derive(Debug, Clone, Copy)]
pub struct PolicyRef<'a> {
    pub name: &'a str,
    pub policy: &'a Policy,
}

/// Every policy in force for one request.
#[derive(Debug, Clone, Default)]
pub struct Policies<'a> {
    /// The principal's own policies (and its groups').
    pub identity: Vec<PolicyRef<'a>>,
    /// The resource's policy (a bucket policy).
    pub resource: Option<PolicyRef<'a>>,
    /// A temporary session's policies; `None` when the request is not made
    /// with session credentials, or the session was given none.
    pub session: Option<Vec<PolicyRef<'a>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    /// A statement denied it.
    ExplicitDeny,
    /// No statement allowed it (or not every policy that must allow did).
    ImplicitDeny,
}

/// A statement by policy name and `Sid` (or position, `#1` for the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRef {
    pub policy: String,
    pub statement: String,
}

impl std::fmt::Display for StatementRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.policy, self.statement)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// The denying statements, or the allowing ones; empty for an implicit deny.
    pub deciding: Vec<StatementRef>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    /// One line for an audit event or a CLI: what decided and why.
    pub fn explain(&self) -> String {
        let cited = || self.deciding.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        match self.outcome {
            Outcome::Allow => format!("allowed by {}", cited()),
            Outcome::ExplicitDeny => format!("denied by {}", cited()),
            Outcome::ImplicitDeny => "denied: no statement allowed it".to_owned(),
        }
    }
}

/// The statements of one set of policies that apply to the request.
#[derive(Default)]
struct Applying {
    allows: Vec<StatementRef>,
    denies: Vec<StatementRef>,
}

fn applying(policies: &[PolicyRef<'_>], request: &Request<'_>) -> Applying {
    let mut found = Applying::default();
    for PolicyRef { name, policy } in policies {
        for (index, statement) in policy.statements.iter().enumerate() {
            if applies(statement, policy, request) {
                let cited = StatementRef {
                    policy: (*name).to_owned(),
                    statement: statement.sid.clone().unwrap_or_else(|| format!("#{}", index + 1)),
                };
                match statement.effect {
                    Effect::Allow => found.allows.push(cited),
                    Effect::Deny => found.denies.push(cited),
                }
            }
        }
    }
    found
}

fn applies(statement: &Statement, policy: &Policy, request: &Request<'_>) -> bool {
    let variables = policy.has_variables();
    statement.principal.as_ref().is_none_or(|p| principal_matches(p, request.identity))
        && matcher_matches(&statement.action, request.action, true, request, false)
        && statement.resource.as_ref().is_none_or(|r| matcher_matches(r, request.resource, false, request, variables))
        && statement.conditions.iter().all(|c| c.holds(request.context, variables))
}

fn principal_matches(principals: &Principals, identity: &Identity) -> bool {
    let named = principals.everyone || principals.ids.iter().any(|id| identity.ids.contains(id));
    named != principals.negated
}

/// Actions compare case-insensitively; resources exactly, with variables.
fn matcher_matches(
    matcher: &Matcher,
    subject: &str,
    ignore_case: bool,
    request: &Request<'_>,
    variables: bool,
) -> bool {
    let hit = matcher.patterns.iter().any(|pattern| {
        // Most patterns name no variable: matched as they are, nothing allocated.
        if !(variables && pattern.contains("${")) {
            return wildcard_match(pattern, subject, ignore_case);
        }
        expand(pattern, request.context, variables).is_some_and(|p| matches(&p, subject, ignore_case))
    });
    hit != matcher.negated
}

/// Whether some Allow statement of `policy` names this principal and action,
/// whatever its resources and conditions: a bound for a request whose
/// resources are only known later (the keys in a DeleteObjects body), so
/// that a request no statement could allow is refused before its body is read.
pub fn may_allow(policy: &Policy, identity: &Identity, action: &str) -> bool {
    let context = crate::request::Context::new();
    let request = Request { identity, action, resource: "", resource_tenant: None, context: &context };
    policy.statements.iter().any(|s| {
        s.effect == Effect::Allow
            && s.principal.as_ref().is_none_or(|p| principal_matches(p, identity))
            && matcher_matches(&s.action, action, true, &request, false)
    })
}

/// Decides a request as AWS documents it: any applying Deny wins; then,
/// within the resource's tenant, an identity or a resource policy allowing
/// is enough, while across tenants both must allow; a session's policies
/// must allow as well (they bound what the identity policies give).
pub fn evaluate(policies: &Policies<'_>, request: &Request<'_>) -> Decision {
    let identity = applying(&policies.identity, request);
    let resource = applying(policies.resource.as_slice(), request);
    let session = policies.session.as_ref().map(|s| applying(s, request));
    let denies: Vec<StatementRef> =
        [&identity, &resource].into_iter().chain(session.as_ref()).flat_map(|a| a.denies.iter().cloned()).collect();
    if !denies.is_empty() {
        return Decision { outcome: Outcome::ExplicitDeny, deciding: denies };
    }
    let same_tenant =
        request.identity.tenant.is_some() && request.identity.tenant.as_deref() == request.resource_tenant;
    let by_identity = !identity.allows.is_empty();
    let by_resource = !resource.allows.is_empty();
    let mut deciding = Vec::new();
    let allowed = match &session {
        // A session acts within what its policies allow, intersected with
        // its identity's (or, in its own tenant, the resource policy's).
        Some(session) => {
            let base = by_identity || (same_tenant && by_resource);
            deciding.extend(session.allows.iter().cloned());
            !session.allows.is_empty() && base
        }
        None if same_tenant => by_identity || by_resource,
        None => by_resource && (by_identity || request.identity.is_anonymous()),
    };
    if !allowed {
        return Decision { outcome: Outcome::ImplicitDeny, deciding: Vec::new() };
    }
    deciding.extend(identity.allows);
    deciding.extend(resource.allows);
    Decision { outcome: Outcome::Allow, deciding }
}
