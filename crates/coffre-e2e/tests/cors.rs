//! CORS against a real `coffre serve`: bucket rules set with the SDK (bad ones
//! refused, the old ones kept), preflights answered unauthenticated from the
//! rules, `Access-Control-*` headers on actual requests, no Origin reflected
//! that no rule allows, and a headless Chromium page on another origin
//! uploading with presigned multipart (the browser enforces what we answer).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use coffre_e2e::objects::{get, put};
use coffre_e2e::signed::{Answer, Key, RawConn, presigned, presigned_with};
use coffre_e2e::{ROOT_ACCESS, ROOT_SECRET, Server, error_code};
use serde_json::Value;

const APP: &str = "https://app.example.fr";

fn rule(methods: &[&str], origins: &[&str]) -> aws_sdk_s3::types::builders::CorsRuleBuilder {
    let list = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
    CorsRule::builder().set_allowed_methods(list(methods)).set_allowed_origins(list(origins))
}

fn config(rules: Vec<aws_sdk_s3::types::builders::CorsRuleBuilder>) -> CorsConfiguration {
    let rules = rules.into_iter().map(|r| r.build().expect("rule")).collect();
    CorsConfiguration::builder().set_cors_rules(Some(rules)).build().expect("config")
}

/// The rules most tests use: the app may GET and PUT with two kinds of
/// headers and read ETag; any partner subdomain may GET; anyone may HEAD.
fn app_rules() -> CorsConfiguration {
    config(vec![
        rule(&["GET", "PUT"], &[APP])
            .id("app")
            .allowed_headers("Content-Type")
            .allowed_headers("x-amz-meta-*")
            .expose_headers("ETag")
            .expose_headers("x-amz-version-id")
            .max_age_seconds(600),
        rule(&["GET"], &["https://*.partner.example"]),
        rule(&["HEAD"], &["*"]),
    ])
}

async fn put_cors(c: &Client, bucket: &str, config: CorsConfiguration) {
    c.put_bucket_cors().bucket(bucket).cors_configuration(config).send().await.expect("put cors");
}

/// One raw request (no SDK: browsers' requests are what is tested), its answer.
async fn send(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut conn = RawConn::open(addr).await.expect("connect");
    conn.send(&[head.as_bytes(), body].concat()).await.expect("send");
    if method == "HEAD" {
        return head_answer(&mut conn).await;
    }
    conn.answer(Duration::from_secs(10)).await.expect("an answer")
}

/// The answer to a HEAD: its head only, whatever Content-Length says.
async fn head_answer(conn: &mut RawConn) -> Answer {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.stream.read(&mut buf)).await;
        match n {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => panic!("no answer to HEAD"),
        }
    }
    let head = String::from_utf8_lossy(&got).trim_end().to_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    Answer { status, head, body: String::new() }
}

