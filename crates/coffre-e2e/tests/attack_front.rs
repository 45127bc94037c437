//! Attacks on the S3 front's authentication boundary, each against a real
//! `coffre serve` over raw TCP, with requests the SDK would never send:
//!
//! - memory before authentication: a large anonymous (or signed) HTML form
//!   upload, and other bodies, are answered before the body is sent;
//! - one reading of authentication: the audit log's principal is the key
//!   whose signature was verified, never a credential the request merely
//!   names; encoded, duplicated or mis-cased authentication parameters,
//!   mixed mechanisms, odd algorithm tokens and SigV2 are refused;
//! - whole bodies: a signed streaming (aws-chunked) upload cut short stores
//!   nothing;
//! - logging: at `COFFRE_LOG=trace`, no secret, SSE-C key or expected
//!   signature is written, and client errors are not logged as errors.
//!
//! Requests are signed here (SigV4 and SigV2, by hand) so that each attack is
//! *validly signed*: it is refused for what it is, not for a bad signature.
//! Each attack has a control, the same request written plainly, that succeeds.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use coffre_e2e::audit::events;
use coffre_e2e::signed::{
    Answer, EMPTY_SHA256, Key, Signer, aws_encode, canonical_query, parse_answer, presigned, stamp,
};
use coffre_e2e::{ROOT_ACCESS, ROOT_SECRET, Server};
use hmac::{Hmac, KeyInit, Mac as _};
use serde_json::Value;
use sha2::Digest as _;

// --- Signing, by hand -----------------------------------------------------

/// A request head signed in its `Authorization` header for an empty body:
/// `query` (decoded pairs) is part of what is signed and is sent as
/// `sent_query` when given (the same pairs written otherwise), else encoded
/// plainly. Returns the head and the signature.
fn header_signed(
    key: Key<'_>,
    method: &str,
    host: SocketAddr,
    path: &str,
    query: &[(String, String)],
    sent_query: Option<&str>,
) -> (String, String) {
    let (amz_date, date) = stamp();
    let host = host.to_string();
    let canonical = format!(
        "{method}\n{path}\n{}\nhost:{host}\nx-amz-content-sha256:{EMPTY_SHA256}\nx-amz-date:{amz_date}\n\n\
         host;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256}",
        canonical_query(query)
    );
    let signature = key.sign(&amz_date, &canonical);
    let query = sent_query.map_or_else(|| canonical_query(query), str::to_owned);
    let target = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nx-amz-date: {amz_date}\r\nx-amz-content-sha256: {EMPTY_SHA256}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
         Signature={signature}\r\n",
        key.scope(&date)
    );
    (head, signature)
}

fn plain(name: &str) -> String {
    name.to_owned()
}

// --- Raw HTTP -------------------------------------------------------------

/// Sends `bytes` and reads one answer (its `Content-Length` worth of body),
/// or `None` if no complete answer came within `wait`.
fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> (Option<Answer>, TcpStream) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(bytes).expect("send");
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(answer) = parse_answer(&got).map(|(answer, _)| answer) {
            return (Some(answer), stream);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (None, stream);
        }
        stream.set_read_timeout(Some(left)).expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return (parse_answer(&got).map(|(answer, _)| answer), stream),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (parse_answer(&got).map(|(answer, _)| answer), stream),
        }
    }
}

/// A request with an empty body, answered.
fn send(addr: SocketAddr, head: &str) -> Answer {
    let request = format!("{head}Content-Length: 0\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes(), Duration::from_secs(10)).0.unwrap_or_else(|| panic!("no answer to\n{head}"))
}

/// `head` announces a body of `declared` bytes; only `sent` is sent. The
/// answer must come anyway, before the rest: the server did not wait to read
/// a body it had not authenticated.
fn answered_before_body(addr: SocketAddr, head: &str, declared: u64, sent: &[u8]) -> Answer {
    let mut request = format!("{head}Content-Length: {declared}\r\n\r\n").into_bytes();
    request.extend_from_slice(sent);
    let started = Instant::now();
    let (answer, _stream) = exchange(addr, &request, Duration::from_secs(10));
    let answer = answer.unwrap_or_else(|| {
        panic!(
            "no answer within 10 s with {} of {declared} body bytes sent: the server waits for the body\n{head}",
            sent.len()
        )
    });
    assert!(started.elapsed() < Duration::from_secs(5), "answered only after {:?}", started.elapsed());
    answer
}

/// The audit event that records `answer`: its own (a request with a
/// verified principal), or the tally of refused unauthenticated requests of
/// its kind (same status and error code), which carries the request id of
/// the first of its kind only.
fn event_of(all: &[Value], answer: &Answer) -> Value {
    let id = answer
        .head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("x-amz-request-id")))
        .map(|(_, v)| v.trim().to_owned())
        .expect("x-amz-request-id");
    let own: Vec<&Value> = all.iter().filter(|e| e["request_id"] == id.as_str()).collect();
    if let [event] = own.as_slice() {
        return (*event).clone();
    }
    assert!(own.is_empty(), "several events for request {id}: {own:#?}");
    let tally = all.iter().find(|e| {
        e["detail"].as_str().is_some_and(|d| d.starts_with("refused unauthenticated"))
            && e["status"] == answer.status
            && e["error"] == answer.code()
    });
    tally.unwrap_or_else(|| panic!("no event or tally for request {id} ({} {})", answer.status, answer.code())).clone()
}

