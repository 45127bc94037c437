//! The PKCS#11 custodian against a real token: SoftHSM2 in a private token
//! directory made by `scripts/softhsm-token.sh`, which prints the variables
//! these tests read. Without them every test says it is skipped and passes.

mod common;

use std::sync::Arc;

use coffre_crypto::kms::{Custody, KekId, Kms, KmsError};
use coffre_kms::pkcs11::{PROBE_LABEL, Pkcs11Config, Pkcs11Kms};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use cryptoki::session::{Session, SessionState};
use zeroize::Zeroizing;

use common::config;

async fn open() -> Option<(Pkcs11Config, Pkcs11Kms)> {
    let config = config()?;
    let kms = Pkcs11Kms::open(config.clone()).await.expect("open the test token");
    Some((config, kms))
}

fn assert_integrity<T: std::fmt::Debug>(result: Result<T, KmsError>, what: &str) {
    assert!(matches!(result, Err(KmsError::Integrity)), "{what}: expected Integrity, got {result:?}");
}

fn assert_no_such_key<T: std::fmt::Debug>(result: Result<T, KmsError>, kek: &KekId) {
    match result {
        Err(KmsError::NoSuchKey(id)) => assert_eq!(&id, kek),
        other => panic!("expected NoSuchKey({kek}), got {other:?}"),
    }
}

#[tokio::test]
async fn wrap_unwrap_round_trip() {
    let Some((_, kms)) = open().await else { return };
    assert_eq!(kms.custody(), Custody::Pkcs11);
    let kek = kms.create_kek("round-trip").await.unwrap();
    assert_eq!(kek.0.len(), 32, "a uuid's 16 bytes in hex: {kek}");

    for secret in [&[7u8][..], &[0x42; 32], &[0xff; 64]] {
        let wrapped = kms.wrap(&kek, secret, b"bucket=a").await.unwrap();
        assert_eq!(wrapped.len(), 12 + secret.len() + 16, "IV || ciphertext || tag");
        if secret.len() >= 16 {
            // A one-byte ciphertext equals its plaintext one time in 256.
            assert_ne!(&wrapped[12..12 + secret.len()], secret, "the secret must not appear in clear");
        }
        let back = kms.unwrap(&kek, &wrapped, b"bucket=a").await.unwrap();
        assert_eq!(back.as_slice(), secret);
    }
    // Fresh IVs: the same secret never wraps to the same bytes.
    let one = kms.wrap(&kek, b"same", b"").await.unwrap();
    let two = kms.wrap(&kek, b"same", b"").await.unwrap();
    assert_ne!(one, two);
    kms.destroy_kek(&kek).await.unwrap();
}

#[tokio::test]
async fn wrap_refuses_empty_and_oversized_secrets() {
    let Some((_, kms)) = open().await else { return };
    let kek = kms.create_kek("sizes").await.unwrap();
    for len in [0, 65] {
        let result = kms.wrap(&kek, &vec![1; len], b"").await;
        assert!(matches!(result, Err(KmsError::Other(_))), "{len} bytes: {result:?}");
    }
    kms.destroy_kek(&kek).await.unwrap();
}

#[tokio::test]
async fn wrong_context_is_integrity() {
    let Some((_, kms)) = open().await else { return };
    let kek = kms.create_kek("context").await.unwrap();
    let wrapped = kms.wrap(&kek, &[1; 32], b"bucket=a").await.unwrap();
    assert_integrity(kms.unwrap(&kek, &wrapped, b"bucket=b").await, "other context");
    assert_integrity(kms.unwrap(&kek, &wrapped, b"").await, "empty context");
    // A failed unwrap leaves the custodian usable.
    assert_eq!(kms.unwrap(&kek, &wrapped, b"bucket=a").await.unwrap().as_slice(), &[1; 32]);
    kms.destroy_kek(&kek).await.unwrap();
}

