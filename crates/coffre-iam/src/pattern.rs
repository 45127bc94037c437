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
    if pattern.is_ascii() {
        let bytes = pattern.as_bytes();
        return matching(|i| bytes.get(i).map(|b| piece(char::from(*b))), text, ignore_case);
    }
    matches(&pieces(pattern), text, ignore_case)
}

/// [`wildcard_match`] on a compiled pattern (text from variables is literal).
pub(crate) fn matches(pattern: &[Piece], text: &str, ignore_case: bool) -> bool {
    matching(|i| pattern.get(i).copied(), text, ignore_case)
}

/// Greedy matching with one backtrack point (the last `*`), which is exact
/// for `*`/`?` patterns and linear in practice. `piece_at(i)` is the
/// pattern's i-th piece; the text is walked by byte offsets, nothing copied.
fn matching(piece_at: impl Fn(usize) -> Option<Piece>, text: &str, ignore_case: bool) -> bool {
    let same = |p: char, t: char| p == t || (ignore_case && p.to_lowercase().eq(t.to_lowercase()));
    let next = |at: usize| text.get(at..).and_then(|rest| rest.chars().next());
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(c) = next(t) {
        match piece_at(p) {
            Some(Piece::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Piece::One) => (p, t) = (p + 1, t + c.len_utf8()),
            Some(Piece::Char(pc)) if same(pc, c) => (p, t) = (p + 1, t + c.len_utf8()),
            _ => match star {
                Some((sp, st)) => {
                    let skipped = next(st).map_or(1, char::len_utf8);
                    star = Some((sp, st + skipped));
                    (p, t) = (sp + 1, st + skipped);
                }
                None => return false,
            },
        }
    }
    (p..).map_while(&piece_at).all(|piece| piece == Piece::Any)
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
        assert!(m("é*", "éèà", false));
        assert!(m("*à", "éèà", false));
        assert!(!m("?", "éè", false));
    }

    /// The reference: every way of matching, tried by recursion.
    fn reference(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && reference(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn matching_agrees_with_the_reference(pattern in "[ab*?é]{0,8}", text in "[abé]{0,10}") {
            let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
            proptest::prop_assert_eq!(m(&pattern, &text, false), reference(&p, &t));
            proptest::prop_assert_eq!(super::matches(&super::pieces(&pattern), &text, false), reference(&p, &t));
        }
    }
}