// --- 1. Memory before authentication -------------------------------------

#[tokio::test]
async fn form_uploads_are_refused_before_their_body_is_read() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut server = Server::start_in(&dir);
    server.client().create_bucket().bucket("forms").send().await.expect("create");
    let host = server.s3;

    // The form's fields, then the start of a file part announced at 4 GiB.
    let boundary = "----coffre-attack";
    let mut body = Vec::new();
    for (name, value) in [
        ("key", "big.bin"),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
        ("x-amz-credential", "e2eroot/20250101/us-east-1/s3/aws4_request"),
        ("x-amz-date", "20250101T000000Z"),
        ("policy", "eyJleHBpcmF0aW9uIjoiMjA5OS0wMS0wMVQwMDowMDowMFoiLCJjb25kaXRpb25zIjpbXX0="),
        ("x-amz-signature", "0000000000000000000000000000000000000000000000000000000000000000"),
    ] {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n")
            .as_bytes(),
    );
    body.extend(std::iter::repeat_n(b'x', 256 * 1024));
    let declared = 4u64 << 30;

    let mut answers = Vec::new();
    for content_type in
        [format!("multipart/form-data; boundary={boundary}"), format!("Multipart/Form-Data ; boundary={boundary}")]
    {
        let head = format!("POST /forms HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n");
        let answer = answered_before_body(host, &head, declared, &body);
        assert_eq!((answer.status, answer.code()), (501, "NotImplemented"), "{}", answer.body);
        assert!(answer.body.contains("multipart/form-data"), "{}", answer.body);
        answers.push(answer);
    }
    // Signed in its header by root: refused the same, unread.
    let (signed, _) = header_signed(Key::new(ROOT_ACCESS, ROOT_SECRET), "POST", host, "/forms", &[], None);
    let head = format!("{signed}Content-Type: multipart/form-data; boundary={boundary}\r\n");
    let answer = answered_before_body(host, &head, declared, &body);
    assert_eq!((answer.status, answer.code()), (501, "NotImplemented"), "{}", answer.body);
    answers.push(answer);
    // And on an object path.
    let head = format!("POST /forms/k HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=b\r\n");
    let answer = answered_before_body(host, &head, declared, b"--b\r\n");
    assert_eq!(answer.status, 501, "{}", answer.body);
    answers.push(answer);

    let listed = server.client().list_objects_v2().bucket("forms").send().await.expect("list");
    assert_eq!(listed.key_count(), Some(0), "nothing stored");
    assert!(server.stop().is_some_and(|s| s.success()), "log:\n{}", server.log());
    let all = events(&dir, &[]);
    for answer in &answers {
        let event = event_of(&all, answer);
        assert_eq!((event["status"].clone(), event["bytes_in"].clone()), (Value::from(501), Value::from(0)), "{event}");
        assert_eq!(event["principal"], Value::Null, "{event}");
    }
    assert_eq!(event_of(&all, &answers[0])["operation"], Value::from("PostObject"));
}