#[tokio::test]
async fn tampered_blob_is_integrity() {
    let Some((_, kms)) = open().await else { return };
    let kek = kms.create_kek("tamper").await.unwrap();
    let wrapped = kms.wrap(&kek, &[9; 32], b"ctx").await.unwrap();
    // A byte of the IV, of the ciphertext, of the tag.
    for at in [0, 12, wrapped.len() - 1] {
        let mut bad = wrapped.clone();
        bad[at] ^= 0x01;
        assert_integrity(kms.unwrap(&kek, &bad, b"ctx").await, &format!("byte {at} flipped"));
    }
    assert_integrity(kms.unwrap(&kek, &wrapped[..wrapped.len() - 1], b"ctx").await, "truncated");
    assert_integrity(kms.unwrap(&kek, &wrapped[..20], b"ctx").await, "shorter than IV and tag");
    assert_integrity(kms.unwrap(&kek, &[], b"ctx").await, "empty");
    let mut long = wrapped.clone();
    long.extend_from_slice(&[0; 64]);
    assert_integrity(kms.unwrap(&kek, &long, b"ctx").await, "longer than any wrap");
    kms.destroy_kek(&kek).await.unwrap();
}

#[tokio::test]
async fn destroyed_key_is_gone_and_destroy_is_idempotent() {
    let Some((_, kms)) = open().await else { return };
    let kek = kms.create_kek("destroy").await.unwrap();
    let wrapped = kms.wrap(&kek, &[3; 32], b"ctx").await.unwrap();
    kms.destroy_kek(&kek).await.unwrap();
    assert_no_such_key(kms.unwrap(&kek, &wrapped, b"ctx").await, &kek);
    assert_no_such_key(kms.wrap(&kek, &[3; 32], b"ctx").await, &kek);
    kms.destroy_kek(&kek).await.unwrap();

    for never in ["00112233445566778899aabbccddeeff", "not hex", ""] {
        let never = KekId(never.into());
        kms.destroy_kek(&never).await.unwrap();
        assert_no_such_key(kms.unwrap(&never, &wrapped, b"ctx").await, &never);
    }
}

#[tokio::test]
async fn keks_cannot_unwrap_each_other() {
    let Some((_, kms)) = open().await else { return };
    let a = kms.create_kek("tenant-a").await.unwrap();
    let b = kms.create_kek("tenant-b").await.unwrap();
    assert_ne!(a, b);
    let under_a = kms.wrap(&a, &[5; 32], b"ctx").await.unwrap();
    let under_b = kms.wrap(&b, &[5; 32], b"ctx").await.unwrap();
    assert_integrity(kms.unwrap(&b, &under_a, b"ctx").await, "A's blob under B");
    assert_integrity(kms.unwrap(&a, &under_b, b"ctx").await, "B's blob under A");
    // Destroying one leaves the other intact.
    kms.destroy_kek(&a).await.unwrap();
    assert_eq!(kms.unwrap(&b, &under_b, b"ctx").await.unwrap().as_slice(), &[5; 32]);
    kms.destroy_kek(&b).await.unwrap();
}

/// A session of our own on the test token: the Pkcs11Kms of this process has
/// logged the token in, and PKCS#11 login state is per application, so this
/// session sees the private key objects too.
fn raw_session(config: &Pkcs11Config) -> Session {
    let ctx = Pkcs11::new(&config.module).unwrap();
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(err) => panic!("C_Initialize: {err}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|slot| ctx.get_token_info(*slot).unwrap().label() == config.token_label)
        .expect("the test token");
    let session = ctx.open_ro_session(slot).unwrap();
    assert_eq!(session.get_session_info().unwrap().session_state(), SessionState::RoUser);
    session
}

fn id_bytes(kek: &KekId) -> Vec<u8> {
    (0..kek.0.len()).step_by(2).map(|i| u8::from_str_radix(&kek.0[i..i + 2], 16).unwrap()).collect()
}

#[tokio::test]
async fn key_value_never_leaves_the_token() {
    let Some((config, kms)) = open().await else { return };
    let kek = kms.create_kek("sealed-label").await.unwrap();
    let session = raw_session(&config);
    let found =
        session.find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Id(id_bytes(&kek))]).unwrap();
    let [key] = found.as_slice() else { panic!("one object for {kek}, found {}", found.len()) };

    // C_GetAttributeValue(CKA_VALUE) is refused: CKR_ATTRIBUTE_SENSITIVE.
    let info = session.get_attribute_info(*key, &[AttributeType::Value]).unwrap();
    assert!(matches!(info.as_slice(), [AttributeInfo::Sensitive]), "CKA_VALUE: {info:?}");
    assert!(session.get_attributes(*key, &[AttributeType::Value]).unwrap().is_empty());

    let attrs = session
        .get_attributes(
            *key,
            &[
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sensitive,
                AttributeType::AlwaysSensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::Local,
                AttributeType::KeyType,
                AttributeType::ValueLen,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
                AttributeType::Wrap,
                AttributeType::Label,
            ],
        )
        .unwrap();
    for expected in [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::AlwaysSensitive(true),
        Attribute::Extractable(false),
        Attribute::NeverExtractable(true),
        // Generated on the token, not imported.
        Attribute::Local(true),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Label(b"sealed-label".to_vec()),
    ] {
        assert!(attrs.contains(&expected), "{expected:?} missing from {attrs:?}");
    }
    drop(session);
    kms.destroy_kek(&kek).await.unwrap();
}

