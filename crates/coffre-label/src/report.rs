//! The pre-assessment report: one outcome per rule with the facts it read and their sources,
//! serialized in a fixed field order (what gets signed), and shown as text or self-contained HTML.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// What the report claims to be; never a qualification or a certification.
pub const ASSESSMENT: &str = "pre-assessment";

/// A rule's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Outcome {
    #[serde(rename = "N/A")]
    NotApplicable,
    #[serde(rename = "PASS")]
    Pass,
    #[serde(rename = "WARN")]
    Warn,
    /// A fact is missing: never read as a pass.
    #[serde(rename = "UNKNOWN")]
    Unknown,
    #[serde(rename = "FAIL")]
    Fail,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::NotApplicable => "N/A",
            Outcome::Pass => "PASS",
            Outcome::Warn => "WARN",
            Outcome::Unknown => "UNKNOWN",
            Outcome::Fail => "FAIL",
        }
    }
}

/// One fact a rule looked at, and where it came from (`config: …` or `observed: …`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactUsed {
    pub name: String,
    pub value: String,
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOutcome {
    pub id: String,
    pub title: String,
    pub source: String,
    pub severity: String,
    pub outcome: Outcome,
    pub reason: String,
    pub note: Option<String>,
    pub facts: Vec<FactUsed>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub pass: u32,
    pub fail: u32,
    pub warn: u32,
    pub not_applicable: u32,
    pub unknown: u32,
}

impl Summary {
    pub fn count(outcomes: &[RuleOutcome]) -> Summary {
        let mut summary = Summary::default();
        for rule in outcomes {
            let slot = match rule.outcome {
                Outcome::Pass => &mut summary.pass,
                Outcome::Fail => &mut summary.fail,
                Outcome::Warn => &mut summary.warn,
                Outcome::NotApplicable => &mut summary.not_applicable,
                Outcome::Unknown => &mut summary.unknown,
            };
            *slot += 1;
        }
        summary
    }
}

/// The result of [`evaluate`](crate::evaluate()); field order is the signed byte order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub profile: String,
    pub profile_version: String,
    /// `YYYY-MM-DD`.
    pub profile_effective: String,
    pub profile_title: String,
    pub profile_notes: String,
    /// RFC 3339.
    pub generated: String,
    pub deployment: String,
    /// Always [`ASSESSMENT`].
    pub assessment: String,
    pub summary: Summary,
    pub outcomes: Vec<RuleOutcome>,
}

impl Report {
    /// The headline: a pre-assessment has no blocking finding when nothing FAILs or is UNKNOWN.
    pub fn conclusion(&self) -> String {
        let blocking = self.summary.fail + self.summary.unknown;
        if blocking == 0 {
            format!("{ASSESSMENT}: no blocking finding against {}@{}", self.profile, self.profile_version)
        } else {
            format!(
                "{ASSESSMENT}: {blocking} blocking finding(s) against {}@{} ({} FAIL, {} UNKNOWN)",
                self.profile, self.profile_version, self.summary.fail, self.summary.unknown
            )
        }
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let s = &self.summary;
        // Writing to a String cannot fail.
        let _ = writeln!(out, "Coffre trust label — {} of deployment {}", ASSESSMENT, self.deployment);
        let _ = writeln!(
            out,
            "Profile: {}@{} ({}), effective {}",
            self.profile, self.profile_version, self.profile_title, self.profile_effective
        );
        let _ = writeln!(out, "Generated: {}", self.generated);
        let _ = writeln!(out, "{}", self.conclusion());
        let _ = writeln!(
            out,
            "PASS {}  FAIL {}  WARN {}  UNKNOWN {}  N/A {}",
            s.pass, s.fail, s.warn, s.unknown, s.not_applicable
        );
        if !self.profile_notes.is_empty() {
            let _ = writeln!(out, "\n{}", self.profile_notes.trim_end());
        }
        for rule in &self.outcomes {
            let _ = writeln!(
                out,
                "\n[{}] {} {} ({}, {})",
                rule.outcome.as_str(),
                rule.id,
                rule.title,
                rule.source,
                rule.severity
            );
            let _ = writeln!(out, "    {}", rule.reason);
            if let Some(note) = &rule.note {
                let _ = writeln!(out, "    note: {note}");
            }
            for fact in &rule.facts {
                let _ = writeln!(out, "    - {} = {}  [{}]", fact.name, fact.value, fact.source);
            }
        }
        out
    }