#[tokio::test]
async fn no_body_is_read_before_its_request_is_authenticated() {
    let server = Server::start();
    server.client().create_bucket().bucket("quiet").send().await.expect("create");
    let host = server.s3;
    let forged = Key::new(ROOT_ACCESS, "not-the-root-secret");
    let chunk = vec![b'<'; 64 * 1024];
    let big = 1u64 << 30;

    // Anonymous: an object, an XML body (DeleteObjects, CompleteMultipartUpload).
    for (method, target) in [("PUT", "/quiet/k"), ("POST", "/quiet?delete"), ("POST", "/quiet/k?uploadId=x")] {
        let head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
        let answer = answered_before_body(host, &head, big, &chunk);
        assert_eq!((answer.status, answer.code()), (403, "AccessDenied"), "{method} {target}: {}", answer.body);
    }
    // A forged header signature.
    for (method, path, query) in
        [("PUT", "/quiet/k", vec![]), ("POST", "/quiet", vec![("delete".into(), String::new())])]
    {
        let (head, _) = header_signed(forged, method, host, path, &query, None);
        let answer = answered_before_body(host, &head, big, &chunk);
        assert_eq!((answer.status, answer.code()), (403, "SignatureDoesNotMatch"), "{method} {path}: {}", answer.body);
    }
    // A forged presigned PUT.
    let (target, _) = presigned(forged, "PUT", host, "/quiet/k", 300, &plain);
    let answer = answered_before_body(host, &format!("PUT {target} HTTP/1.1\r\nHost: {host}\r\n"), big, &chunk);
    assert_eq!((answer.status, answer.code()), (403, "SignatureDoesNotMatch"), "{}", answer.body);
    // The `sts` service signs only an STS call (`POST /` with a form body)...
    let sts = Key { service: "sts", ..Key::new(ROOT_ACCESS, ROOT_SECRET) };
    let (head, _) = header_signed(sts, "POST", host, "/", &[], None);
    let head = head.replace(&format!("x-amz-content-sha256: {EMPTY_SHA256}\r\n"), "");
    let answer = answered_before_body(host, &head, 8192, &chunk[..1024]);
    assert_eq!((answer.status, answer.code()), (400, "AuthorizationHeaderMalformed"), "{}", answer.body);
    assert!(answer.body.contains("the service 'sts' is wrong"), "{}", answer.body);
    // ...whose body s3s reads, to hash it, before checking the signature: 8 KiB at most.
    let (head, _) = header_signed(Key { service: "sts", ..forged }, "POST", host, "/", &[], None);
    let head = head.replace(&format!("x-amz-content-sha256: {EMPTY_SHA256}\r\n"), "")
        + "Content-Type: application/x-www-form-urlencoded\r\n";
    let answer = answered_before_body(host, &head, big, &chunk[..16 * 1024]);
    assert_eq!((answer.status, answer.code()), (400, "InvalidRequest"), "{}", answer.body);
    assert!(answer.body.starts_with("<ErrorResponse"), "in the query protocol's form: {}", answer.body);

    let err = server.client().head_object().bucket("quiet").key("k").send().await.expect_err("nothing stored");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
}

// --- 2. One reading of authentication -------------------------------------

#[tokio::test]
async fn the_principal_is_the_key_that_signed_never_one_named_beside_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut server = Server::start_in(&dir);
    let host = server.s3;
    let (a_id, a_secret) = server.create_key("alice");
    let (b_id, _) = server.create_key("bob");
    let alice = Key::new(&a_id, &a_secret);
    server.client_as(&a_id, &a_secret).create_bucket().bucket("alices").send().await.expect("create");
    let (_, date) = stamp();
    let b_scope = Key::new(&b_id, "unknown").scope(&date);

    // Control: alice's own header signature, recorded as alice.
    let (head, _) = header_signed(alice, "GET", host, "/alices", &[], None);
    let control = send(host, &head);
    assert_eq!(control.status, 200, "{}", control.body);

    // Header-signed by alice (the query is covered by her signature), naming bob in the query.
    let query = vec![("X-Amz-Credential".to_owned(), b_scope.clone())];
    let (head, _) = header_signed(alice, "GET", host, "/alices", &query, None);
    let mixed = send(host, &head);
    assert_eq!((mixed.status, mixed.code()), (400, "InvalidArgument"), "{}", mixed.body);
    assert!(mixed.body.contains("Only one auth mechanism allowed"), "{}", mixed.body);

    // The same with bob's whole presigned query beside alice's header.
    let (bob_target, _) = presigned(Key::new(&b_id, "unknown"), "GET", host, "/alices", 300, &plain);
    let (head, _) = header_signed(alice, "GET", host, "/alices", &[], None);
    let head = head.replacen("GET /alices ", &format!("GET {bob_target} "), 1);
    let both = send(host, &head);
    assert_eq!((both.status, both.code()), (400, "InvalidArgument"), "{}", both.body);

    // A lower-case algorithm token: s3s never reads the token and would verify
    // the signature; the token is refused, as is any other.
    let (head, _) = header_signed(alice, "GET", host, "/alices", &[], None);
    let mut lower_cased = Vec::new();
    for token in ["aws4-hmac-sha256", "AWS4-HMAC-SHA512", "AWS4-HMAC-SHA256-X"] {
        let answer = send(host, &head.replace("AWS4-HMAC-SHA256 Credential=", &format!("{token} Credential=")));
        assert_eq!((answer.status, answer.code()), (400, "InvalidArgument"), "{token}: {}", answer.body);
        assert!(answer.body.contains("Unsupported Authorization Type"), "{}", answer.body);
        lower_cased.push(answer);
    }
    // Two Authorization headers.
    let twice = send(host, &format!("{head}Authorization: AWS4-HMAC-SHA256 Credential={b_scope}, x\r\n"));
    assert_eq!((twice.status, twice.code()), (400, "InvalidArgument"), "{}", twice.body);

    // A credential named in the query without a signature: not a claim to record.
    let lone =
        send(host, &format!("GET /alices?X-Amz-Credential={} HTTP/1.1\r\nHost: {host}\r\n", aws_encode(&b_scope)));
    assert_eq!((lone.status, lone.code()), (400, "AuthorizationQueryParametersError"), "{}", lone.body);

    assert!(server.stop().is_some_and(|s| s.success()), "log:\n{}", server.log());
    let all = events(&dir, &[]);
    let recorded = event_of(&all, &control);
    assert_eq!((recorded["principal"].clone(), recorded["claimed"].clone()), (Value::from(a_id.as_str()), Value::Null));
    for refused in [&mixed, &both, &twice, &lone].into_iter().chain(&lower_cased) {
        let event = event_of(&all, refused);
        assert_eq!(event["principal"], Value::Null, "a refused request has no principal: {event}");
    }
    for event in &all {
        assert!(
            event["principal"] != b_id.as_str() && event["claimed"] != b_id.as_str(),
            "bob never signed anything, yet: {event}"
        );
    }
}