#[tokio::test]
async fn status_round_trips_under_one_probe_key() {
    let Some((config, kms)) = open().await else { return };
    let first = kms.status().await.unwrap();
    assert_eq!(first.custody, Custody::Pkcs11);
    assert!(first.location.contains("softhsm") || first.location.contains(".so"), "{}", first.location);
    assert!(first.detail.contains(&config.token_label), "{}", first.detail);
    kms.status().await.unwrap();

    let session = raw_session(&config);
    let probes = session
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Label(PROBE_LABEL.as_bytes().to_vec())])
        .unwrap();
    assert_eq!(probes.len(), 1, "status reuses its probe key");
}

#[tokio::test]
async fn wrong_pin_is_unavailable() {
    let Some(config) = config() else { return };
    let wrong = Pkcs11Config { pin: Zeroizing::new("not-the-pin-0000".into()), ..config.clone() };
    // Before and after this process logged in with the right PIN: the first
    // may reach C_Login (CKR_PIN_INCORRECT), the second never does.
    for round in ["before", "after"] {
        match Pkcs11Kms::open(wrong.clone()).await {
            Err(KmsError::Unavailable(message)) => {
                assert!(message.contains("PIN"), "{round}: {message}");
                assert!(!message.contains(wrong.pin.as_str()), "{round}: the PIN leaked: {message}");
            }
            other => panic!("{round}: expected Unavailable, got {other:?}"),
        }
        Pkcs11Kms::open(config.clone()).await.unwrap();
    }
}

#[tokio::test]
async fn missing_module_or_token_is_unavailable() {
    let Some(config) = config() else { return };
    let no_module = Pkcs11Config { module: "/nonexistent/libpkcs11.so".into(), ..config.clone() };
    let no_token = Pkcs11Config { token_label: "no-such-token".into(), ..config };
    for (what, config) in [("module", no_module), ("token", no_token)] {
        match Pkcs11Kms::open(config).await {
            Err(KmsError::Unavailable(message)) => println!("{what}: {message}"),
            other => panic!("missing {what}: expected Unavailable, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_wraps_round_trip() {
    let Some((_, kms)) = open().await else { return };
    let kms = Arc::new(kms);
    let kek = kms.create_kek("concurrent").await.unwrap();
    let tasks: Vec<_> = (0..100u8)
        .map(|i| {
            let (kms, kek) = (Arc::clone(&kms), kek.clone());
            tokio::spawn(async move {
                let secret = [i; 32];
                let context = format!("object-{i}");
                let wrapped = kms.wrap(&kek, &secret, context.as_bytes()).await?;
                let back = kms.unwrap(&kek, &wrapped, context.as_bytes()).await?;
                assert_eq!(back.as_slice(), &secret);
                Ok::<_, KmsError>(wrapped)
            })
        })
        .collect();
    let mut blobs = Vec::new();
    for task in tasks {
        blobs.push(task.await.unwrap().unwrap());
    }
    blobs.sort();
    blobs.dedup();
    assert_eq!(blobs.len(), 100);
    kms.destroy_kek(&kek).await.unwrap();
}
