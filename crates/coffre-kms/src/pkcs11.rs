//! The PKCS#11 key custodian: bucket KEKs live in a token (an HSM; SoftHSM2 in
//! tests) and every wrap and unwrap is an AES-256-GCM operation run by the token.
//!
//! Key material: each KEK is an AES-256 token object generated on the token,
//! sensitive and non-extractable, so its value never crosses the PKCS#11
//! interface, not even to Coffre; Coffre keeps only its CKA_ID (the [`KekId`])
//! and the wrapped data keys. Nobody can read a KEK through the module; using
//! one takes the token and the user PIN (or the SO PIN, which can reset the
//! user's). SoftHSM2 is weaker: its token directory holds the keys encrypted
//! under keys sealed by the PINs, so whoever has those files and a PIN can
//! recover the KEKs themselves. It is for tests.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use coffre_crypto::kms::{Custody, KekId, Kms, KmsError, KmsResult, KmsStatus, MAX_WRAP_INPUT};

/// The label of the KEK that [`Kms::status`] wraps and unwraps with; created
/// on first use and found again by label, so status leaves one key behind, not
/// one per call.
pub const PROBE_LABEL: &str = "coffre-probe";

/// Sessions open on a token at once. Real HSMs cap sessions per application
/// (and cost a thread each here while busy): beyond this, callers queue.
const MAX_SESSIONS: usize = 8;

/// GCM nonce: 96 bits is the size GCM is defined for without extra hashing.
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const TAG_BITS: u64 = TAG_LEN as u64 * 8;
/// A CKR_AEAD_DECRYPT_FAILED from a PKCS#11 3.0 module: cryptoki 0.12 has no
/// name for it yet.
const CKR_AEAD_DECRYPT_FAILED: u64 = 0x42;

/// Where the token is and how to log in to it.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// The vendor's PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label (CKA_LABEL of the token, as `softhsm2-util --show-slots` prints).
    pub token_label: String,
    /// The token's user PIN.
    pub pin: Zeroizing<String>,
}

// By hand: a derived Debug would print the PIN.
impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"<redacted>")
            .finish()
    }
}

/// A [`Kms`] whose KEKs are AES-256 keys inside a PKCS#11 token.
#[derive(Clone)]
pub struct Pkcs11Kms {
    token: Arc<Token>,
}

impl fmt::Debug for Pkcs11Kms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Kms").field("token", &self.token.describe()).finish()
    }
}

impl Pkcs11Kms {
    /// Loads the module, finds the token by label and logs in as user, so a
    /// missing module, token or wrong PIN fails here with `Unavailable`.
    pub async fn open(config: Pkcs11Config) -> KmsResult<Self> {
        let token = tokio::task::spawn_blocking(move || open_token(&config)).await.map_err(worker_failed)??;
        Ok(Self { token })
    }

    /// Runs `op` on a logged-in session of the token, off the async runtime.
    async fn run<T, F>(&self, op: F) -> KmsResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Token, &Session) -> KmsResult<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.token.permits)
            .acquire_owned()
            .await
            .map_err(|_| KmsError::Other("PKCS#11 session limiter closed".into()))?;
        let token = Arc::clone(&self.token);
        tokio::task::spawn_blocking(move || {
            // Held until the token call returns, even if the caller gave up.
            let _permit = permit;
            token.with_session(op)
        })
        .await
        .map_err(worker_failed)?
    }
}

fn worker_failed(err: tokio::task::JoinError) -> KmsError {
    KmsError::Other(format!("PKCS#11 worker thread failed: {err}"))
}

#[async_trait]
impl Kms for Pkcs11Kms {
    fn custody(&self) -> Custody {
        Custody::Pkcs11
    }

    async fn create_kek(&self, label: &str) -> KmsResult<KekId> {
        let label = label.to_owned();
        self.run(move |token, session| token.generate_kek(session, &label)).await
    }

