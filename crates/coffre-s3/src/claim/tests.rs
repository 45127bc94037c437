//! The claim reader against a corpus of hostile requests
//! (`tests/corpus/auth-queries.txt`) and against a model of how s3s 0.14
//! reads the same request: whatever [`read`] accepts, s3s authenticates the
//! same way, with the same credential scope and lifetime.

use proptest::prelude::*;

use super::*;

const REGION: &str = "us-east-1";

fn date() -> String {
    let f = time::macros::format_description!("[year][month][day]");
    time::OffsetDateTime::now_utc().format(&f).expect("format")
}

fn request(query: &str, authorization: &[&str]) -> (Uri, HeaderMap) {
    let uri: Uri = if query.is_empty() { "/b/k".parse() } else { format!("/b/k?{query}").parse() }.expect("uri");
    let mut headers = HeaderMap::new();
    for a in authorization {
        headers.append(http::header::AUTHORIZATION, http::HeaderValue::from_str(a).expect("header"));
    }
    (uri, headers)
}

fn code(query: &str, authorization: &[&str]) -> Result<AuthMethod, &'static str> {
    let (uri, headers) = request(query, authorization);
    read(&uri, &headers, REGION, "s3").map(|c| c.method).map_err(|r| r.code)
}

#[test]
fn the_corpus_is_read_as_written() {
    let corpus = include_str!("../../tests/corpus/auth-queries.txt").replace("DATE", &date());
    let mut cases = 0;
    for line in corpus.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut fields = line.splitn(3, '\t');
        let (verdict, query) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        let header: Vec<&str> = fields.next().filter(|h| !h.is_empty()).into_iter().collect();
        let got = code(query, &header);
        let want = match verdict.split_once(' ') {
            Some(("refuse", c)) => Err(c),
            Some(("accept", m)) => Ok(m),
            _ => panic!("bad corpus line {line:?}"),
        };
        assert_eq!(got.map(AuthMethod::as_str), want, "{line}");
        cases += 1;
    }
    assert!(cases > 20);
}

#[test]
fn a_header_claim_names_its_scope_and_a_refusal_its_key_only_when_clear() {
    let d = date();
    let header =
        format!("AWS4-HMAC-SHA256 Credential=AK/{d}/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0");
    let (uri, headers) = request("", &[&header]);
    let claim = read(&uri, &headers, REGION, "s3").expect("a plain header");
    assert_eq!(claim.method, AuthMethod::Header);
    assert_eq!(claim.access_key(), Some("AK"));

    let wrong = header.replace("us-east-1", "eu-west-3");
    let (uri, headers) = request("", &[&wrong]);
    let refusal = read(&uri, &headers, REGION, "s3").expect_err("another region");
    assert_eq!(refusal.claimed.as_deref(), Some("AK"), "a region refusal names the key, unverified");
    assert!(refusal.message.contains("the region 'eu-west-3' is wrong; expecting 'us-east-1'"), "{refusal:?}");

    let mixed = format!("X-Amz-Credential=BK%2F{d}%2Fus-east-1%2Fs3%2Faws4_request");
    let (uri, headers) = request(&mixed, &[&header]);
    let refusal = read(&uri, &headers, REGION, "s3").expect_err("two mechanisms");
    assert_eq!(refusal.claimed, None, "an ambiguous request names no one");

    assert_eq!(code("", &[&header, &header]), Err("InvalidArgument"), "two headers");
    assert_eq!(code("", &[]), Ok(AuthMethod::Anonymous));
}

#[test]
fn form_uploads_are_recognised_in_any_case_and_spacing() {
    let post = |ct: &[&str], method: Method| {
        let mut headers = HeaderMap::new();
        for c in ct {
            headers.append(http::header::CONTENT_TYPE, http::HeaderValue::from_str(c).expect("header"));
        }
        is_form_upload(&method, &headers)
    };
    assert!(post(&["multipart/form-data; boundary=x"], Method::POST));
    assert!(post(&["Multipart/Form-Data;boundary=x"], Method::POST));
    assert!(post(&["multipart / form-data ; boundary=x"], Method::POST));
    assert!(post(&["text/plain", "multipart/form-data; boundary=x"], Method::POST), "any of two headers");
    assert!(!post(&["multipart/form-data; boundary=x"], Method::PUT), "a PUT stores the type, it is no form");
    assert!(!post(&["application/xml"], Method::POST));
    assert!(!post(&[], Method::POST));
}