#[tokio::test]
async fn presigned_urls_are_read_as_the_verifier_reads_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut server = Server::start_in(&dir);
    let host = server.s3;
    let root = Key::new(ROOT_ACCESS, ROOT_SECRET);
    let c = server.client();
    c.create_bucket().bucket("urls").send().await.expect("create");
    c.put_object().bucket("urls").key("k").body(ByteStream::from_static(b"data")).send().await.expect("put");
    let get = |target: &str| send(host, &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n"));
    let encode_one = |which: &'static str, encoded: &'static str| {
        move |n: &str| if n == which { encoded.to_owned() } else { n.to_owned() }
    };

    // Controls: a plain presigned GET works, and is recorded as root.
    let (target, _) = presigned(root, "GET", host, "/urls/k", 3600, &plain);
    let control = get(&target);
    assert_eq!((control.status, control.body.as_str()), (200, "data"));

    // Ten years, with `X-Amz-Expires` written `X-Amz-Expire%73` (s3s decodes names).
    let ten_years = 10 * 365 * 24 * 3600;
    let (target, _) = presigned(root, "GET", host, "/urls/k", ten_years, &plain);
    let answer = get(&target);
    assert_eq!((answer.status, answer.code()), (400, "AuthorizationQueryParametersError"), "{}", answer.body);
    let (target, _) =
        presigned(root, "GET", host, "/urls/k", ten_years, &encode_one("X-Amz-Expires", "X-Amz-Expire%73"));
    let encoded_expiry = get(&target);
    assert_eq!(
        (encoded_expiry.status, encoded_expiry.code()),
        (400, "AuthorizationQueryParametersError"),
        "{}",
        encoded_expiry.body
    );

    // Another region, with `X-Amz-Credential` written `X-Amz-Credentia%6C`.
    let elsewhere = Key { region: "eu-west-3", ..root };
    let (target, _) = presigned(elsewhere, "GET", host, "/urls/k", 3600, &plain);
    let answer = get(&target);
    assert_eq!((answer.status, answer.code()), (400, "AuthorizationQueryParametersError"), "{}", answer.body);
    assert!(answer.body.contains("the region 'eu-west-3' is wrong"), "{}", answer.body);
    let (target, _) =
        presigned(elsewhere, "GET", host, "/urls/k", 3600, &encode_one("X-Amz-Credential", "X-Amz-Credentia%6C"));
    let encoded_region = get(&target);
    assert_eq!(
        (encoded_region.status, encoded_region.code()),
        (400, "AuthorizationQueryParametersError"),
        "{}",
        encoded_region.body
    );

    // Mis-cased, `+`-free encodings of every other name, and duplicates.
    for (which, written) in [
        ("X-Amz-Signature", "x-amz-signature"),
        ("X-Amz-Algorithm", "X-Amz-Algorith%6D"),
        ("X-Amz-Date", "X%2DAmz%2DDate"),
        ("X-Amz-SignedHeaders", "X-Amz-SignedHeader%73"),
    ] {
        let (target, _) = presigned(root, "GET", host, "/urls/k", 3600, &encode_one(which, written));
        let answer = get(&target);
        assert_eq!(
            (answer.status, answer.code()),
            (400, "AuthorizationQueryParametersError"),
            "{written}: {}",
            answer.body
        );
    }
    let (target, _) = presigned(root, "GET", host, "/urls/k", 3600, &plain);
    let answer = get(&format!("{target}&X-Amz-Expires=3600"));
    assert_eq!((answer.status, answer.code()), (400, "AuthorizationQueryParametersError"), "{}", answer.body);
    let (target, _) = presigned(root, "GET", host, "/urls/k", 3600, &plain);
    let answer = get(&target.replace("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=aws4-hmac-sha256"));
    assert_eq!((answer.status, answer.code()), (400, "AuthorizationQueryParametersError"), "{}", answer.body);

    // SigV2, validly signed by root, with one parameter name encoded.
    let expires = (time::OffsetDateTime::now_utc().unix_timestamp() + 3600).to_string();
    let v2 = sigv2(ROOT_SECRET, &format!("GET\n\n\n{expires}\n/urls/k"));
    for (access, signature) in
        [("AWSAccessKeyId", "Signature"), ("AWSAccessKeyId", "Signatur%65"), ("AWSAccessKeyI%64", "Signature")]
    {
        let answer = get(&format!("/urls/k?{access}={ROOT_ACCESS}&Expires={expires}&{signature}={}", aws_encode(&v2)));
        assert_eq!((answer.status, answer.code()), (400, "InvalidRequest"), "{access} {signature}: {}", answer.body);
        assert!(answer.body.contains("Signature Version 2 is not supported"), "{}", answer.body);
    }

    assert!(server.stop().is_some_and(|s| s.success()), "log:\n{}", server.log());
    let all = events(&dir, &[]);
    let ok = event_of(&all, &control);
    assert_eq!(ok["principal"], Value::from(ROOT_ACCESS), "{ok}");
    for refused in [&encoded_expiry, &encoded_region] {
        let event = event_of(&all, refused);
        assert_eq!(event["principal"], Value::Null, "{event}");
        assert_eq!(event["status"], Value::from(400), "{event}");
    }
}