    async fn wrap(&self, kek: &KekId, secret: &[u8], context: &[u8]) -> KmsResult<Vec<u8>> {
        if secret.is_empty() || secret.len() > MAX_WRAP_INPUT {
            return Err(KmsError::Other(format!("can only wrap 1 to {MAX_WRAP_INPUT} bytes, not {}", secret.len())));
        }
        let (kek, secret, context) = (kek.clone(), Zeroizing::new(secret.to_vec()), context.to_vec());
        self.run(move |token, session| {
            let key = token.key(session, &kek)?;
            token.seal(session, key, &kek, &secret, &context)
        })
        .await
    }

    async fn unwrap(&self, kek: &KekId, wrapped: &[u8], context: &[u8]) -> KmsResult<Zeroizing<Vec<u8>>> {
        let (kek, wrapped, context) = (kek.clone(), wrapped.to_vec(), context.to_vec());
        self.run(move |token, session| {
            let key = token.key(session, &kek)?;
            token.open_sealed(session, key, &kek, &wrapped, &context)
        })
        .await
    }

    async fn destroy_kek(&self, kek: &KekId) -> KmsResult<()> {
        let kek = kek.clone();
        self.run(move |token, session| token.destroy(session, &kek)).await
    }

    async fn status(&self) -> KmsResult<KmsStatus> {
        self.run(|token, session| token.status(session)).await
    }
}

/// One logged-in token, shared by every [`Pkcs11Kms`] of this process that
/// names it: PKCS#11 keeps the login per application and token, not per
/// session, so a second C_Login answers "already logged in" without checking
/// its PIN, and one logout would log out both.
struct Token {
    ctx: Pkcs11,
    slot: Slot,
    module: PathBuf,
    label: String,
    // Kept to log in again after the token dropped our login (reinserted,
    // reset): a Pkcs11Kms must outlive such a blip without a restart.
    pin: Zeroizing<String>,
    idle: Mutex<Vec<Session>>,
    permits: Arc<Semaphore>,
    // Serialises the probe key's find-or-create, so two status calls do not
    // both create one.
    probe: Mutex<()>,
    // Serialises creating and destroying token objects: SoftHSM2 answered
    // concurrent C_GenerateKey calls from one process with CKR_GENERAL_ERROR
    // now and then. Both are rare (bucket creation and deletion).
    writes: Mutex<()>,
}

/// Modules loaded and tokens logged in, for the life of the process. Never
/// finalized or logged out: another Pkcs11Kms may still be using them.
struct Registry {
    modules: HashMap<PathBuf, Pkcs11>,
    tokens: HashMap<(PathBuf, u64), Arc<Token>>,
}

static REGISTRY: LazyLock<Mutex<Registry>> =
    LazyLock::new(|| Mutex::new(Registry { modules: HashMap::new(), tokens: HashMap::new() }));

/// The registry's maps stay valid when a holder panics (entries are only
/// inserted whole), so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open_token(config: &Pkcs11Config) -> KmsResult<Arc<Token>> {
    let module = config
        .module
        .canonicalize()
        .map_err(|err| KmsError::Unavailable(format!("PKCS#11 module {}: {err}", config.module.display())))?;
    // Held throughout, so two opens of one token cannot both log in.
    let mut registry = lock(&REGISTRY);
    let ctx = registry.module(&module)?;
    let slot = find_slot(&ctx, &module, &config.token_label)?;
    let key = (module.clone(), slot.id());
    if let Some(token) = registry.tokens.get(&key) {
        return token.check_pin(&config.pin).map(|()| Arc::clone(token));
    }
    let token = Arc::new(Token {
        ctx,
        slot,
        module,
        label: config.token_label.clone(),
        pin: config.pin.clone(),
        idle: Mutex::new(Vec::new()),
        permits: Arc::new(Semaphore::new(MAX_SESSIONS)),
        probe: Mutex::new(()),
        writes: Mutex::new(()),
    });
    // A first session logs in: a wrong PIN fails now, not on the first wrap.
    token.with_session(|_, _| Ok(()))?;
    registry.tokens.insert(key, Arc::clone(&token));
    Ok(token)
}

