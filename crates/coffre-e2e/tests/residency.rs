//! Residency end to end: five storage nodes (FR on three sites, DE, US) and a
//! gateway, all real processes. Where bytes land is checked on the nodes'
//! disks, never by asking the gateway.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use coffre_e2e::audit;
use coffre_e2e::deployment::node_target;
use coffre_e2e::node::ClusterCa;
use coffre_e2e::objects::{get, multipart, put};
use coffre_e2e::{Node, Server, coffre_bin, error_code, free_addr, pattern};

/// (id, country, region, site, operator)
const NODES: [(&str, &str, &str, &str, &str); 5] = [
    ("par-1", "FR", "paris", "par-a", "op-fr"),
    ("par-2", "FR", "paris", "par-b", "op-fr"),
    ("rbx-1", "FR", "roubaix", "rbx-a", "op-fr"),
    ("fra-1", "DE", "frankfurt", "fra-a", "op-de"),
    ("nyc-1", "US", "new-york", "nyc-a", "op-us"),
];

fn topology(addrs: &[SocketAddr], cluster: &str) -> String {
    // A short grace lets the test see deleted blobs collected.
    let mut toml = format!(
        "gc_grace_secs = 1\n\n{cluster}\n\
         [[operators]]\nid = \"op-fr\"\nname = \"Exemple Cloud SAS\"\ncountry = \"FR\"\n\
         ownership = {{ FR = 80.0, DE = 20.0 }}\nqualifications = [{{ name = \"secnumcloud\", expires = \"2099-12-31\" }}]\n\n\
         [[operators]]\nid = \"op-de\"\nname = \"Beispiel GmbH\"\ncountry = \"DE\"\nownership = {{ DE = 100.0 }}\n\n\
         [[operators]]\nid = \"op-us\"\nname = \"Example Inc\"\ncountry = \"US\"\nownership = {{ US = 100.0 }}\n"
    );
    for ((id, country, region, site, operator), addr) in NODES.iter().zip(addrs) {
        toml.push_str(&node_target(id, *addr, (*country, *region, *site), operator));
    }
    toml
}

struct Cluster {
    nodes: Vec<Node>,
    gateway: Server,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let addrs: Vec<SocketAddr> = NODES.iter().map(|_| free_addr()).collect();
        let config = tmp.path().join("coffre.toml");
        let ca = ClusterCa::new(tmp.path());
        std::fs::write(&config, topology(&addrs, &ca.config_section())).expect("config");
        let nodes = NODES
            .iter()
            .zip(&addrs)
            .map(|((id, ..), addr)| Node::start(id, &ca, &config, tmp.path().join(id), *addr))
            .collect();
        let gateway = Server::start_with_config(&tmp.path().join("gateway"), &config, &["--role", "gateway"]);
        Self { nodes, gateway, _tmp: tmp }
    }

    fn node(&self, id: &str) -> &Node {
        self.nodes.iter().find(|n| n.id == id).expect("node")
    }

    fn site_of(id: &str) -> (&'static str, &'static str) {
        let (_, country, _, site, _) = NODES.iter().find(|n| n.0 == id).expect("declared");
        (country, site)
    }
}

/// Blob id → the nodes holding it, for every blob on the disks of `nodes`.
fn holders<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> BTreeMap<String, Vec<&'static str>> {
    let mut out: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for node in nodes {
        for blob in node.blobs().into_keys() {
            out.entry(blob).or_default().push(node.id);
        }
    }
    out
}

/// The `x-coffre-residency` header of a presigned HEAD, read off the wire.
async fn residency_header(c: &aws_sdk_s3::Client, s3: SocketAddr, bucket: &str, key: &str) -> String {
    let presigned = c
        .head_object()
        .bucket(bucket)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("presign"))
        .await
        .expect("presigned");
    let uri: http::Uri = presigned.uri().parse().expect("uri");
    let path = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let mut stream = TcpStream::connect(s3).expect("connect");
    write!(stream, "HEAD {path} HTTP/1.1\r\nHost: {s3}\r\nConnection: close\r\n\r\n").expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    text.lines()
        .find_map(|l| l.strip_prefix("x-coffre-residency: "))
        .unwrap_or_else(|| panic!("no x-coffre-residency header in:\n{text}"))
        .trim()
        .to_owned()
}