/// A signed streaming upload (aws-chunked, each chunk signed in a chain)
/// whose body was cut short, by the network or by someone on the path who
/// cannot sign, is refused: nothing stored under the signed name. s3s 0.14
/// alone stored it, cut, even to nothing (found by `fuzz_auth.rs`).
#[tokio::test]
async fn a_signed_streaming_upload_cut_short_stores_nothing() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("streams").send().await.expect("bucket");
    let signer = Signer::new(server.s3, ROOT_ACCESS, ROOT_SECRET);
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    // The head with `Content-Length: length`, or none at all (an empty body).
    let with_length = |head: &str, length: Option<usize>| {
        let kept: Vec<&str> = head.split("\r\n").filter(|l| !l.starts_with("Content-Length:")).collect();
        let length = length.map_or(String::new(), |n| format!("\r\nContent-Length: {n}"));
        kept.join("\r\n").replacen("\r\n\r\n", &format!("{length}\r\n\r\n"), 1)
    };
    let final_chunk = format!("0;chunk-signature={}\r\n\r\n", "0".repeat(64)).len();
    let cuts = [
        ("no body, no length", 0, false),
        ("nothing", 0, true),
        ("no final chunk", usize::MAX, true),
        ("half the first chunk", 4096 + 87, true),
    ];
    for (what, keep, says_length) in cuts {
        let key = format!("/streams/{}", what.replace(' ', "-"));
        let (head, framed) = signer.aws_chunked_put(&key, &payload, 8192);
        let body = &framed[..keep.min(framed.len() - final_chunk)];
        let mut request = with_length(&head, says_length.then_some(body.len())).into_bytes();
        request.extend_from_slice(body);
        let (answer, _) = exchange(server.s3, &request, Duration::from_secs(10));
        let answer = answer.unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!((answer.status, answer.code()), (400, "IncompleteBody"), "{what}: {}", answer.body);
        let stored = c.head_object().bucket("streams").key(&key["/streams/".len()..]).send().await;
        assert!(stored.is_err(), "{what}: a cut upload was stored: {stored:?}");
    }
    // The control: the same upload, whole, is stored whole.
    let (head, framed) = signer.aws_chunked_put("/streams/whole", &payload, 8192);
    let mut request = head.into_bytes();
    request.extend_from_slice(&framed);
    let (answer, _) = exchange(server.s3, &request, Duration::from_secs(10));
    assert_eq!(answer.map(|a| a.status), Some(200));
    let got = c.get_object().bucket("streams").key("whole").send().await.expect("whole");
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), payload.as_slice());
}