async fn preflight(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Answer {
    send(addr, "OPTIONS", target, headers, b"").await
}

/// A response header's value (the first of that name).
fn header(a: &Answer, name: &str) -> Option<String> {
    a.head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// Every `Access-Control-*` header of an answer.
fn access_control(a: &Answer) -> Vec<String> {
    a.head.lines().filter(|l| l.to_ascii_lowercase().starts_with("access-control-")).map(str::to_owned).collect()
}

fn root_key() -> Key<'static> {
    Key::new(ROOT_ACCESS, ROOT_SECRET)
}

fn plain(n: &str) -> String {
    n.to_owned()
}

#[tokio::test]
async fn cors_configuration_round_trips_and_bad_ones_keep_the_old() {
    let mut server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("web").send().await.expect("create");
    assert_eq!(error_code(c.get_bucket_cors().bucket("web").send().await), ("NoSuchCORSConfiguration".into(), 404));

    put_cors(&c, "web", app_rules()).await;
    let got = c.get_bucket_cors().bucket("web").send().await.expect("get cors");
    let rules = got.cors_rules();
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0].id(), Some("app"));
    assert_eq!(rules[0].allowed_methods(), ["GET", "PUT"]);
    assert_eq!(rules[0].allowed_origins(), [APP]);
    assert_eq!(rules[0].allowed_headers(), ["Content-Type", "x-amz-meta-*"]);
    assert_eq!(rules[0].expose_headers(), ["ETag", "x-amz-version-id"]);
    assert_eq!(rules[0].max_age_seconds(), Some(600));
    assert_eq!(rules[1].allowed_origins(), ["https://*.partner.example"]);
    assert!(rules[1].allowed_headers().is_empty() && rules[1].max_age_seconds().is_none());

    let refused = [
        (config(vec![rule(&["PATCH"], &[APP])]), "InvalidRequest", "Unsupported method is PATCH"),
        (config(vec![rule(&["get"], &[APP])]), "InvalidRequest", "Unsupported method is get"),
        (config(vec![rule(&["GET"], &["https://*.*.example"])]), "InvalidRequest", "more than one wildcard"),
        (config(vec![rule(&["GET"], &[APP]).allowed_headers("x-*-*")]), "InvalidRequest", "more than one wildcard"),
        (config(vec![rule(&["GET"], &[APP]).expose_headers("*")]), "InvalidRequest", "wildcard for ExposeHeader"),
        (config(vec![rule(&["GET"], &[APP]).max_age_seconds(-1)]), "InvalidRequest", "MaxAgeSeconds"),
        (config(vec![rule(&["GET"], &[APP]).id("i".repeat(256))]), "InvalidRequest", "255"),
        (config((0..101).map(|_| rule(&["GET"], &[APP])).collect()), "InvalidRequest", "limit of 100"),
        (config(vec![rule(&["GET"], &[])]), "MalformedXML", ""),
        (config(vec![rule(&[], &[APP])]), "MalformedXML", ""),
        (config(vec![]), "MalformedXML", ""),
    ];
    for (bad, code, message) in refused {
        let err = c.put_bucket_cors().bucket("web").cors_configuration(bad).send().await.expect_err("refused");
        let meta = aws_sdk_s3::error::ProvideErrorMetadata::meta(&err);
        assert_eq!(meta.code(), Some(code), "{err:?}");
        assert!(meta.message().unwrap_or("").contains(message), "{:?} lacks {message:?}", meta.message());
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
        let kept = c.get_bucket_cors().bucket("web").send().await.expect("still there");
        assert_eq!(kept.cors_rules(), rules, "a refused configuration changes nothing");
    }
    put_cors(&c, "web", config((0..100).map(|_| rule(&["GET"], &[APP])).collect())).await;
    assert_eq!(c.get_bucket_cors().bucket("web").send().await.expect("get").cors_rules().len(), 100);

    // Owner-only, as every bucket configuration.
    let (alice_id, alice_secret) = server.create_key("alice");
    let alice = server.client_as(&alice_id, &alice_secret);
    let theirs = alice.put_bucket_cors().bucket("web").cors_configuration(app_rules()).send().await;
    assert_eq!(error_code(theirs), ("AccessDenied".into(), 403));
    assert_eq!(error_code(alice.get_bucket_cors().bucket("web").send().await), ("AccessDenied".into(), 403));
    assert_eq!(error_code(alice.delete_bucket_cors().bucket("web").send().await), ("AccessDenied".into(), 403));
    assert_eq!(c.get_bucket_cors().bucket("web").send().await.expect("get").cors_rules().len(), 100);

    c.delete_bucket_cors().bucket("web").send().await.expect("delete cors");
    assert_eq!(error_code(c.get_bucket_cors().bucket("web").send().await), ("NoSuchCORSConfiguration".into(), 404));
    assert_eq!(error_code(c.get_bucket_cors().bucket("nowhere").send().await), ("NoSuchBucket".into(), 404));

    // Each change is in the audit trail like every bucket configuration's.
    server.stop();
    let changes: Vec<Value> = coffre_e2e::audit::events(&server.data_dir, &["--operation", "change:PutBucketConfig"])
        .into_iter()
        .filter(|e| e["detail"] == "kind=cors")
        .collect();
    assert_eq!(changes.len(), 3, "two puts and a delete: {changes:#?}");
}