    /// One page, no external resources; every value is escaped.
    pub fn to_html(&self) -> String {
        let title = format!("{} — {}@{} — {}", ASSESSMENT, self.profile, self.profile_version, self.deployment);
        let mut out = String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
        let _ = write!(out, "<title>{}</title><style>{STYLE}</style></head><body>", escape(&title));
        let _ = write!(out, "<h1>Coffre trust label: {}</h1>", escape(&title));
        let _ = write!(out, "<p class=\"c\">{}</p>", escape(&self.conclusion()));
        let _ = write!(
            out,
            "<p>{} ({}), effective {}. Generated {}.</p><p>{}</p>",
            escape(&self.profile_title),
            escape(&self.profile),
            escape(&self.profile_effective),
            escape(&self.generated),
            escape(&self.profile_notes)
        );
        out.push_str("<table><tr><th>Outcome</th><th>Rule</th><th>Source</th><th>Reason and facts</th></tr>");
        for rule in &self.outcomes {
            html_rule(&mut out, rule);
        }
        out.push_str("</table></body></html>\n");
        out
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:4px;vertical-align:top}.PASS{background:#dfd}.FAIL{background:#fdd}\
.WARN{background:#ffd}.UNKNOWN{background:#eee}.c{font-weight:bold}small{color:#555}";

fn html_rule(out: &mut String, rule: &RuleOutcome) {
    let class = match rule.outcome {
        Outcome::NotApplicable => "NA",
        other => other.as_str(),
    };
    let _ = write!(
        out,
        "<tr class=\"{class}\"><td>{}</td><td>{} {}<br><small>{}</small></td><td>{}</td><td>{}",
        rule.outcome.as_str(),
        escape(&rule.id),
        escape(&rule.title),
        escape(&rule.severity),
        escape(&rule.source),
        escape(&rule.reason)
    );
    if let Some(note) = &rule.note {
        let _ = write!(out, "<br><small>note: {}</small>", escape(note));
    }
    out.push_str("<ul>");
    for fact in &rule.facts {
        let _ = write!(
            out,
            "<li>{} = {} <small>[{}]</small></li>",
            escape(&fact.name),
            escape(&fact.value),
            escape(&fact.source)
        );
    }
    out.push_str("</ul></td></tr>");
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_every_value() {
        let report = Report {
            profile: "p".into(),
            profile_version: "1".into(),
            profile_effective: "2026-01-01".into(),
            profile_title: "<script>".into(),
            profile_notes: String::new(),
            generated: "now".into(),
            deployment: "a&b".into(),
            assessment: ASSESSMENT.into(),
            summary: Summary::default(),
            outcomes: vec![RuleOutcome {
                id: "R".into(),
                title: "t".into(),
                source: "s".into(),
                severity: "blocking".into(),
                outcome: Outcome::Pass,
                reason: "r".into(),
                note: None,
                facts: vec![FactUsed { name: "n".into(), value: "\"><img src=x>".into(), source: "config: x".into() }],
            }],
        };
        let html = report.to_html();
        assert!(!html.contains("<script>") && !html.contains("<img"), "{html}");
        assert!(html.contains("a&amp;b") && html.contains("pre-assessment"));
        let text = report.to_text();
        assert!(text.contains("pre-assessment") && !text.to_lowercase().contains("certified"));
    }
}