// --- Against a model of s3s 0.14 -------------------------------------------

/// How s3s 0.14 authenticates a request, from `SignatureContext::check`:
/// SigV2 first (`Signature` in the decoded query), then a presigned URL
/// (`X-Amz-Signature`), then the `Authorization` header (its unique value).
#[derive(Debug, PartialEq)]
enum S3sView {
    SigV2,
    Presigned { algorithm: Option<String>, credential: Option<String>, expires: Option<String> },
    Header,
    Anonymous,
}

fn s3s_view(query: &str, headers: &HeaderMap) -> S3sView {
    let qs: Vec<(String, String)> = serde_urlencoded::from_str(query).expect("s3s would answer InvalidURI");
    let has = |n: &str| qs.iter().any(|(k, _)| k == n);
    let unique = |n: &str| {
        let mut values = qs.iter().filter(|(k, _)| k == n).map(|(_, v)| v.clone());
        let first = values.next();
        if values.next().is_some() { None } else { first }
    };
    if has("Signature") {
        S3sView::SigV2
    } else if has("X-Amz-Signature") {
        S3sView::Presigned {
            algorithm: unique("X-Amz-Algorithm"),
            credential: unique("X-Amz-Credential"),
            expires: unique("X-Amz-Expires"),
        }
    } else if headers.get_all(http::header::AUTHORIZATION).iter().count() == 1 {
        S3sView::Header
    } else {
        S3sView::Anonymous
    }
}

/// A query parameter name as a client might write it: plain, in another
/// case, or with some characters percent-encoded.
fn spelled(name: &'static str) -> impl Strategy<Value = String> {
    let mutated = prop::collection::vec(0u8..10, name.len()).prop_map(move |v| {
        name.chars()
            .zip(v)
            .map(|(c, how)| match how {
                0 => format!("%{:02X}", c as u32),
                1 => format!("%{:02x}", c as u32),
                2 if c.is_ascii_alphabetic() => {
                    if c.is_ascii_uppercase() { c.to_ascii_lowercase() } else { c.to_ascii_uppercase() }.to_string()
                }
                _ => c.to_string(),
            })
            .collect()
    });
    prop_oneof![3 => Just(name.to_owned()), 2 => mutated]
}

fn value() -> impl Strategy<Value = String> {
    let d = date();
    prop_oneof![
        Just("AWS4-HMAC-SHA256".to_owned()),
        Just("aws4-hmac-sha256".to_owned()),
        Just(format!("AK%2F{d}%2Fus-east-1%2Fs3%2Faws4_request")),
        Just(format!("AK/{d}/us-east-1/s3/aws4_request")),
        Just(format!("AK%2F{d}%2Feu-west-3%2Fs3%2Faws4_request")),
        Just(format!("AK%2F{d}%2Fus-east-1%2Fsts%2Faws4_request")),
        Just("3600".to_owned()),
        Just("604800".to_owned()),
        Just("604801".to_owned()),
        Just("315360000".to_owned()),
        Just("%2B5".to_owned()),
        Just("host".to_owned()),
        "[0-9a-f]{0,8}",
        "[ -~]{0,6}".prop_map(|s| urlencoding::encode(&s).into_owned()),
    ]
}

fn param() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        4 => prop::sample::select(AUTH_PARAMS.to_vec()).prop_flat_map(spelled),
        1 => prop::sample::select(vec!["versionId", "prefix", "list-type", "Expires", "X-Amz-Meta"]).prop_map(str::to_owned),
    ];
    (name, value(), any::<bool>()).prop_map(|(n, v, bare)| if bare && v.is_empty() { n } else { format!("{n}={v}") })
}

/// A presigned URL's six parameters, well formed, then more parameters.
fn query() -> impl Strategy<Value = String> {
    let d = date();
    let base = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F{d}%2Fus-east-1%2Fs3%2Faws4_request&\
         X-Amz-Date={d}T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=00"
    );
    let extra = prop::collection::vec((param(), any::<prop::sample::Index>()), 0..8);
    (any::<bool>(), extra).prop_map(move |(presigned, extra)| {
        let mut parts: Vec<String> = if presigned { base.split('&').map(str::to_owned).collect() } else { vec![] };
        for (p, at) in extra {
            parts.insert(at.index(parts.len() + 1), p);
        }
        parts.join("&")
    })
}

