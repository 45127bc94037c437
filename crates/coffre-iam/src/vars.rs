//! Policy variables (`${aws:username}`, `${aws:PrincipalTag/team}`, and the
//! escapes `${*}`, `${?}`, `${$}`), replaced by the request's values before a
//! resource or condition value is compared. Only in policies of version
//! 2012-10-17; an older policy takes `${...}` literally, as AWS does.

use crate::pattern::{Piece, piece};
use crate::request::Context;

/// Expands `template` into pattern pieces. Text from a variable is literal
/// (a `*` in a user name is not a wildcard). `None` when a variable has no
/// value in this request: the element then matches nothing, as AWS says.
pub(crate) fn expand(template: &str, context: &Context, variables: bool) -> Option<Vec<Piece>> {
    let mut out = Vec::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${").filter(|_| variables) {
        out.extend(rest[..start].chars().map(piece));
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.extend(rest[start..].chars().map(piece));
            return Some(out);
        };
        let name = &after[..end];
        match name {
            "*" | "?" | "$" => out.extend(name.chars().map(Piece::Char)),
            _ => out.extend(value(name, context)?.chars().map(Piece::Char)),
        }
        rest = &after[end + 1..];
    }
    out.extend(rest.chars().map(piece));
    Some(out)
}

/// Expands `template` to plain text, for exact comparisons.
pub(crate) fn expand_text(template: &str, context: &Context, variables: bool) -> Option<String> {
    let pieces = expand(template, context, variables)?;
    Some(
        pieces
            .into_iter()
            .map(|p| match p {
                Piece::Char(c) => c,
                Piece::Any => '*',
                Piece::One => '?',
            })
            .collect(),
    )
}

/// A variable's value; `${key, 'default'}` gives the default when unset.
fn value(name: &str, context: &Context) -> Option<String> {
    let (key, default) = match name.split_once(',') {
        Some((key, default)) => (key.trim(), Some(default.trim().trim_matches('\'').to_owned())),
        None => (name.trim(), None),
    };
    context.single(key).map(str::to_owned).or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::matches;

    #[test]
    fn variables_are_literal_text() {
        let context = Context::new().with("aws:username", "a*b");
        let pattern = expand("arn:aws:s3:::bucket/${aws:username}/*", &context, true).expect("set");
        assert!(matches(&pattern, "arn:aws:s3:::bucket/a*b/file", false));
        assert!(!matches(&pattern, "arn:aws:s3:::bucket/aXb/file", false), "the name's * is not a wildcard");
    }

    #[test]
    fn unset_variables_match_nothing_unless_defaulted() {
        let context = Context::new();
        assert_eq!(expand("${aws:username}", &context, true), None);
        assert_eq!(expand_text("${aws:username, 'nobody'}", &context, true).as_deref(), Some("nobody"));
        assert_eq!(expand_text("${*}${?}${$}", &context, true).as_deref(), Some("*?$"));
        assert_eq!(expand_text("${aws:username}", &context, false).as_deref(), Some("${aws:username}"));
    }
}