impl Registry {
    fn module(&mut self, path: &Path) -> KmsResult<Pkcs11> {
        if let Some(ctx) = self.modules.get(path) {
            return Ok(ctx.clone());
        }
        let unavailable = |err: CkError| KmsError::Unavailable(format!("PKCS#11 module {}: {err}", path.display()));
        let ctx = Pkcs11::new(path).map_err(unavailable)?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            // Someone else in this process (another library) initialised it first.
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(err) => return Err(unavailable(err)),
        }
        self.modules.insert(path.to_owned(), ctx.clone());
        Ok(ctx)
    }
}

fn find_slot(ctx: &Pkcs11, module: &Path, label: &str) -> KmsResult<Slot> {
    let unavailable = |err: CkError| KmsError::Unavailable(format!("PKCS#11 module {}: {err}", module.display()));
    let mut seen = Vec::new();
    // Initialised tokens only: SoftHSM2 always offers an empty one, label ''.
    for slot in ctx.get_slots_with_initialized_token().map_err(unavailable)? {
        let info = ctx.get_token_info(slot).map_err(unavailable)?;
        if info.label() == label {
            return Ok(slot);
        }
        seen.push(format!("'{}'", info.label()));
    }
    let seen = if seen.is_empty() { "none".to_owned() } else { seen.join(", ") };
    Err(KmsError::Unavailable(format!(
        "no token labelled '{label}' in PKCS#11 module {} (tokens present: {seen})",
        module.display()
    )))
}

impl Token {
    fn describe(&self) -> String {
        format!("token '{}' in {} slot {}", self.label, self.module.display(), self.slot.id())
    }

    fn check_pin(&self, pin: &str) -> KmsResult<()> {
        if aws_lc_rs::constant_time::verify_slices_are_equal(self.pin.as_bytes(), pin.as_bytes()).is_ok() {
            return Ok(());
        }
        // The token already let us in with another PIN and would not check this
        // one (C_Login answers "already logged in"): one of the two is wrong.
        Err(KmsError::Unavailable(format!(
            "{}: PIN refused: this process is logged in to the token with a different PIN",
            self.describe()
        )))
    }

    /// Runs `op` on a pooled session. A session that saw a token error is
    /// closed rather than pooled: it may be dead (token removed) or left with
    /// an operation half done.
    fn with_session<T>(&self, op: impl FnOnce(&Self, &Session) -> KmsResult<T>) -> KmsResult<T> {
        let session = self.checkout()?;
        let result = op(self, &session);
        match &result {
            Ok(_) | Err(KmsError::NoSuchKey(_)) => lock(&self.idle).push(session),
            Err(err) => tracing::debug!(token = %self.describe(), %err, "closing a PKCS#11 session after an error"),
        }
        result
    }

    fn checkout(&self) -> KmsResult<Session> {
        if let Some(session) = lock(&self.idle).pop() {
            return Ok(session);
        }
        let session = self.ctx.open_rw_session(self.slot).map_err(|err| self.error(err, None))?;
        self.ensure_login(&session)?;
        Ok(session)
    }

    /// Logs the token in unless it already is; says whether it had to.
    fn ensure_login(&self, session: &Session) -> KmsResult<bool> {
        let info = session.get_session_info().map_err(|err| self.error(err, None))?;
        match info.session_state() {
            SessionState::RoUser | SessionState::RwUser => return Ok(false),
            SessionState::RwSecurityOfficer => {
                return Err(KmsError::Unavailable(format!(
                    "{}: logged in as security officer, not user, by this process",
                    self.describe()
                )));
            }
            SessionState::RoPublic | SessionState::RwPublic => {}
        }
        let pin = AuthPin::from(self.pin.as_str());
        match session.login(UserType::User, Some(&pin)) {
            // Another thread's session logged the token in meanwhile.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(true),
            Err(CkError::Pkcs11(
                rv @ (RvError::PinIncorrect
                | RvError::PinInvalid
                | RvError::PinLenRange
                | RvError::PinExpired
                | RvError::PinLocked
                | RvError::UserPinNotInitialized),
                _,
            )) => Err(KmsError::Unavailable(format!(
                "{}: the token refused the user PIN: C_Login failed: {}",
                self.describe(),
                rv_name(rv)
            ))),
            Err(err) => Err(self.error(err, None)),
        }
    }

