//! Wildcard patterns as policies use them: `*` matches any run of characters
//! (including none), `?` exactly one; everything else is literal.

/// One element of a compiled pattern. Text that came from a policy variable
/// is made of `Char`s only, so a `*` in a user name never acts as a wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
    Char(char),
    Any,
    One,
}

/// Compiles a pattern with no variables.
pub(crate) fn pieces(pattern: &str) -> Vec<Piece> {
    pattern.chars().map(piece).collect()
}

pub(crate) fn piece(c: char) -> Piece {
    match c {
        '*' => Piece::Any,
        '?' => Piece::One,
        c => Piece::Char(c),
    }
}

/// Whether `text` matches the wildcard `pattern`.
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    matches(&pieces(pattern), text, ignore_case)
}

/// Greedy matching with one backtrack point (the last `*`), which is exact
/// for `*`/`?` patterns and linear in practice.
pub(crate) fn matches(pattern: &[Piece], text: &str, ignore_case: bool) -> bool {
    let text: Vec<char> = text.chars().collect();
    let same = |p: char, t: char| p == t || (ignore_case && p.to_lowercase().eq(t.to_lowercase()));
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Piece::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Piece::One) => (p, t) = (p + 1, t + 1),
            Some(Piece::Char(c)) if same(*c, text[t]) => (p, t) = (p + 1, t + 1),
            _ => match star {
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    (p, t) = (sp + 1, st + 1);
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|piece| *piece == Piece::Any)
}

#[cfg(test)]
mod tests {
    use super::wildcard_match as m;

    #[test]
    fn stars_and_question_marks() {
        assert!(m("s3:Get*", "s3:GetObject", false));
        assert!(m("*", "", false));
        assert!(m("a*b*c", "aXXbYYc", false));
        assert!(!m("a*b*c", "aXXbYY", false));
        assert!(m("arn:aws:s3:::b/?", "arn:aws:s3:::b/x", false));
        assert!(!m("arn:aws:s3:::b/?", "arn:aws:s3:::b/xy", false));
        assert!(m("*a", "aaa", false));
        assert!(!m("S3:getobject", "s3:GetObject", false));
        assert!(m("S3:getobject", "s3:GetObject", true));
    }
}