#[tokio::test]
async fn preflights_are_answered_from_the_rules_without_authentication() {
    let mut server = Server::start();
    let c = server.client();
    let s3 = server.s3;
    c.create_bucket().bucket("web").send().await.expect("create");
    c.create_bucket().bucket("closed").send().await.expect("create");

    // Before any rule: refused, as for a bucket that does not exist.
    let none = preflight(s3, "/web/k", &[("Origin", APP), ("Access-Control-Request-Method", "GET")]).await;
    assert_eq!((none.status, none.code()), (403, "AccessForbidden"), "{none:?}");
    assert!(none.body.contains("CORS is not enabled"), "{}", none.body);
    put_cors(&c, "web", app_rules()).await;

    let ok = preflight(
        s3,
        "/web/some/key.bin",
        &[
            ("Origin", APP),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "Content-Type, X-Amz-Meta-Owner"),
        ],
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(header(&ok, "access-control-allow-origin").as_deref(), Some(APP));
    assert_eq!(header(&ok, "access-control-allow-methods").as_deref(), Some("GET, PUT"));
    assert_eq!(header(&ok, "access-control-allow-headers").as_deref(), Some("content-type, x-amz-meta-owner"));
    assert_eq!(header(&ok, "access-control-expose-headers").as_deref(), Some("ETag, x-amz-version-id"));
    assert_eq!(header(&ok, "access-control-max-age").as_deref(), Some("600"));
    let vary = header(&ok, "vary").unwrap_or_default();
    for v in ["Origin", "Access-Control-Request-Headers", "Access-Control-Request-Method"] {
        assert!(vary.contains(v), "Vary {vary:?} lacks {v}");
    }

    // The bucket path, and a presigned URL's (a browser sends the query but no signature header).
    let (target, _) = presigned(root_key(), "GET", s3, "/web/k", 300, &plain);
    for path in ["/web", "/web/", target.as_str()] {
        let a = preflight(s3, path, &[("Origin", APP), ("Access-Control-Request-Method", "GET")]).await;
        assert_eq!((a.status, header(&a, "access-control-allow-origin").as_deref()), (200, Some(APP)), "{path}");
    }

    // One wildcard in an origin; `*` alone answers `*`.
    let partner = "https://shop.partner.example";
    let a = preflight(s3, "/web/k", &[("Origin", partner), ("Access-Control-Request-Method", "GET")]).await;
    assert_eq!((a.status, header(&a, "access-control-allow-origin")), (200, Some(partner.to_owned())));
    assert_eq!(header(&a, "access-control-allow-methods").as_deref(), Some("GET"));
    assert_eq!(header(&a, "access-control-max-age"), None);
    let a = preflight(s3, "/web/k", &[("Origin", "https://anyone.example"), ("Access-Control-Request-Method", "HEAD")])
        .await;
    assert_eq!((a.status, header(&a, "access-control-allow-origin").as_deref()), (200, Some("*")));

    // Refusals: a header, a method or an origin no rule allows, all 403 with nothing granted.
    let denied: [&[(&str, &str)]; 5] = [
        &[
            ("Origin", APP),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
        &[("Origin", APP), ("Access-Control-Request-Method", "DELETE")],
        &[("Origin", APP), ("Access-Control-Request-Method", "PATCH")],
        &[("Origin", partner), ("Access-Control-Request-Method", "PUT")],
        &[("Origin", "https://partner.example"), ("Access-Control-Request-Method", "GET")],
    ];
    for headers in denied {
        let a = preflight(s3, "/web/k", headers).await;
        assert_eq!((a.status, a.code()), (403, "AccessForbidden"), "{headers:?}: {a:?}");
        assert!(access_control(&a).is_empty(), "{headers:?}: {a:?}");
    }
    // Not a CORS request: 400, as S3 answers.
    let a = preflight(s3, "/web/k", &[("Access-Control-Request-Method", "GET")]).await;
    assert_eq!((a.status, a.code()), (400, "BadRequest"));
    assert!(a.body.contains("Origin request header needed"), "{}", a.body);
    let a = preflight(s3, "/web/k", &[("Origin", APP)]).await;
    assert_eq!((a.status, a.code()), (400, "BadRequest"));
    assert!(a.body.contains("Access-Control-Request-Method"), "{}", a.body);
    // A bucket without rules and a bucket that does not exist answer alike.
    for path in ["/closed/k", "/nowhere/k"] {
        let a = preflight(s3, path, &[("Origin", APP), ("Access-Control-Request-Method", "GET")]).await;
        assert_eq!((a.status, a.code()), (403, "AccessForbidden"), "{path}");
        assert!(a.body.contains("CORS is not enabled"), "{path}: {}", a.body);
    }

    // A stranger's allowed preflights, flooded, are tallied like refusals.
    for _ in 0..50 {
        let a = preflight(s3, "/web/k", &[("Origin", APP), ("Access-Control-Request-Method", "GET")]).await;
        assert_eq!(a.status, 200);
    }

    // Every preflight is in the audit trail, counted in the tallies the trail
    // keeps of unsigned requests (none is signed): 56 allowed in a few events.
    server.stop();
    let events = coffre_e2e::audit::events(&server.data_dir, &["--operation", "CorsPreflight"]);
    let tallied = |e: &Value| -> u64 {
        let detail = e["detail"].as_str().unwrap_or("");
        detail.split(' ').find_map(|w| w.strip_prefix("count=")).map_or(1, |n| n.parse().expect("count"))
    };
    let count = |status: u64| -> u64 { events.iter().filter(|e| e["status"] == status).map(tallied).sum() };
    assert_eq!((count(200), count(403), count(400)), (56, 8, 2), "{events:#?}");
    assert!(events.iter().all(|e| e["principal"].is_null()), "{events:#?}");
    let allowed = events.iter().filter(|e| e["status"] == 200).count();
    assert!(allowed <= 4, "{allowed} events for 56 allowed preflights: not tallied");
}

#[tokio::test]
async fn actual_requests_carry_the_headers_of_the_rule_they_match() {
    let server = Server::start();
    let c = server.client();
    let s3 = server.s3;
    c.create_bucket().bucket("web").send().await.expect("create");
    put(&c, "web", "k", b"hello").await;
    let (get_url, _) = presigned(root_key(), "GET", s3, "/web/k", 300, &plain);

    // No rules yet: nothing added, whatever the Origin.
    let a = send(s3, "GET", &get_url, &[("Origin", APP)], b"").await;
    assert_eq!((a.status, access_control(&a)), (200, vec![]));
    put_cors(&c, "web", app_rules()).await;

    let a = send(s3, "GET", &get_url, &[("Origin", APP)], b"").await;
    assert_eq!((a.status, a.body.as_str()), (200, "hello"));
    assert_eq!(header(&a, "access-control-allow-origin").as_deref(), Some(APP));
    assert_eq!(header(&a, "access-control-allow-methods").as_deref(), Some("GET, PUT"));
    assert_eq!(header(&a, "access-control-expose-headers").as_deref(), Some("ETag, x-amz-version-id"));
    assert!(header(&a, "vary").is_some_and(|v| v.contains("Origin")), "{a:?}");

    let (put_url, _) = presigned(root_key(), "PUT", s3, "/web/from-app", 300, &plain);
    let a = send(s3, "PUT", &put_url, &[("Origin", APP)], b"uploaded").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(header(&a, "access-control-allow-origin").as_deref(), Some(APP));
    assert!(header(&a, "etag").is_some());
    assert_eq!(get(&c, "web", "from-app").await, b"uploaded");

    // A matching origin on a failed request still gets its headers (the page
    // must be able to read the error); an unmatched one, or none, gets nothing.
    let (missing_url, _) = presigned(root_key(), "GET", s3, "/web/missing", 300, &plain);
    let a = send(s3, "GET", &missing_url, &[("Origin", APP)], b"").await;
    assert_eq!((a.status, header(&a, "access-control-allow-origin").as_deref()), (404, Some(APP)));
    let a = send(s3, "GET", &get_url, &[("Origin", "https://shop.partner.example")], b"").await;
    assert_eq!(header(&a, "access-control-allow-methods").as_deref(), Some("GET"));
    let (partner_put, _) = presigned(root_key(), "PUT", s3, "/web/from-partner", 300, &plain);
    let a = send(s3, "PUT", &partner_put, &[("Origin", "https://shop.partner.example")], b"x").await;
    assert_eq!((a.status, access_control(&a)), (200, vec![]), "the partner may not PUT: no grant");
    let a = send(s3, "GET", &get_url, &[], b"").await;
    assert_eq!((a.status, access_control(&a)), (200, vec![]));
    let a =
        send(s3, "HEAD", &presigned(root_key(), "HEAD", s3, "/web/k", 300, &plain).0, &[("Origin", "o")], b"").await;
    assert_eq!(header(&a, "access-control-allow-origin").as_deref(), Some("*"));
}

/// The promise: an Origin no rule allows is never sent back, on a preflight
/// or on an actual request, however close it is to an allowed one.
#[tokio::test]
async fn attack_an_unlisted_origin_is_never_reflected() {
    let server = Server::start();
    let c = server.client();
    let s3 = server.s3;
    c.create_bucket().bucket("web").send().await.expect("create");
    put(&c, "web", "k", b"secret").await;
    put_cors(
        &c,
        "web",
        config(vec![
            rule(&["GET", "PUT", "POST", "DELETE", "HEAD"], &[APP]).allowed_headers("*"),
            rule(&["GET"], &["https://*.partner.example"]),
        ]),
    )
    .await;
    let hostile = [
        "https://evil.example",
        "null",
        "http://app.example.fr",
        "https://app.example.fr:8443",
        "https://app.example.fr.evil.example",
        "https://evilapp.example.fr",
        "https://APP.EXAMPLE.FR",
        "https://app.example.fr/",
        "https://app.example.fr https://evil.example",
        "https://partner.example",
        "http://shop.partner.example",
        "https://shop.partner.example.evil",
        "https://shop.partner.example:444",
        "",
    ];
    let (get_url, _) = presigned(root_key(), "GET", s3, "/web/k", 300, &plain);
    for origin in hostile {
        for method in ["GET", "PUT", "DELETE"] {
            let a = preflight(s3, "/web/k", &[("Origin", origin), ("Access-Control-Request-Method", method)]).await;
            assert_ne!(a.status, 200, "{origin:?} {method}: {a:?}");
            assert!(access_control(&a).is_empty(), "{origin:?} {method}: {a:?}");
            if !origin.is_empty() {
                assert!(!a.head.contains(origin) && !a.body.contains(origin), "{origin:?} echoed: {a:?}");
            }
        }
        let a = send(s3, "GET", &get_url, &[("Origin", origin)], b"").await;
        assert_eq!(a.status, 200);
        assert!(access_control(&a).is_empty(), "{origin:?} on GET: {a:?}");
        assert!(header(&a, "vary").is_none(), "{origin:?}: nothing added at all");
    }
    // The same origins, allowed ones beside them, still work (the test can fail).
    let a = preflight(s3, "/web/k", &[("Origin", APP), ("Access-Control-Request-Method", "DELETE")]).await;
    assert_eq!(header(&a, "access-control-allow-origin").as_deref(), Some(APP));
}

// ----- a real browser -----

const CHROMIUM: &str = "/usr/bin/chromium";
const PART1: usize = 5 * 1024 * 1024;
const TAIL: &str = "the last part, from a browser";

/// The bytes the page makes for part 1 (its JavaScript computes the same).
fn part1() -> Vec<u8> {
    (0..PART1).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

/// The page: PUTs two presigned parts with fetch, reads each part's ETag
/// (exposed by the bucket's rule), POSTs the presigned Complete, and writes
/// what happened into the DOM.
fn page(parts: &[String; 2], complete: &str) -> String {
    let cfg = serde_json::json!({ "parts": parts, "complete": complete, "size1": PART1, "tail": TAIL });
    format!(
        r#"<!doctype html><html><body><pre id="result">PENDING</pre><script>
const cfg = {cfg};
(async () => {{
  const out = document.getElementById('result');
  let step = 'start';
  try {{
    const p1 = new Uint8Array(cfg.size1);
    for (let i = 0; i < p1.length; i++) p1[i] = (i * 31 + 7) % 251;
    const bodies = [p1, new TextEncoder().encode(cfg.tail)];
    const etags = [];
    for (let n = 0; n < 2; n++) {{
      step = 'part ' + (n + 1);
      const r = await fetch(cfg.parts[n], {{ method: 'PUT', body: bodies[n] }});
      if (!r.ok) throw new Error('part ' + (n + 1) + ': HTTP ' + r.status);
      const etag = r.headers.get('ETag');
      if (!etag) throw new Error('part ' + (n + 1) + ': ETag not readable');
      etags.push(etag);
    }}
    const xml = '<CompleteMultipartUpload>' + etags.map((e, i) =>
      '<Part><PartNumber>' + (i + 1) + '</PartNumber><ETag>' + e + '</ETag></Part>').join('') +
      '</CompleteMultipartUpload>';
    step = 'complete';
    const r = await fetch(cfg.complete, {{ method: 'POST', body: xml, headers: {{ 'Content-Type': 'application/xml' }} }});
    const text = await r.text();
    if (!r.ok) throw new Error('complete: HTTP ' + r.status + ' ' + text);
    out.textContent = 'RESULT:OK ' + etags.length;
  }} catch (e) {{
    out.textContent = 'RESULT:FAILED at ' + step + ': ' + e;
  }}
}})();
</script></body></html>"#
    )
}

/// A page server on 127.0.0.1: another origin than Coffre's (another port).
/// It serves whatever page it is given last, until the runtime ends.
struct PageServer {
    addr: SocketAddr,
    html: Arc<Mutex<String>>,
}

impl PageServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let html = Arc::new(Mutex::new(String::new()));
        let served = html.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let html = served.lock().map(|h| h.clone()).unwrap_or_default();
                tokio::spawn(answer_page(stream, html));
            }
        });
        Self { addr, html }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn answer_page(mut stream: tokio::net::TcpStream, html: String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let (status, body) = if got.starts_with(b"GET /page ") { ("200 OK", html.as_str()) } else { ("404 Not Found", "") };
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
}

