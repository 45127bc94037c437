//! A deployment of several stateless gateways on one PostgreSQL database,
//! with three storage nodes on three sites: what the multi-gateway tests start.

use std::path::{Path, PathBuf};

use crate::node::ClusterCa;
use crate::{Node, Server, free_addr};

/// (id, site) of the storage nodes, all in FR: two replicas on two sites
/// leave a third node for repair to copy to when one is lost.
const NODES: [(&str, &str); 3] = [("par-1", "par-a"), ("par-2", "par-b"), ("par-3", "par-c")];

pub struct Deployment {
    pub nodes: Vec<Node>,
    pub gateways: Vec<Server>,
    /// The CA every node's and gateway's identity comes from.
    pub ca: ClusterCa,
    config: PathBuf,
    /// The connection string of the database the gateways share.
    pub db: String,
    tmp: tempfile::TempDir,
}

impl Deployment {
    /// `gateways` gateways and three nodes on a fresh database; `None`, and
    /// the test says it skipped, without a PostgreSQL cluster (`COFFRE_TEST_PG`).
    pub fn start(gateways: usize) -> Option<Self> {
        Self::start_with_replicas(gateways, 2)
    }

    /// [`Deployment::start`] whose `[residency]` asks `replicas` replicas on as
    /// many sites (a bucket may ask for more, never fewer).
    pub fn start_with_replicas(gateways: usize, replicas: u8) -> Option<Self> {
        let Some(url) = crate::fresh_pg_database() else {
            eprintln!("skipped: COFFRE_TEST_PG is unset (scripts/test.sh starts a PostgreSQL cluster)");
            return None;
        };
        let tmp = tempfile::tempdir().expect("tempdir");
        let addrs = NODES.map(|_| free_addr());
        let config = tmp.path().join("coffre.toml");
        std::fs::write(&config, config_text(&url, tmp.path(), &addrs, replicas)).expect("config");
        let ca = ClusterCa::new(tmp.path());
        let nodes =
            NODES.iter().zip(addrs).map(|((id, _), addr)| Node::start(id, &ca, &config, tmp.path().join(id), addr));
        let mut deployment = Self { nodes: nodes.collect(), gateways: Vec::new(), ca, config, db: url, tmp };
        for i in 0..gateways {
            let gateway = deployment.start_gateway(i);
            deployment.gateways.push(gateway);
        }
        Some(deployment)
    }

    /// Gateway `i` on its data directory (the same one on a restart).
    pub fn start_gateway(&self, i: usize) -> Server {
        let name = format!("gw-{i}");
        let identity = self.ca.gateway(&name);
        let args = ["--role", "gateway", "--node-id", &name, "--cluster-identity", &identity.to_string_lossy()];
        Server::start_with_config(&self.gateway_dir(i), &self.config, &args)
    }

    /// The file every process reads.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The audit signing key the gateways share.
    pub fn audit_key(&self) -> PathBuf {
        self.tmp.path().join("audit-keys").join("audit-ed25519.pk8")
    }

    pub fn gateway_dir(&self, i: usize) -> PathBuf {
        self.tmp.path().join(format!("gw-{i}"))
    }

    pub fn clients(&self) -> Vec<aws_sdk_s3::Client> {
        self.gateways.iter().map(Server::client).collect()
    }

    /// Blob files on all nodes' disks.
    pub fn blob_files(&self) -> usize {
        self.nodes.iter().map(|n| n.blobs().len()).sum()
    }
}

/// Every process reads the same file (each names its own cluster identity on
/// its command line): one database, one key directory (the
/// custodian must be shared by the gateways), one audit signing key,
/// `replicas` replicas on as many FR sites, a short collection grace so tests
/// see blobs go, a 2 s access-key cache (`attack_keys` tests that bound), and
/// a signed audit head every second.
fn config_text(url: &str, shared: &Path, addrs: &[std::net::SocketAddr], replicas: u8) -> String {
    let mut toml = format!(
        "gc_grace_secs = 1\naccess_key_cache_secs = 2\n\n\
         [metadata]\nengine = \"postgres\"\nurl = \"{url}\"\n\n\
         [kms]\ncustody = \"embedded\"\ndir = \"{}\"\n\n\
         [audit]\nsigning_key = \"{}\"\nhead_interval_secs = 1\n\n\
         [residency]\nallow = [\"FR\"]\nreplicas = {replicas}\ndistinct_sites = {replicas}\n\n\
         [[operators]]\nid = \"op-fr\"\nname = \"Exemple Cloud SAS\"\ncountry = \"FR\"\nownership = {{ FR = 100.0 }}\n",
        shared.join("kms").display(),
        shared.join("audit-keys").join("audit-ed25519.pk8").display()
    );
    for ((id, site), addr) in NODES.iter().zip(addrs) {
        toml.push_str(&node_target(id, *addr, ("FR", "paris", *site), "op-fr"));
    }
    toml
}

/// The `[[targets]]` table of storage node `id` listening on `addr` (https:
/// node links are mutual TLS), at
/// (country, region, site), run by `operator`.
pub fn node_target(
    id: &str,
    addr: std::net::SocketAddr,
    (country, region, site): (&str, &str, &str),
    operator: &str,
) -> String {
    format!(
        "\n[[targets]]\nid = \"{id}\"\nkind = \"node\"\nendpoint = \"https://{addr}\"\ncountry = \"{country}\"\n\
         region = \"{region}\"\nsite = \"{site}\"\noperator = \"{operator}\"\ncapacity = \"100GiB\"\n"
    )
}