/// A SigV2 signature: base64 of HMAC-SHA1.
fn sigv2(secret: &str, string_to_sign: &str) -> String {
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(string_to_sign.as_bytes());
    base64_encode(&mac.finalize().into_bytes())
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// --- 3. Logging -----------------------------------------------------------

/// The server's log without ANSI colour codes.
fn plain_log(server: &Server) -> String {
    let raw = server.log();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn no_secret_reaches_the_log_even_at_trace_level() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server =
        Server::start_with(&tmp.path().join("data"), &[("COFFRE_LOG", "trace"), ("COFFRE_SSE_C_OVER_HTTP", "true")]);
    let host = server.s3;
    let (a_id, a_secret) = server.create_key("alice");
    let c = server.client();
    c.create_bucket().bucket("logs").send().await.expect("create");

    // SSE-C, both ways.
    let customer_key = base64_encode(&[0x5a; 32]);
    let key_md5 = base64_encode(&md5::Md5::digest([0x5a; 32]));
    c.put_object()
        .bucket("logs")
        .key("sealed")
        .body(ByteStream::from_static(b"sealed data"))
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&customer_key)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await
        .expect("SSE-C put");
    let got = c
        .get_object()
        .bucket("logs")
        .key("sealed")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&customer_key)
        .sse_customer_key_md5(&key_md5)
        .send()
        .await
        .expect("SSE-C get");
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), b"sealed data");

    // Forged signatures: the server computes the right one, which must not be logged.
    let alice = Key::new(&a_id, &a_secret);
    let (head, expected_header_sig) = header_signed(alice, "GET", host, "/logs", &[], None);
    let forged = send(host, &head.replace(&expected_header_sig, &"0".repeat(64)));
    assert_eq!((forged.status, forged.code()), (403, "SignatureDoesNotMatch"), "{}", forged.body);
    let (target, expected_query_sig) = presigned(alice, "GET", host, "/logs/sealed", 300, &plain);
    let forged = send(
        host,
        &format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", target.replace(&expected_query_sig, &"1".repeat(64))),
    );
    assert_eq!((forged.status, forged.code()), (403, "SignatureDoesNotMatch"), "{}", forged.body);
    // A wrong secret through the SDK, and other client errors.
    let wrong = server.client_as(&a_id, "alice-wrong-secret-zzzz");
    assert!(wrong.list_buckets().send().await.is_err());
    assert!(c.get_object().bucket("logs").key("missing").send().await.is_err());
    assert!(server.client_as(&a_id, &a_secret).get_object().bucket("logs").key("sealed").send().await.is_err());
    // A connection that does not speak HTTP ends in an error logged at debug:
    // it shows the trace level is on, so the checks below are not vacuous.
    let _ = exchange(host, b"NOT HTTP AT ALL\r\n\r\n", Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = plain_log(&server);
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "the server did log at trace level:\n{log}");
    assert!(log.contains("status=403") && log.contains("SignatureDoesNotMatch"), "forged requests are logged:\n{log}");
    for (what, secret) in [
        ("root's secret", ROOT_SECRET),
        ("alice's secret", a_secret.as_str()),
        ("the wrong secret", "alice-wrong-secret-zzzz"),
        ("the SSE-C key", customer_key.as_str()),
        ("the SSE-C key, URL-encoded", &aws_encode(&customer_key)),
        ("the expected header signature", expected_header_sig.as_str()),
        ("the expected presigned signature", expected_query_sig.as_str()),
    ] {
        let line = log.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "{what} is in the log: {}", line.unwrap_or_default());
    }
    for line in log.lines().filter(|l| l.contains(" ERROR ")) {
        for client_error in ["403", "404", "400", "SignatureDoesNotMatch", "AccessDenied", "NoSuchKey"] {
            assert!(!line.contains(client_error), "a client error logged as an error: {line}");
        }
    }
}
