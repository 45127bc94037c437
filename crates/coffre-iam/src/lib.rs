//! Coffre's access policies: the AWS JSON policy language parsed once into
//! typed statements, and the evaluator that decides a request with them.
//!
//! Pure: no I/O. The S3 front builds a [`Request`] (who, which action, which
//! resource, the condition keys it knows) and the [`Policies`] in force; the
//! evaluator answers a [`Decision`] that names the statements that made it,
//! so a denial can always be explained. Evaluation follows AWS's documented
//! logic: an explicit deny wins; within a tenant an identity or a resource
//! policy may allow; across tenants both must; session policies intersect.

mod condition;
mod eval;
mod pattern;
mod policy;
mod public;
mod request;
mod vars;

pub use condition::{Condition, Operator, SetQualifier};
pub use eval::{Decision, Outcome, Policies, PolicyRef, StatementRef, evaluate, may_allow};
pub use pattern::wildcard_match;
pub use policy::{Effect, Matcher, Policy, PolicyError, PolicyKind, PrincipalKind, Principals, Statement, Version};
pub use public::is_public;
pub use request::{Context, Identity, Request};
