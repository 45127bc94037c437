//! Evaluation: runs every rule of a profile on the facts and assembles the report, applying
//! each rule's severity (a recommended rule that fails is a WARN).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::checks;
use crate::observed::Facts;
use crate::profile::{Profile, Rule, Severity};
use crate::report::{ASSESSMENT, Outcome, Report, RuleOutcome, Summary};

/// Evaluates `profile` on `facts`; `deployment` names the deployment in the report.
pub fn evaluate(profile: &Profile, facts: &Facts, now: OffsetDateTime, deployment: &str) -> Report {
    let outcomes: Vec<RuleOutcome> = profile.rules.iter().map(|rule| rule_outcome(rule, facts)).collect();
    let effective = profile.effective.format(format_description!("[year]-[month]-[day]"));
    Report {
        profile: profile.id.clone(),
        profile_version: profile.version.clone(),
        profile_effective: effective.unwrap_or_else(|_| profile.effective.to_string()),
        profile_title: profile.title.clone(),
        profile_notes: profile.notes.trim().to_owned(),
        // Only years beyond 9999 fail RFC 3339; the fallback keeps the report whole.
        generated: now.format(&Rfc3339).unwrap_or_else(|_| now.to_string()),
        deployment: deployment.to_owned(),
        assessment: ASSESSMENT.to_owned(),
        summary: Summary::count(&outcomes),
        outcomes,
    }
}

fn rule_outcome(rule: &Rule, facts: &Facts) -> RuleOutcome {
    let (mut outcome, mut reason, facts) = checks::run(&rule.check, facts);
    if rule.severity == Severity::Recommended && outcome == Outcome::Fail {
        outcome = Outcome::Warn;
        reason = format!("recommended, not met: {reason}");
    }
    RuleOutcome {
        id: rule.id.clone(),
        title: rule.title.clone(),
        source: rule.source.clone(),
        severity: rule.severity.as_str().to_owned(),
        outcome,
        reason,
        note: rule.note.clone(),
        facts,
    }
}