    /// Maps a token error: anything about the token, session or PIN means the
    /// custodian is unavailable; a vanished key handle means the key is gone.
    fn error(&self, err: CkError, kek: Option<&KekId>) -> KmsError {
        let CkError::Pkcs11(rv, function) = err else {
            return KmsError::Other(format!("{}: {err}", self.describe()));
        };
        let what = format!("{}: C_{function:?} failed: {}", self.describe(), rv_name(rv));
        if let (Some(kek), RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid) = (kek, rv) {
            // Destroyed between our lookup and its use.
            return KmsError::NoSuchKey(kek.clone());
        }
        match rv {
            RvError::UserNotLoggedIn
            | RvError::UserAnotherAlreadyLoggedIn
            | RvError::TokenNotPresent
            | RvError::SlotIdInvalid
            | RvError::TokenNotRecognized
            | RvError::DeviceRemoved
            | RvError::DeviceError
            | RvError::DeviceMemory
            | RvError::SessionClosed
            | RvError::SessionHandleInvalid
            | RvError::SessionCount
            | RvError::CryptokiNotInitialized
            | RvError::HostMemory
            | RvError::GeneralError
            | RvError::FunctionFailed
            | RvError::FunctionCanceled => KmsError::Unavailable(what),
            _ => KmsError::Other(what),
        }
    }

