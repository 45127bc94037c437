//! PostgreSQL stopped and started again under load, with three gateways on
//! it: while it is down every request gets a clean 503, no acknowledged
//! write is lost, and the gateways serve again by themselves once it is
//! back. A file of its own: it stops the cluster every other test uses.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use coffre_e2e::deployment::Deployment;
use coffre_e2e::objects::{get, put};
use coffre_e2e::{error_code, md5_hex, pattern};

/// What the writers saw: acknowledged keys, and every error by code.
#[derive(Default)]
struct Seen {
    acked: BTreeMap<String, String>,
    errors: BTreeMap<(String, u16), usize>,
}

async fn write_until(client: Client, writer: usize, seen: Arc<Mutex<Seen>>, stop: Arc<Mutex<bool>>) {
    for n in 0.. {
        if *stop.lock().expect("lock") {
            return;
        }
        let key = format!("w{writer}/{n:05}");
        let body = pattern([10usize, 6000, 100_000][n % 3], (writer * 100_000 + n) as u64);
        let out = client.put_object().bucket("load").key(&key).body(ByteStream::from(body.clone())).send().await;
        {
            let mut seen = seen.lock().expect("lock");
            match out {
                Ok(_) => drop(seen.acked.insert(key, md5_hex(&body))),
                Err(e) => {
                    // An error with no HTTP answer says why, so a failure names its cause.
                    if e.raw_response().is_none() {
                        eprintln!("{key}: no HTTP answer: {e:?}");
                    }
                    *seen.errors.entry(error_code::<(), _>(Err(e))).or_default() += 1;
                }
            }
        }
        // Not a busy loop against a dead database.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_is_503_meanwhile_and_resumes_by_itself() {
    let Some(d) = Deployment::start(3) else { return };
    let c = d.clients();
    c[0].create_bucket().bucket("load").send().await.expect("bucket");
    put(&c[1], "load", "before", "before").await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(Mutex::new(false));
    let writers: Vec<_> =
        (0..6).map(|w| tokio::spawn(write_until(c[w % 3].clone(), w, seen.clone(), stop.clone()))).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked_before_stop = seen.lock().expect("lock").acked.len();
    assert!(acked_before_stop > 0, "writes went through before the stop");

    tokio::task::spawn_blocking(|| coffre_e2e::pg_stop("fast")).await.expect("stop");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Down: reads and writes through every gateway are clean 503s.
    for client in &c {
        let read = client.get_object().bucket("load").key("before").send().await;
        assert_eq!(error_code(read).1, 503, "a read while the database is down");
        let write = client.put_object().bucket("load").key("during").body(ByteStream::from_static(b"x")).send().await;
        assert_eq!(error_code(write).1, 503, "a write while the database is down");
    }
    tokio::task::spawn_blocking(coffre_e2e::pg_start).await.expect("start");

    // Back: every gateway serves again without being touched.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (i, client) in c.iter().enumerate() {
        loop {
            let out = client
                .put_object()
                .bucket("load")
                .key(format!("after-{i}"))
                .body(ByteStream::from_static(b"back"))
                .send()
                .await;
            if out.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "gateway {i} did not resume: {:?}", error_code(out));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    *stop.lock().expect("lock") = true;
    for w in writers {
        w.await.expect("writer");
    }

    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    eprintln!("acknowledged: {} ({acked_before_stop} before the stop); errors: {:?}", seen.acked.len(), seen.errors);
    // Errors there were, and every one a 503: never a 500, never wrong data.
    assert!(!seen.errors.is_empty(), "the writers met the outage");
    for ((code, status), count) in &seen.errors {
        assert_eq!(*status, 503, "{count} × {code} {status} while the database was away");
    }
    assert!(seen.acked.len() > acked_before_stop, "writes were acknowledged again after the restart");
    for (key, md5) in &seen.acked {
        assert_eq!(&md5_hex(&get(&c[(key.len()) % 3], "load", key).await), md5, "{key} acknowledged, then lost");
    }
    assert_eq!(get(&c[2], "load", "before").await, b"before");
}
