//! The embedded key custodian, the default: a master key in the data
//! directory seals one small file per KEK beside it.
//!
//! Where key material lives and who can read it:
//! - `kms/master.key` (0600): the 256-bit master key, in clear, or sealed by a
//!   passphrase taken from the environment (Argon2id, then AES-256-GCM). In
//!   clear, whoever reads the data directory can read every object: the
//!   passphrase, an HSM (PKCS#11) or a KMIP server are the answers to that.
//! - `kms/keks/<id>.kek` (0600): each KEK sealed by the master key, bound to its id.
//!
//! KEKs live in files of their own rather than in the metadata store because
//! the metadata store is copy-on-write: a deleted record lingers in free pages
//! until they are reused. A KEK file is overwritten with random bytes, synced,
//! then unlinked, so erasing a bucket leaves no copy of its key in the tree
//! (the filesystem's own journal and an SSD's spare blocks are out of reach of
//! any software; the external custodians have no such residue).

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use zeroize::Zeroizing;

use coffre_crypto::kms::{Custody, KekId, Kms, KmsError, KmsResult, KmsStatus, MAX_WRAP_INPUT};
use coffre_crypto::wrap;

const MASTER_MAGIC: &[u8; 4] = b"CFMK";
const KEK_MAGIC: &[u8; 4] = b"CFKK";
const FILE_VERSION: u8 = 1;
const MODE_CLEAR: u8 = 0;
const MODE_PASSPHRASE: u8 = 1;
/// Argon2id cost for sealing the master key: 64 MiB, 3 passes, 1 lane, as
/// RFC 9106's second recommended option; stored in the file so it can change.
const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
const ARGON2_PASSES: u32 = 3;
const ARGON2_LANES: u32 = 1;

type Secret = Zeroizing<[u8; 32]>;

pub struct EmbeddedKms {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    master: Secret,
    sealed_by_passphrase: bool,
    /// Unsealed KEKs, in memory only, so a read does not reopen a file; each
    /// for at most [`KEK_CACHE_TTL`], so that a KEK another gateway sharing
    /// the key directory destroyed stops serving here within that bound.
    cache: Mutex<HashMap<String, (Instant, Secret)>>,
}

/// How long an unsealed KEK is used from memory before its file is read
/// again: the bound on how long a gateway keeps serving a KEK that another
/// gateway destroyed (the PKCS#11 and KMIP custodians keep no cache at all).
pub const KEK_CACHE_TTL: Duration = Duration::from_secs(10);

impl EmbeddedKms {
    /// Opens (or creates) the custodian under `dir`. With a passphrase, a new
    /// master key is sealed by it and an existing one must be sealed by it.
    pub fn open(dir: &Path, passphrase: Option<&str>) -> KmsResult<Arc<Self>> {
        let keks = dir.join("keks");
        fs::create_dir_all(&keks).map_err(|e| io("creating", &keks, e))?;
        restrict(dir, 0o700)?;
        restrict(&keks, 0o700)?;
        let path = dir.join("master.key");
        let master = match fs::read(&path) {
            Ok(bytes) => read_master(&path, &bytes, passphrase)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_master(&path, passphrase)?,
            Err(e) => return Err(io("reading", &path, e)),
        };
        let inner = Inner {
            dir: dir.to_path_buf(),
            master,
            sealed_by_passphrase: passphrase.is_some(),
            cache: Mutex::new(HashMap::new()),
        };
        Ok(Arc::new(Self { inner: Arc::new(inner) }))
    }

    /// Runs file work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> KmsResult<T> + Send + 'static,
    ) -> KmsResult<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| KmsError::Other(format!("key custodian task failed: {e}")))?
    }

    /// A KEK from the in-memory cache, or from its file.
    async fn kek(&self, id: &KekId) -> KmsResult<Secret> {
        if let Some(k) = self.inner.cached(id)? {
            return Ok(k);
        }
        let id = id.clone();
        self.blocking(move |inner| inner.kek(&id)).await
    }
}