    fn generate_kek(&self, session: &Session, label: &str) -> KmsResult<KekId> {
        let _writing = self.writes.lock().map_err(|_| KmsError::Other("PKCS#11 write lock poisoned".into()))?;
        // SoftHSM2's file store (2.6.1) sometimes fails a key generation that
        // races another session's reload of the token, with CKR_GENERAL_ERROR
        // or CKR_TEMPLATE_INCONSISTENT for a template it accepts every other
        // time (about one test run in twenty); the same call a moment later
        // succeeds. A few tries, each under a fresh id so that a half-made
        // object of a failed try can never share a KEK's id, then the error.
        let mut attempt = 0u64;
        loop {
            let id = uuid::Uuid::new_v4();
            let template = kek_template(label, id.as_bytes());
            match session.generate_key(&Mechanism::AesKeyGen, &template) {
                Ok(_) => return Ok(KekId(hex(id.as_bytes()))),
                Err(CkError::Pkcs11(RvError::GeneralError | RvError::TemplateInconsistent, _)) if attempt < 6 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20 * attempt));
                }
                Err(err) => return Err(self.error(err, None)),
            }
        }
    }

    /// The token object of `kek`.
    fn key(&self, session: &Session, kek: &KekId) -> KmsResult<ObjectHandle> {
        let no_such_key = || KmsError::NoSuchKey(kek.clone());
        let id = parse_hex(&kek.0).ok_or_else(no_such_key)?;
        let found = self.find_keys_checked(session, &id)?;
        match found.as_slice() {
            [] => Err(no_such_key()),
            [key] => Ok(*key),
            _ => Err(KmsError::Other(format!(
                "{}: {} keys share the id of KEK {kek}; refusing to pick one",
                self.describe(),
                found.len()
            ))),
        }
    }

    /// Finds the keys with CKA_ID `id`, believing "none" only from a token
    /// that is still there and still has us logged in: one that lost its
    /// store (SoftHSM2 whose token directory went) or dropped our login
    /// shows no private objects at all, and a false NoSuchKey reads as
    /// crypto-erasure to the caller.
    fn find_keys_checked(&self, session: &Session, id: &[u8]) -> KmsResult<Vec<ObjectHandle>> {
        let found = self.find_keys(session, id)?;
        if !found.is_empty() {
            return Ok(found);
        }
        self.ctx.get_token_info(self.slot).map_err(|err| self.error(err, None))?;
        if self.ensure_login(session)? { self.find_keys(session, id) } else { Ok(found) }
    }

    fn find_keys(&self, session: &Session, id: &[u8]) -> KmsResult<Vec<ObjectHandle>> {
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Id(id.to_vec()),
        ];
        session.find_objects(&template).map_err(|err| self.error(err, None))
    }

    /// AES-256-GCM on the token: IV || ciphertext || tag.
    fn seal(&self, session: &Session, key: ObjectHandle, kek: &KekId, secret: &[u8], aad: &[u8]) -> KmsResult<Vec<u8>> {
        // Random IVs are safe for 2^32 wraps per KEK, far more than one bucket's
        // data keys. Some HSMs in FIPS mode replace a caller's IV with their own
        // and write it back through the parameters: `iv` then holds theirs.
        let mut iv = [0u8; IV_LEN];
        aws_lc_rs::rand::fill(&mut iv).map_err(|_| KmsError::Other("no randomness for a GCM IV".into()))?;
        let sealed = {
            let params = GcmParams::new(&mut iv, aad, TAG_BITS.into()).map_err(|err| self.error(err, None))?;
            session.encrypt(&Mechanism::AesGcm(params), key, secret).map_err(|err| self.error(err, Some(kek)))?
        };
        let mut wrapped = Vec::with_capacity(IV_LEN + sealed.len());
        wrapped.extend_from_slice(&iv);
        wrapped.extend_from_slice(&sealed);
        Ok(wrapped)
    }

    fn open_sealed(
        &self,
        session: &Session,
        key: ObjectHandle,
        kek: &KekId,
        wrapped: &[u8],
        aad: &[u8],
    ) -> KmsResult<Zeroizing<Vec<u8>>> {
        let (iv, sealed) = split_blob(wrapped).ok_or(KmsError::Integrity)?;
        match gcm_decrypt(session, key, iv, sealed, aad) {
            Ok(secret) => Ok(secret),
            Err(CkError::Pkcs11(rv, _)) if is_auth_failure(rv) => Err(KmsError::Integrity),
            Err(err @ CkError::Pkcs11(RvError::GeneralError | RvError::FunctionFailed, _)) => {
                if self.self_check(session, key, kek) {
                    Err(KmsError::Integrity)
                } else {
                    Err(self.error(err, Some(kek)))
                }
            }
            Err(err) => Err(self.error(err, Some(kek))),
        }
    }

    /// SoftHSM2 (2.6) answers a GCM tag mismatch with CKR_GENERAL_ERROR, the
    /// same code as a broken token. A fresh round trip under the same key
    /// tells them apart: if it works, the token is fine and the blob was bad.
    fn self_check(&self, session: &Session, key: ObjectHandle, kek: &KekId) -> bool {
        const AAD: &[u8] = b"coffre-selfcheck";
        let probe = [0x5a; 32];
        let Ok(blob) = self.seal(session, key, kek, &probe, AAD) else {
            return false;
        };
        split_blob(&blob)
            .is_some_and(|(iv, sealed)| gcm_decrypt(session, key, iv, sealed, AAD).is_ok_and(|back| *back == probe))
    }

    fn destroy(&self, session: &Session, kek: &KekId) -> KmsResult<()> {
        let Some(id) = parse_hex(&kek.0) else {
            return Ok(()); // not an id we could have made: nothing to destroy
        };
        let _writing = self.writes.lock().map_err(|_| KmsError::Other("PKCS#11 write lock poisoned".into()))?;
        for key in self.find_keys_checked(session, &id)? {
            match session.destroy_object(key) {
                // Destroyed by a concurrent call: the outcome we want.
                Ok(()) | Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => {}
                Err(err) => return Err(self.error(err, None)),
            }
        }
        Ok(())
    }

    fn status(&self, session: &Session) -> KmsResult<KmsStatus> {
        let info = self.ctx.get_token_info(self.slot).map_err(|err| self.error(err, None))?;
        let kek = self.probe_key(session)?;
        let key = self.key(session, &kek)?;
        let mut secret = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(secret.as_mut()).map_err(|_| KmsError::Other("no randomness for the probe".into()))?;
        let wrapped = self.seal(session, key, &kek, secret.as_ref(), PROBE_LABEL.as_bytes())?;
        let back = self.open_sealed(session, key, &kek, &wrapped, PROBE_LABEL.as_bytes())?;
        if back.as_slice() != secret.as_ref() {
            return Err(KmsError::Other(format!("{}: probe round trip returned other bytes", self.describe())));
        }
        Ok(KmsStatus {
            custody: Custody::Pkcs11,
            location: format!("{} slot {}", self.module.display(), self.slot.id()),
            detail: format!(
                "token '{}' ({} {}, serial {}); AES-256-GCM wrap/unwrap round trip ok",
                info.label(),
                info.manufacturer_id(),
                info.model(),
                info.serial_number()
            ),
        })
    }

    /// The probe KEK, found by label or created once.
    fn probe_key(&self, session: &Session) -> KmsResult<KekId> {
        let _guard = lock(&self.probe);
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Token(true),
            Attribute::Label(PROBE_LABEL.as_bytes().to_vec()),
        ];
        let found = session.find_objects(&template).map_err(|err| self.error(err, None))?;
        let Some(&key) = found.first() else {
            return self.generate_kek(session, PROBE_LABEL);
        };
        let attrs =
            session.get_attributes(key, &[cryptoki::object::AttributeType::Id]).map_err(|err| self.error(err, None))?;
        match attrs.as_slice() {
            [Attribute::Id(id)] => Ok(KekId(hex(id))),
            _ => Err(KmsError::Other(format!("{}: the probe key has no CKA_ID", self.describe()))),
        }
    }
}