fn fr_sites_distinct(holders: &[&'static str]) -> bool {
    let sites: BTreeSet<_> = holders.iter().map(|h| Cluster::site_of(h).1).collect();
    holders.len() == 2 && sites.len() == 2 && holders.iter().all(|h| Cluster::site_of(h).0 == "FR")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_lands_only_where_its_policy_allows_and_survives_a_lost_node() {
    let mut cluster = Cluster::start();
    let c = cluster.gateway.client();
    c.create_bucket().bucket("fr-data").send().await.expect("create fr-data");
    c.create_bucket().bucket("eu-data").send().await.expect("create eu-data");
    cluster.gateway.cli_ok(&[
        "bucket",
        "residency",
        "fr-data",
        "--allow",
        "FR",
        "--replicas",
        "2",
        "--distinct-sites",
        "2",
    ]);
    cluster.gateway.cli_ok(&["bucket", "residency", "eu-data", "--allow", "EU", "--replicas", "2"]);

    // A node speaks only mutual TLS: plain HTTP gets no HTTP answer and
    // stores nothing (attack_nodes.rs tries the TLS cases).
    let unsigned_put = format!(
        "PUT /v1/blobs/{} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        "0".repeat(32)
    );
    let answer = coffre_e2e::raw_request(cluster.node("par-1").addr, unsigned_put.as_bytes());
    assert!(answer.is_none(), "a node answered plain HTTP: {answer:?}");
    assert!(cluster.node("par-1").blobs().is_empty(), "a plain-HTTP PUT stored bytes");

    // Sizes: empty, one byte, several segments, and a multipart upload.
    let mut objects: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (i, size) in [0usize, 1, 4096, 70_000, 1 << 20].into_iter().enumerate() {
        objects.insert(format!("fr/{i}"), pattern(size, i as u64));
    }
    for (key, body) in &objects {
        put(&c, "fr-data", key, body.clone()).await;
    }
    let big = pattern(11 << 20, 99);
    let parts: Vec<Vec<u8>> = big.chunks(6 << 20).map(<[u8]>::to_vec).collect();
    multipart(&c, "fr-data", "fr/multipart", &parts).await;
    objects.insert("fr/multipart".into(), big);

    // On disk: 7 blobs (5 objects, 2 parts), each on exactly two FR nodes of different sites, same bytes.
    let fr_blobs = holders(&cluster.nodes);
    assert_eq!(fr_blobs.len(), 7, "one blob per object and per part: {fr_blobs:?}");
    for (blob, holders) in &fr_blobs {
        assert!(fr_sites_distinct(holders), "blob {blob} is on {holders:?}, not on two FR sites");
        let copies: BTreeSet<Vec<u8>> = holders.iter().map(|h| cluster.node(h).blobs()[blob].clone()).collect();
        assert_eq!(copies.len(), 1, "the replicas of {blob} differ");
    }
    for node in ["fra-1", "nyc-1"] {
        assert!(cluster.node(node).blobs().is_empty(), "{node} holds bytes of an FR-only bucket");
    }
    // Every object says where it lives, and says the truth.
    let header = residency_header(&c, cluster.gateway.s3, "fr-data", "fr/1").await;
    let sites: BTreeSet<&str> = header.split(',').collect();
    assert_eq!(sites.len(), 2, "{header}");
    assert!(sites.iter().all(|s| s.starts_with("FR/")), "{header}");
    // `coffre object where` names the replicas; each is checked on that node's disk.
    let place = cluster.gateway.cli_json(&["object", "where", "fr-data", "fr/1", "--json"]);
    let replicas = place["replicas"].as_array().expect("replicas");
    assert_eq!(replicas.len(), 2, "{place}");
    let mut where_sites = BTreeSet::new();
    for r in replicas {
        let target = r["target"].as_str().expect("target");
        assert_eq!(r["country"], "FR");
        assert_eq!(r["operator_name"], "Exemple Cloud SAS");
        let on_disk = cluster.node(target).blobs();
        for blob in r["blob_ids"].as_array().expect("blob ids") {
            assert!(on_disk.contains_key(blob.as_str().expect("id")), "{target} lacks blob {blob}");
        }
        where_sites.insert(r["location"].as_str().expect("location").to_owned());
    }
    let header_sites: BTreeSet<String> = sites.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(where_sites, header_sites, "the header and `object where` disagree");

    // An EU bucket (two replicas, sites unconstrained): 40 objects, never on the US node.
    for i in 0..40 {
        put(&c, "eu-data", &format!("eu/{i}"), pattern(3000 + i, 1000 + i as u64)).await;
    }
    assert!(cluster.node("nyc-1").blobs().is_empty(), "an EU-only bucket put bytes in the US");
    let eu_on_de = cluster.node("fra-1").blobs().len();
    assert!(eu_on_de > 0, "80 EU replicas and none in DE: placement does not spread");

    // Tightening EU to FR would strand the DE replicas: refused, naming them.
    let out = cluster.gateway.cli(&["bucket", "residency", "eu-data", "--allow", "FR"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "tightening past stored replicas must be refused");
    assert!(stderr.contains("would break this policy") && stderr.contains("eu/"), "{stderr}");
    assert!(stderr.contains("outside"), "the reason names the rule broken: {stderr}");

    // A policy no topology can meet: writes refused, and no node gets a byte.
    c.create_bucket().bucket("de4").send().await.expect("create de4");
    cluster.gateway.cli_ok(&["bucket", "residency", "de4", "--allow", "DE", "--replicas", "4"]);
    let before = holders(&cluster.nodes);
    let refused = c.put_object().bucket("de4").key("k").body(ByteStream::from(vec![7u8; 5000])).send().await;
    assert_eq!(error_code(refused), ("ResidencyPolicyUnsatisfiable".to_owned(), 503));
    assert_eq!(holders(&cluster.nodes), before, "a refused write left bytes on a node");

    // Bad policy requests: precise errors.
    let out = cluster.gateway.cli(&["bucket", "residency", "fr-data", "--allow", "XX"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("allow"), "{out:?}");
    let out = cluster.gateway.cli(&[
        "bucket",
        "residency",
        "fr-data",
        "--allow",
        "FR",
        "--replicas",
        "2",
        "--distinct-sites",
        "3",
    ]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("distinct_sites"), "{out:?}");

    // Kill an FR node: everything still reads back, byte-identical.
    // Two objects to delete once it is dead; the first has a replica on it.
    let mut doomed_blobs = Vec::new();
    for i in 0..2 {
        let key = format!("fr/doomed-{i}");
        put(&c, "fr-data", &key, pattern(30_000, 77 + i)).await;
        let place = cluster.gateway.cli_json(&["object", "where", "fr-data", &key, "--json"]);
        doomed_blobs.push(place["replicas"][0]["blob_ids"][0].as_str().expect("blob id").to_owned());
        if i == 0 {
            let first = place["replicas"][0]["target"].as_str().expect("target").to_owned();
            doomed_blobs.push(first);
        }
    }
    let victim_id = doomed_blobs.remove(1);
    let victim = NODES.iter().map(|n| n.0).find(|id| *id == victim_id).expect("a declared node");
    cluster.nodes.iter_mut().find(|n| n.id == victim).expect("victim").kill();
    for (key, body) in &objects {
        assert_eq!(&get(&c, "fr-data", key).await, body, "{key} after {victim} died");
    }
    // Writes that can still meet the policy succeed (the SDK retries the
    // 503 of a write placed before the gateway noticed the death).
    tokio::time::sleep(Duration::from_secs(2)).await;
    put(&c, "fr-data", "fr/after-death", pattern(20_000, 5)).await;
    objects.insert("fr/after-death".into(), pattern(20_000, 5));
    // A delete while a replica's node is dead: the living copies are collected
    // all the same (the dead node's waits for it or for its loss).
    // The first blob's replica on the dead node cannot go yet; it must not
    // hold up the collection of the second.
    for i in 0..2 {
        c.delete_object().bucket("fr-data").key(format!("fr/doomed-{i}")).send().await.expect("delete");
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    let on_living = |blob: &str| cluster.nodes.iter().filter(|n| n.id != victim).any(|n| n.blobs().contains_key(blob));
    while doomed_blobs.iter().any(|b| on_living(b)) {
        assert!(Instant::now() < deadline, "a deleted object's blob stayed on a living node");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Declared lost: repair brings every FR blob back to two FR sites among the living.
    cluster.gateway.cli_ok(&["target", "lost", victim]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = cluster.gateway.cli_json(&["target", "repair"]);
        let done = status["passes"].as_u64().unwrap_or(0) >= 2 && status["running"] == false;
        if done && status["failed"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "repair did not finish: {status}");
        cluster.gateway.cli_ok(&["target", "repair", "--start"]);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = holders(cluster.nodes.iter().filter(|n| n.id != victim));
    for blob in fr_blobs.keys() {
        let holders = after.get(blob).cloned().unwrap_or_default();
        assert!(fr_sites_distinct(&holders), "after repair blob {blob} is on {holders:?}");
    }
    assert!(cluster.node("nyc-1").blobs().is_empty(), "repair copied data to a forbidden target");
    for (key, body) in &objects {
        assert_eq!(&get(&c, "fr-data", key).await, body, "{key} after repair");
    }

    // The death, the declared loss and every policy change are in the audit log.
    let audit = |operation: &str| {
        audit::run(&cluster.gateway.data_dir, &["query", "--format", "jsonl", "--operation", operation]).1
    };
    assert!(audit("node:Down").contains(&format!("target={victim}")), "no node:Down event for {victim}");
    assert!(audit("admin:DeclareTargetLost").contains(&format!("target={victim}")), "the loss is not recorded");
    assert_eq!(audit("admin:PutBucketResidency").lines().count(), 6, "each policy request is an event");
}

#[test]
fn bad_topologies_are_refused_naming_the_field() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // (a good line, the bad line put in its place, the field the error must name)
    let cases = [
        ("country = \"FR\"\nregion", "country = \"XX\"\nregion", "targets[0].country"),
        ("operator = \"op-fr\"\ncapacity", "operator = \"op-nobody\"\ncapacity", "targets[0].operator"),
        ("ownership = { FR = 100.0 }", "ownership = { FR = 80.0, DE = 30.0 }", "operators[0].ownership"),
    ];
    let cluster = ClusterCa::new(tmp.path()).config_section();
    let good = format!(
        "{cluster}\n[[operators]]\nid = \"op-fr\"\nname = \"Exemple\"\ncountry = \"FR\"\n\
         ownership = {{ FR = 100.0 }}\n\n[[targets]]\nid = \"par-1\"\nkind = \"node\"\nendpoint = \"https://127.0.0.1:1\"\n\
         country = \"FR\"\nregion = \"paris\"\nsite = \"par-a\"\noperator = \"op-fr\"\ncapacity = \"1GiB\"\n"
    );
    for (i, (from, to, field)) in cases.iter().enumerate() {
        let text = good.replacen(from, to, 1);
        assert_ne!(text, good, "case {i} changed nothing");
        let path = tmp.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, &text).expect("config");
        let out = Command::new(coffre_bin())
            .args(["serve", "--role", "gateway", "--config"])
            .arg(&path)
            .arg("--data-dir")
            .arg(tmp.path().join(format!("d{i}")))
            .args(["--s3-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} started:\n{text}");
        assert!(stderr.contains(field), "case {i}: the error does not name {field}: {stderr}");
    }
}

/// An existing S3 service as a target: a second `coffre` plays it. It gets
/// sealed blobs only, and serves reads when the node holding the other
/// replica is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_service_holds_sealed_replicas_and_serves_when_the_node_dies() {
    let backend = Server::start();
    let remote = backend.client();
    remote.create_bucket().bucket("remote").send().await.expect("backend bucket");

    let tmp = tempfile::tempdir().expect("tempdir");
    let node_addr = free_addr();
    let config = tmp.path().join("coffre.toml");
    let ca = ClusterCa::new(tmp.path());
    std::fs::write(
        &config,
        format!(
            "{}\n[residency]\nallow = [\"FR\"]\nreplicas = 2\ndistinct_sites = 2\n\n\
             [[operators]]\nid = \"op-fr\"\nname = \"Exemple Cloud SAS\"\ncountry = \"FR\"\nownership = {{ FR = 100.0 }}\n\n\
             [[targets]]\nid = \"par-1\"\nkind = \"node\"\nendpoint = \"https://{node_addr}\"\ncountry = \"FR\"\n\
             region = \"paris\"\nsite = \"par-a\"\noperator = \"op-fr\"\ncapacity = \"1TiB\"\n\n\
             [[targets]]\nid = \"s3-lyon\"\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"remote\"\n\
             access_key = \"{}\"\nsecret_key = \"{}\"\ncountry = \"FR\"\nregion = \"lyon\"\nsite = \"lyo-a\"\n\
             operator = \"op-fr\"\ncapacity = \"1TiB\"\n",
            ca.config_section(),
            backend.endpoint(),
            coffre_e2e::ROOT_ACCESS,
            coffre_e2e::ROOT_SECRET
        ),
    )
    .expect("config");
    let mut node = Node::start("par-1", &ca, &config, tmp.path().join("par-1"), node_addr);
    let gateway = Server::start_with_config(&tmp.path().join("gateway"), &config, &["--role", "gateway"]);
    let c = gateway.client();
    c.create_bucket().bucket("data").send().await.expect("bucket");
    let marker = b"PLAINTEXT-MARKER-THAT-MUST-NOT-LEAVE-THE-GATEWAY";
    let mut small = pattern(10_000, 1);
    small[100..100 + marker.len()].copy_from_slice(marker);
    // Over 8 MiB sealed: the gateway sends it as a multipart upload.
    let mut large = pattern(20 << 20, 2);
    large[5 << 20..(5 << 20) + marker.len()].copy_from_slice(marker);
    put(&c, "data", "small", small.clone()).await;
    put(&c, "data", "large", large.clone()).await;

    // The service holds exactly the node's blobs, byte for byte, all sealed.
    let on_node = node.blobs();
    assert_eq!(on_node.len(), 2, "{:?}", on_node.keys());
    let listed = remote.list_objects_v2().bucket("remote").send().await.expect("list");
    let keys: BTreeSet<String> = listed.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
    let expected: BTreeSet<String> = on_node.keys().map(|id| format!("coffre-blobs/{id}")).collect();
    assert_eq!(keys, expected, "the S3 target holds other blobs than the node");
    for (id, bytes) in &on_node {
        let remote_bytes = get(&remote, "remote", &format!("coffre-blobs/{id}")).await;
        assert!(&remote_bytes == bytes, "blob {id} differs between the node and the S3 target");
        assert!(!remote_bytes.windows(marker.len()).any(|w| w == marker), "plaintext reached the S3 target");
    }
    let header = residency_header(&c, gateway.s3, "data", "small").await;
    assert_eq!(header.split(',').collect::<BTreeSet<_>>(), BTreeSet::from(["FR/paris/par-a", "FR/lyon/lyo-a"]));

    // The node dies: reads fall back to the S3 service, ranges included.
    node.kill();
    assert_eq!(get(&c, "data", "small").await, small);
    assert_eq!(get(&c, "data", "large").await, large);
    let ranged = c.get_object().bucket("data").key("large").range("bytes=9000000-9000999").send().await.expect("range");
    let ranged = ranged.body.collect().await.expect("body").into_bytes();
    assert_eq!(&ranged[..], &large[9_000_000..9_001_000]);
    // With one of two sites gone, a 2-site policy cannot take new writes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let refused = c.put_object().bucket("data").key("new").body(ByteStream::from(vec![1u8; 100])).send().await;
    assert_eq!(error_code(refused), ("ResidencyPolicyUnsatisfiable".to_owned(), 503));
}

/// The trust label of a running two-node deployment: evaluated through the
/// admin API, signed, verified offline; a byte changed fails verification; a
/// target that turns out to be in Germany fails the observed-residency rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trust_label_is_signed_verified_offline_and_sees_where_replicas_are() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let addrs = [free_addr(), free_addr()];
    let config = tmp.path().join("coffre.toml");
    // A profile of one's own, next to the built-in ones: the ministry's rule is France only.
    let own_profile = tmp.path().join("ministere.toml");
    std::fs::write(
        &own_profile,
        "id = \"ministere-fr\"\nversion = \"1\"\neffective = 2026-01-01\ntitle = \"Données du ministère\"\n\
         notes = \"France only.\"\n\n[[rules]]\nid = \"LOC-01\"\ntitle = \"Stored in France\"\nsource = \"circulaire\"\n\
         severity = \"blocking\"\ncheck = { predicate = \"observed_residency\", jurisdiction = \"FR\" }\n",
    )
    .expect("profile");
    let profiles_line = format!("label_profiles = [{:?}]\n", own_profile.to_str().expect("utf-8"));
    let ca = ClusterCa::new(tmp.path());
    let cluster = ca.config_section();
    let write_config = |par2_country: &str| {
        let text = format!(
            "{profiles_line}{cluster}\n[residency]\nallow = [\"FR\"]\nreplicas = 2\ndistinct_sites = 2\n\n\
             [audit]\nretention_days = 365\n\n\
             [[operators]]\nid = \"op-fr\"\nname = \"Coffre Cloud SAS\"\ncountry = \"FR\"\n\n\
             [[operators]]\nid = \"op-dc\"\nname = \"Datacentre Nord SAS\"\ncountry = \"FR\"\n\n\
             [[targets]]\nid = \"par-1\"\nkind = \"node\"\nendpoint = \"https://{}\"\ncountry = \"FR\"\nregion = \"paris\"\n\
             site = \"par-a\"\noperator = \"op-fr\"\ncapacity = \"1TiB\"\n\n\
             [[targets]]\nid = \"par-2\"\nkind = \"node\"\nendpoint = \"https://{}\"\ncountry = \"{par2_country}\"\n\
             region = \"lille\"\nsite = \"lil-a\"\noperator = \"op-dc\"\ncapacity = \"1TiB\"\n\n{LABEL}",
            addrs[0], addrs[1]
        );
        std::fs::write(&config, text).expect("config");
    };
    write_config("FR");
    let _nodes: Vec<Node> = ["par-1", "par-2"]
        .iter()
        .zip(addrs)
        .map(|(id, addr)| Node::start(id, &ca, &config, tmp.path().join(id), addr))
        .collect();
    let start_gateway = || Server::start_with_config(&tmp.path().join("gateway"), &config, &["--role", "gateway"]);
    let mut gateway = start_gateway();
    let c = gateway.client();
    c.create_bucket().bucket("dossiers").send().await.expect("bucket");
    for i in 0..5 {
        put(&c, "dossiers", &format!("patient/{i}"), pattern(10_000 + i, i as u64)).await;
    }
    // A policy change wakes the background evaluation: LOC-01-OBS goes N/A → PASS, an audit event.
    let out =
        gateway.cli(&["bucket", "residency", "dossiers", "--allow", "FR", "--replicas", "2", "--distinct-sites", "2"]);
    assert!(out.status.success(), "{out:?}");

    let report = tmp.path().join("report.json");
    let evaluate = |gateway: &Server, profile: &str| {
        let report_arg = report.to_str().expect("utf-8 path");
        gateway.cli_ok(&["label", "evaluate", "--profile", profile, "--format", "json", "--output", report_arg]);
        let signed: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
        let outcomes: BTreeMap<String, String> = signed["report"]["outcomes"]
            .as_array()
            .expect("outcomes")
            .iter()
            .map(|o| {
                (o["id"].as_str().unwrap_or_default().to_owned(), o["outcome"].as_str().unwrap_or_default().to_owned())
            })
            .collect();
        (signed, outcomes)
    };
    let (signed, outcomes) = evaluate(&gateway, "cloud-de-confiance");
    assert_eq!(signed["report"]["assessment"], "pre-assessment");
    assert_eq!(signed["report"]["profile"], "secnumcloud-3.2", "the alias resolves");
    for (rule, want) in
        [("LOC-01", "PASS"), ("LOC-01-OBS", "PASS"), ("OWN-02", "PASS"), ("OWN-03", "PASS"), ("CRY-01", "PASS")]
    {
        assert_eq!(outcomes.get(rule).map(String::as_str), Some(want), "{rule}: {outcomes:?}");
    }
    // Observed, not declared: both listeners speak plain HTTP here.
    assert_eq!(outcomes.get("CRY-04").map(String::as_str), Some("FAIL"), "{outcomes:?}");
    let (own, outcomes) = evaluate(&gateway, "ministere-fr");
    assert_eq!(own["report"]["profile"], "ministere-fr");
    assert_eq!(outcomes.get("LOC-01").map(String::as_str), Some("PASS"), "{outcomes:?}");

    // Offline verification with the deployment's public key, obtained separately.
    let key_file = tmp.path().join("public.key");
    let out = Command::new(coffre_bin())
        .args(["audit", "public-key", "--data-dir"])
        .arg(&gateway.data_dir)
        .output()
        .expect("public-key");
    std::fs::write(&key_file, &out.stdout).expect("key file");
    let verify = |path: &Path| {
        Command::new(coffre_bin())
            .args(["label", "verify"])
            .arg(path)
            .arg("--public-key")
            .arg(&key_file)
            .output()
            .expect("label verify")
    };
    let out = verify(&report);
    assert!(out.status.success(), "a fresh report must verify: {}", String::from_utf8_lossy(&out.stderr));
    let mut bytes = std::fs::read(&report).expect("report");
    let at = bytes.windows(4).position(|w| w == b"PASS").expect("a PASS in the report");
    bytes[at] = b'F';
    let tampered = tmp.path().join("tampered.json");
    std::fs::write(&tampered, &bytes).expect("tampered");
    let out = verify(&tampered);
    assert!(!out.status.success(), "a report with one byte changed verified");
    assert!(String::from_utf8_lossy(&out.stderr).contains("does NOT verify"), "{out:?}");

    // The outcome change is an audit event; every outcome is a metric.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, events, _) =
            audit::run(&gateway.data_dir, &["query", "--format", "jsonl", "--operation", "label:RuleChanged"]);
        if events.contains("rule=LOC-01-OBS from=N/A to=PASS") {
            break;
        }
        assert!(Instant::now() < deadline, "no label:RuleChanged event for LOC-01-OBS");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, metrics) = coffre_e2e::http_get(gateway.admin, "/metrics").expect("metrics");
    assert!(
        metrics.contains(r#"label_rule_outcome{profile="secnumcloud-3.2",rule="LOC-01",outcome="PASS"} 1"#),
        "no label metric"
    );

    // par-2 turns out to be in Germany: every declaration is consistent, but
    // replicas of an FR-only bucket are observed outside FR.
    gateway.stop();
    write_config("DE");
    gateway = start_gateway();
    let (_, outcomes) = evaluate(&gateway, "cloud-de-confiance");
    assert_eq!(outcomes.get("LOC-01").map(String::as_str), Some("PASS"), "DE is in the EU");
    assert_eq!(outcomes.get("LOC-01-OBS").map(String::as_str), Some("FAIL"), "{outcomes:?}");
    let (_, outcomes) = evaluate(&gateway, "ministere-fr");
    assert_eq!(outcomes.get("LOC-01").map(String::as_str), Some("FAIL"), "the ministry's own rule: {outcomes:?}");

    // Offline, from the stopped gateway's config and data directory: the same
    // observations, the same signature.
    gateway.stop();
    let offline = tmp.path().join("offline.json");
    let out = Command::new(coffre_bin())
        .args(["label", "evaluate", "--offline", "--profile", "secnumcloud-3.2", "--format", "json", "--config"])
        .arg(coffre_e2e::config_as_served(&config, &gateway.data_dir))
        .arg("--data-dir")
        .arg(&gateway.data_dir)
        .arg("--output")
        .arg(&offline)
        .output()
        .expect("offline evaluate");
    assert!(out.status.success(), "offline evaluate: {}", String::from_utf8_lossy(&out.stderr));
    let out = verify(&offline);
    assert!(out.status.success(), "the offline report must verify: {}", String::from_utf8_lossy(&out.stderr));
    let signed: serde_json::Value = serde_json::from_slice(&std::fs::read(&offline).expect("report")).expect("json");
    let obs =
        signed["report"]["outcomes"].as_array().expect("outcomes").iter().find(|o| o["id"] == "LOC-01-OBS").cloned();
    assert_eq!(obs.map(|o| o["outcome"].clone()), Some(serde_json::json!("FAIL")), "offline sees the same replicas");
}

const LABEL: &str = r#"# Trust label, declared facts. Percentages are of capital and of voting rights.
# A holder that is an entity id is looked through; any other holder is ultimate and needs a country.
[[entities]]
id = "ent-coffre"
name = "Coffre Cloud SAS"
registered_office = "FR"
central_administration = "FR"
principal_establishment = "FR"
government_links = false
shareholders = [
    { holder = "ent-holding", capital = 60.0, voting = 70.0, board_majority = true },
    { holder = "Fonds Souverain Europe", country = "LU", capital = 30.0, voting = 25.0 },
    { holder = "Acme Ventures Inc.", country = "US", capital = 10.0, voting = 5.0 },
]

[[entities]]
id = "ent-holding"
name = "Coffre Holding SA"
registered_office = "FR"
central_administration = "FR"
principal_establishment = "FR"
government_links = false
shareholders = [
    { holder = "Fondateurs", country = "FR", capital = 80.0, voting = 90.0 },
    { holder = "Acme Ventures Inc.", country = "US", capital = 20.0, voting = 10.0 },
]

[[entities]]
id = "ent-dc"
name = "Datacentre Nord SAS"
registered_office = "FR"
central_administration = "FR"
principal_establishment = "FR"
government_links = false
shareholders = [{ holder = "Famille Martin", country = "FR", capital = 100.0, voting = 100.0 }]

[[third_parties]]
name = "Example Software Inc."
country = "US"
role = "software licensor; updates pass the inspection zone"
data_access = false
key_access = false
autonomy_plan = true

[label]
provider = "ent-coffre"
admin_origins = ["FR"]
processing_countries = ["FR"]
kms_countries = ["FR"]
log_retention_days = 365

[label.contract]
governing_law = "FR"
deletion_notice_days = 21
sovereignty_change_notice_days = 30

[label.operator_entities]
op-fr = "ent-coffre"
op-dc = "ent-dc"

# Yes/no declarations for what Coffre cannot observe (each rule names the one it reads).
[label.attestations]
backup_site_distinct = true
mfa_admin = true
crypto_erase = true
logging_policy = true
security_events_logged = true
central_log_store = true
clock_sync = true
log_correlation = true
per_tenant_log_export = true
erasure_all_copies = true
"#;