/// Loads `url` in a headless Chromium until the page's work is done; the DOM
/// it ends with.
async fn chromium_dom(url: String) -> String {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the CORS browser test needs Chromium (Debian: `apt-get install chromium`; \
         .ci/run installs it)"
    );
    tokio::task::spawn_blocking(move || {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = std::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=60000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(&url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromium");
        let deadline = Instant::now() + Duration::from_secs(120);
        while child.try_wait().expect("chromium status").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within 120 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut dom = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut dom).expect("read DOM");
        dom
    })
    .await
    .expect("chromium thread")
}

/// A page served by `from` uploads `key` to bucket `web` through a new
/// multipart upload; the result it wrote into the DOM, and the upload id.
async fn browser_upload(c: &Client, host: SocketAddr, key: &str, from: &PageServer) -> (String, String) {
    let upload = c.create_multipart_upload().bucket("web").key(key).send().await.expect("create upload");
    let id = upload.upload_id().expect("upload id").to_owned();
    let url = |method: &str, params: &[(&str, &str)]| {
        let (target, _) = presigned_with(root_key(), method, host, &format!("/web/{key}"), params, 600, &plain);
        format!("http://{host}{target}")
    };
    let parts = vec![
        url("PUT", &[("partNumber", "1"), ("uploadId", &id)]),
        url("PUT", &[("partNumber", "2"), ("uploadId", &id)]),
    ];
    let complete = url("POST", &[("uploadId", &id)]);
    let parts: [String; 2] = parts.try_into().expect("two parts");
    *from.html.lock().expect("page") = page(&parts, &complete);
    let dom = chromium_dom(format!("{}/page", from.origin())).await;
    let line = dom.lines().find_map(|l| l.split("RESULT:").nth(1)).unwrap_or("no result in the DOM");
    let line = line.split('<').next().unwrap_or_default().to_owned();
    (line, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_browser_on_another_origin_uploads_with_presigned_multipart() {
    let server = Server::start();
    let c = server.client();
    c.create_bucket().bucket("web").send().await.expect("create");
    let (allowed, other) = (PageServer::start().await, PageServer::start().await);
    let rule_for = |origin: &str| rule(&["PUT", "POST"], &[origin]).allowed_headers("content-type");
    put_cors(&c, "web", config(vec![rule_for(&allowed.origin()).expose_headers("ETag")])).await;

    let (result, _) = browser_upload(&c, server.s3, "from-browser.bin", &allowed).await;
    assert!(result.starts_with("OK 2"), "the allowed page's upload: {result}");
    let mut expected = part1();
    expected.extend_from_slice(TAIL.as_bytes());
    assert!(get(&c, "web", "from-browser.bin").await == expected, "the object is the bytes the page sent");

    // From an origin no rule allows, the browser stops at the first preflight: nothing is stored.
    let (result, id) = browser_upload(&c, server.s3, "from-elsewhere.bin", &other).await;
    assert!(result.starts_with("FAILED") && result.contains("part 1"), "the other page must fail: {result}");
    let listed = c.list_parts().bucket("web").key("from-elsewhere.bin").upload_id(&id).send().await.expect("parts");
    assert!(listed.parts().is_empty(), "no part reached the store: {:?}", listed.parts());
    let (_, status) = error_code(c.head_object().bucket("web").key("from-elsewhere.bin").send().await);
    assert_eq!(status, 404);

    // Without ExposeHeader ETag the browser hides the part's ETag: the rule is what it obeys.
    put_cors(&c, "web", config(vec![rule_for(&allowed.origin())])).await;
    let (result, _) = browser_upload(&c, server.s3, "unexposed.bin", &allowed).await;
    assert!(result.contains("ETag not readable"), "the ETag must be hidden without ExposeHeader: {result}");
}