impl Inner {
    fn cached(&self, id: &KekId) -> KmsResult<Option<Secret>> {
        let mut cache = self.cache.lock().map_err(|_| poisoned())?;
        match cache.get(&id.0) {
            Some((at, kek)) if at.elapsed() < KEK_CACHE_TTL => Ok(Some(kek.clone())),
            Some(_) => {
                cache.remove(&id.0);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn remember(&self, id: &KekId, kek: Secret) -> KmsResult<()> {
        self.cache.lock().map_err(|_| poisoned())?.insert(id.0.clone(), (Instant::now(), kek));
        Ok(())
    }

    fn kek_path(&self, id: &KekId) -> KmsResult<PathBuf> {
        // Ids are ours (uuids), but a record could be tampered with: never
        // let one name a path outside the key directory.
        let valid = !id.0.is_empty() && id.0.len() <= 64 && id.0.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if !valid {
            return Err(KmsError::NoSuchKey(id.clone()));
        }
        Ok(self.dir.join("keks").join(format!("{}.kek", id.0)))
    }

    fn kek(&self, id: &KekId) -> KmsResult<Secret> {
        let path = self.kek_path(id)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(KmsError::NoSuchKey(id.clone())),
            Err(e) => return Err(io("reading", &path, e)),
        };
        let body = bytes
            .strip_prefix(&[KEK_MAGIC.as_slice(), &[FILE_VERSION]].concat()[..])
            .ok_or_else(|| KmsError::Other(format!("{} is not a KEK file of format {FILE_VERSION}", path.display())))?;
        let plain = wrap::open(&self.master, body, &kek_context(id)).map_err(|_| KmsError::Integrity)?;
        let kek = to_secret(&plain)?;
        self.remember(id, kek.clone())?;
        Ok(kek)
    }

    fn create_blocking(&self) -> KmsResult<KekId> {
        let id = KekId(uuid::Uuid::new_v4().simple().to_string());
        let mut kek = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(kek.as_mut()).map_err(|_| KmsError::Other("random generator failed".into()))?;
        let sealed =
            wrap::seal(&self.master, kek.as_ref(), &kek_context(&id)).map_err(|e| KmsError::Other(e.to_string()))?;
        let path = self.kek_path(&id)?;
        write_private(&path, &[KEK_MAGIC.as_slice(), &[FILE_VERSION], &sealed].concat())?;
        self.remember(&id, kek)?;
        Ok(id)
    }

    fn destroy_blocking(&self, id: &KekId) -> KmsResult<()> {
        self.cache.lock().map_err(|_| poisoned())?.remove(&id.0);
        let path = self.kek_path(id)?;
        let len = match fs::metadata(&path) {
            Ok(m) => m.len() as usize,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io("reading", &path, e)),
        };
        let mut noise = vec![0u8; len];
        aws_lc_rs::rand::fill(&mut noise).map_err(|_| KmsError::Other("random generator failed".into()))?;
        let mut file = OpenOptions::new().write(true).open(&path).map_err(|e| io("opening", &path, e))?;
        file.write_all(&noise).and_then(|()| coffre_disk::sync_file(&file)).map_err(|e| io("overwriting", &path, e))?;
        drop(file);
        fs::remove_file(&path).map_err(|e| io("removing", &path, e))?;
        let dir = coffre_disk::parent_dir(&path);
        coffre_disk::sync_dir(dir).map_err(|e| io("syncing", dir, e))
    }
}

#[async_trait]
impl Kms for EmbeddedKms {
    fn custody(&self) -> Custody {
        Custody::Embedded
    }

    async fn create_kek(&self, _label: &str) -> KmsResult<KekId> {
        self.blocking(Inner::create_blocking).await
    }

    async fn wrap(&self, kek: &KekId, secret: &[u8], context: &[u8]) -> KmsResult<Vec<u8>> {
        if secret.len() > MAX_WRAP_INPUT {
            return Err(KmsError::Other(format!("a wrapped secret is at most {MAX_WRAP_INPUT} bytes")));
        }
        let key = self.kek(kek).await?;
        wrap::seal(&key, secret, context).map_err(|e| KmsError::Other(e.to_string()))
    }