/// A KEK's attributes: usable for encrypt/decrypt on the token and nothing
/// else, never readable, private to the logged-in user.
fn kek_template(label: &str, id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ]
}

/// Splits IV || ciphertext || tag; `None` for a blob too short or too long
/// to be anything [`Token::seal`] made (no need to ask the token about those).
fn split_blob(wrapped: &[u8]) -> Option<([u8; IV_LEN], &[u8])> {
    if wrapped.len() <= IV_LEN + TAG_LEN || wrapped.len() > IV_LEN + MAX_WRAP_INPUT + TAG_LEN {
        return None;
    }
    let (iv, sealed) = wrapped.split_at(IV_LEN);
    Some((iv.try_into().ok()?, sealed))
}

fn gcm_decrypt(
    session: &Session,
    key: ObjectHandle,
    mut iv: [u8; IV_LEN],
    sealed: &[u8],
    aad: &[u8],
) -> cryptoki::error::Result<Zeroizing<Vec<u8>>> {
    let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())?;
    session.decrypt(&Mechanism::AesGcm(params), key, sealed).map(Zeroizing::new)
}

fn is_auth_failure(rv: RvError) -> bool {
    match rv {
        RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange => true,
        RvError::UnknownErrorCode(code) => code == CKR_AEAD_DECRYPT_FAILED,
        _ => false,
    }
}

/// The spec's name ("CKR_PIN_INCORRECT", what HSM manuals index their
/// troubleshooting by) rebuilt from cryptoki's variant name, rather than
/// cryptoki's paragraph-long Display text.
fn rv_name(rv: RvError) -> String {
    match rv {
        RvError::VendorDefined(code) | RvError::UnknownErrorCode(code) => format!("CKR 0x{code:08x}"),
        rv => {
            let mut name = String::from("CKR");
            for c in format!("{rv:?}").chars() {
                if c.is_ascii_uppercase() {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    // CKA_ID has no fixed size, but ours are 16 bytes; 64 leaves room for
    // keys made by other tools without letting any string through.
    if text.is_empty()
        || !text.len().is_multiple_of(2)
        || text.len() > 128
        || !text.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let bytes = [0x00, 0x7f, 0xff, 0x10];
        assert_eq!(parse_hex(&hex(&bytes)).as_deref(), Some(&bytes[..]));
        assert_eq!(parse_hex("ABcd").as_deref(), Some(&[0xab, 0xcd][..]));
        for junk in ["", "abc", "zz", "+1", "é1", &"00".repeat(65)] {
            assert_eq!(parse_hex(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn config_debug_hides_the_pin() {
        let config =
            Pkcs11Config { module: "/m.so".into(), token_label: "t".into(), pin: Zeroizing::new("hunter2".into()) };
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn return_codes_read_as_in_the_spec() {
        assert_eq!(rv_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(rv_name(RvError::EncryptedDataLenRange), "CKR_ENCRYPTED_DATA_LEN_RANGE");
        assert_eq!(rv_name(RvError::UnknownErrorCode(0x42)), "CKR 0x00000042");
    }
}