fn authorization() -> impl Strategy<Value = Vec<String>> {
    let d = date();
    let good = format!("AWS4-HMAC-SHA256 Credential=AK/{d}/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0");
    prop_oneof![
        3 => Just(vec![]),
        2 => Just(vec![good.clone()]),
        1 => Just(vec![good.replace("AWS4-HMAC-SHA256", "aws4-hmac-sha256")]),
        1 => Just(vec![good.replace("us-east-1", "eu-west-3")]),
        1 => Just(vec!["AWS AK:c2ln".to_owned()]),
        1 => Just(vec![good.clone(), good]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Whatever the claim reader accepts, s3s authenticates the same way:
    /// never by SigV2, by the same mechanism, and for a presigned URL with
    /// the algorithm, credential scope and lifetime the guards checked.
    #[test]
    fn what_is_accepted_is_what_s3s_verifies(query in query(), auth in authorization()) {
        let auth: Vec<&str> = auth.iter().map(String::as_str).collect();
        let (uri, headers) = request(&query, &auth);
        let Ok(claim) = read(&uri, &headers, REGION, "s3") else { return Ok(()) };
        let view = s3s_view(&query, &headers);
        match claim.method {
            AuthMethod::Anonymous => {
                prop_assert_eq!(view, S3sView::Anonymous);
                let names: Vec<String> = params(&query).unwrap().into_iter().map(|p| p.name).collect();
                prop_assert!(!names.iter().any(|n| PRESIGN_PARAMS.contains(&n.as_str())), "{:?}", names);
            }
            AuthMethod::Header => prop_assert_eq!(view, S3sView::Header),
            AuthMethod::Presigned => {
                let S3sView::Presigned { algorithm, credential, expires } = view else {
                    return Err(TestCaseError::fail(format!("s3s reads {query:?} as {view:?}")));
                };
                prop_assert_eq!(algorithm.as_deref(), Some(ALGORITHM));
                let scope = credential.as_deref().and_then(parse_scope);
                prop_assert_eq!(scope.as_ref(), claim.scope.as_ref());
                prop_assert_eq!(scope.map(|s| (s.region, s.service)), Some((REGION.to_owned(), "s3".to_owned())));
                let secs = expires.and_then(|e| e.parse::<u64>().ok());
                prop_assert!(secs.is_some_and(|s| s <= MAX_PRESIGN_SECS), "expires {:?}", secs);
                prop_assert_eq!(secs, claim.expires);
            }
        }
    }

    /// A header written with any access key and any spacing s3s allows
    /// yields that key; any algorithm token but the exact one is refused.
    #[test]
    fn a_header_yields_its_key_and_only_the_exact_algorithm(
        key in "[A-Za-z0-9+=,. _-]{0,24}",
        gaps in prop::collection::vec("[ \t\r\n]{0,3}", 3),
        token in "AWS4-HMAC-SHA256|[Aa][Ww][Ss]4-[Hh][Mm][Aa][Cc]-[Ss][Hh][Aa]256|AWS4-HMAC-SHA(1|512)|AWS4-ECDSA-P256-SHA256",
    ) {
        let d = date();
        let lead = if gaps[0].is_empty() { " ".to_owned() } else { gaps[0].clone() };
        let text = format!("{token}{lead}Credential={key}/{d}/us-east-1/s3/aws4_request,{}SignedHeaders=host,{}Signature=0", gaps[1], gaps[2]);
        let Ok(value) = http::HeaderValue::from_str(&text) else { return Ok(()) };
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value);
        let got = read(&"/b".parse().unwrap(), &headers, REGION, "s3");
        if token == ALGORITHM {
            let claim = got.map_err(|r| TestCaseError::fail(format!("{text:?} refused: {r:?}")))?;
            prop_assert_eq!(claim.access_key(), Some(key.as_str()));
        } else {
            prop_assert_eq!(got.map_err(|r| r.code), Err("InvalidArgument"));
        }
    }

    /// No input makes the reader panic.
    #[test]
    fn any_query_and_header_is_answered(query in "[ -~]{0,80}", header in "[ -~]{0,80}") {
        let Ok(uri) = format!("/b?{query}").parse::<Uri>() else { return Ok(()) };
        let mut headers = HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&header) {
            headers.insert(http::header::AUTHORIZATION, v);
        }
        let _ = read(&uri, &headers, REGION, "s3");
    }
}