    async fn unwrap(&self, kek: &KekId, wrapped: &[u8], context: &[u8]) -> KmsResult<Zeroizing<Vec<u8>>> {
        let key = self.kek(kek).await?;
        wrap::open(&key, wrapped, context).map_err(|_| KmsError::Integrity)
    }

    async fn destroy_kek(&self, kek: &KekId) -> KmsResult<()> {
        let kek = kek.clone();
        self.blocking(move |inner| inner.destroy_blocking(&kek)).await
    }

    async fn status(&self) -> KmsResult<KmsStatus> {
        self.blocking(Inner::status).await
    }
}

impl Inner {
    fn status(&self) -> KmsResult<KmsStatus> {
        let probe =
            wrap::seal(&self.master, b"probe", b"coffre-kms-probe").map_err(|e| KmsError::Other(e.to_string()))?;
        wrap::open(&self.master, &probe, b"coffre-kms-probe").map_err(|_| KmsError::Integrity)?;
        let keks = fs::read_dir(self.dir.join("keks")).map_err(|e| io("listing", &self.dir, e))?.count();
        let sealing = if self.sealed_by_passphrase {
            "master key sealed by a passphrase (Argon2id)"
        } else {
            "master key in a clear file (0600): anyone reading the data directory reads the data"
        };
        Ok(KmsStatus {
            custody: Custody::Embedded,
            location: self.dir.display().to_string(),
            detail: format!("{sealing}; {keks} key-encryption keys"),
        })
    }
}

fn kek_context(id: &KekId) -> Vec<u8> {
    [b"coffre-kek-v1:".as_slice(), id.0.as_bytes()].concat()
}

fn create_master(path: &Path, passphrase: Option<&str>) -> KmsResult<Secret> {
    let mut master = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(master.as_mut()).map_err(|_| KmsError::Other("random generator failed".into()))?;
    let mut file = vec![];
    file.extend_from_slice(MASTER_MAGIC);
    file.push(FILE_VERSION);
    match passphrase {
        None => {
            file.push(MODE_CLEAR);
            file.extend_from_slice(master.as_ref());
        }
        Some(p) => {
            let mut salt = [0u8; 16];
            aws_lc_rs::rand::fill(&mut salt).map_err(|_| KmsError::Other("random generator failed".into()))?;
            let params = [ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES];
            let key = stretch(p, &salt, params)?;
            file.push(MODE_PASSPHRASE);
            params.iter().for_each(|v| file.extend_from_slice(&v.to_be_bytes()));
            file.extend_from_slice(&salt);
            let sealed =
                wrap::seal(&key, master.as_ref(), b"coffre-master-v1").map_err(|e| KmsError::Other(e.to_string()))?;
            file.extend_from_slice(&sealed);
        }
    }
    write_private(path, &file)?;
    Ok(master)
}

fn read_master(path: &Path, bytes: &[u8], passphrase: Option<&str>) -> KmsResult<Secret> {
    let bad = || KmsError::Other(format!("{} is not a master key file of format {FILE_VERSION}", path.display()));
    if bytes.len() < 6 || &bytes[..4] != MASTER_MAGIC || bytes[4] != FILE_VERSION {
        return Err(bad());
    }
    match (bytes[5], passphrase) {
        (MODE_CLEAR, None) => to_secret(&bytes[6..]),
        (MODE_CLEAR, Some(_)) => Err(KmsError::Other(format!(
            "a passphrase is set but {} is not sealed by one; unset it, or start from an empty data directory",
            path.display()
        ))),
        (MODE_PASSPHRASE, None) => Err(KmsError::Unavailable(format!(
            "{} is sealed by a passphrase: set COFFRE_KMS_PASSPHRASE",
            path.display()
        ))),
        (MODE_PASSPHRASE, Some(p)) => {
            let rest = &bytes[6..];
            if rest.len() < 12 + 16 {
                return Err(bad());
            }
            let num = |i: usize| u32::from_be_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
            let key = stretch(p, &rest[12..28], [num(0), num(4), num(8)])?;
            let plain = wrap::open(&key, &rest[28..], b"coffre-master-v1")
                .map_err(|_| KmsError::Unavailable("the passphrase does not open the master key".into()))?;
            to_secret(&plain)
        }
        _ => Err(bad()),
    }
}

fn stretch(passphrase: &str, salt: &[u8], [memory, passes, lanes]: [u32; 3]) -> KmsResult<Secret> {
    let params = argon2::Params::new(memory, passes, lanes, Some(32))
        .map_err(|e| KmsError::Other(format!("Argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| KmsError::Other(format!("Argon2: {e}")))?;
    Ok(key)
}

fn to_secret(bytes: &[u8]) -> KmsResult<Secret> {
    let array: [u8; 32] = bytes.try_into().map_err(|_| KmsError::Integrity)?;
    Ok(Zeroizing::new(array))
}

/// Creates a file only its owner can read, whole or not at all, durable
/// (name included) before returning.
fn write_private(path: &Path, contents: &[u8]) -> KmsResult<()> {
    coffre_disk::create_private(path, contents).map_err(|e| io("creating", path, e))
}

fn restrict(path: &Path, mode: u32) -> KmsResult<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io("restricting", path, e))
}

fn io(action: &str, path: &Path, e: std::io::Error) -> KmsError {
    KmsError::Unavailable(format!("{action} {}: {e}", path.display()))
}

fn poisoned() -> KmsError {
    KmsError::Other("the key cache lock was poisoned by a panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_wrap_unwrap_and_are_destroyed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kms = EmbeddedKms::open(dir.path(), None).expect("open");
        let kek = kms.create_kek("b").await.expect("create");
        let wrapped = kms.wrap(&kek, &[9u8; 32], b"ctx").await.expect("wrap");
        assert_eq!(kms.unwrap(&kek, &wrapped, b"ctx").await.expect("unwrap").as_slice(), &[9u8; 32]);
        assert!(matches!(kms.unwrap(&kek, &wrapped, b"other").await, Err(KmsError::Integrity)));
        // A second process (a restart) reads the same key from its file.
        let again = EmbeddedKms::open(dir.path(), None).expect("reopen");
        assert_eq!(again.unwrap(&kek, &wrapped, b"ctx").await.expect("unwrap").as_slice(), &[9u8; 32]);
        kms.destroy_kek(&kek).await.expect("destroy");
        kms.destroy_kek(&kek).await.expect("destroy twice");
        let fresh = EmbeddedKms::open(dir.path(), None).expect("reopen");
        assert!(matches!(fresh.unwrap(&kek, &wrapped, b"ctx").await, Err(KmsError::NoSuchKey(_))));
        assert!(matches!(
            fresh.unwrap(&KekId("../../etc/passwd".into()), &wrapped, b"").await,
            Err(KmsError::NoSuchKey(_))
        ));
    }

    #[tokio::test]
    async fn a_passphrase_seals_the_master_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kms = EmbeddedKms::open(dir.path(), Some("correct horse")).expect("open");
        let kek = kms.create_kek("b").await.expect("create");
        let wrapped = kms.wrap(&kek, b"secret", b"").await.expect("wrap");
        assert!(matches!(EmbeddedKms::open(dir.path(), None), Err(KmsError::Unavailable(_))));
        assert!(matches!(EmbeddedKms::open(dir.path(), Some("wrong")), Err(KmsError::Unavailable(_))));
        let again = EmbeddedKms::open(dir.path(), Some("correct horse")).expect("reopen");
        assert_eq!(again.unwrap(&kek, &wrapped, b"").await.expect("unwrap").as_slice(), b"secret");
        let raw = fs::read(dir.path().join("master.key")).expect("read");
        assert!(!raw.windows(32).any(|w| w == again.inner.master.as_ref()), "master key in clear");
    }
}
