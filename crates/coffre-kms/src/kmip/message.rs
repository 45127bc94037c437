//! KMIP request and response messages: one batch item each way, built and
//! read with the TTLV codec.

use zeroize::Zeroizing;

use super::spec::{self, Operation, tag};
use super::ttlv::{Item, TtlvError, Value};

/// Length of the GCM tag this custodian asks for and accepts.
pub const GCM_TAG_LEN: usize = 16;

/// One operation and its request payload.
pub struct Request {
    pub op: Operation,
    payload: Vec<Item>,
}

impl Request {
    /// A fresh AES-256 key that may only encrypt and decrypt, named `label`.
    pub fn create_aes256(label: &str) -> Self {
        let attributes = vec![
            attribute("Cryptographic Algorithm", Value::Enumeration(spec::CRYPTOGRAPHIC_ALGORITHM_AES)),
            attribute("Cryptographic Length", Value::Integer(256)),
            attribute("Cryptographic Usage Mask", Value::Integer(spec::USAGE_MASK_ENCRYPT | spec::USAGE_MASK_DECRYPT)),
            attribute(
                "Name",
                Value::Structure(vec![
                    Item::text(tag::NAME_VALUE, label),
                    Item::enumeration(tag::NAME_TYPE, spec::NAME_TYPE_UNINTERPRETED_TEXT),
                ]),
            ),
        ];
        Self {
            op: Operation::Create,
            payload: vec![
                Item::enumeration(tag::OBJECT_TYPE, spec::OBJECT_TYPE_SYMMETRIC_KEY),
                Item::structure(tag::TEMPLATE_ATTRIBUTE, attributes),
            ],
        }
    }

    pub fn activate(uid: &str) -> Self {
        Self { op: Operation::Activate, payload: vec![Item::text(tag::UNIQUE_IDENTIFIER, uid)] }
    }

    /// Revoked for "cessation of operation": retired, not compromised.
    pub fn revoke(uid: &str) -> Self {
        let reason = Item::structure(
            tag::REVOCATION_REASON,
            vec![Item::enumeration(tag::REVOCATION_REASON_CODE, spec::REVOCATION_CESSATION_OF_OPERATION)],
        );
        Self { op: Operation::Revoke, payload: vec![Item::text(tag::UNIQUE_IDENTIFIER, uid), reason] }
    }

    pub fn destroy(uid: &str) -> Self {
        Self { op: Operation::Destroy, payload: vec![Item::text(tag::UNIQUE_IDENTIFIER, uid)] }
    }

    pub fn query_server_information() -> Self {
        Self {
            op: Operation::Query,
            payload: vec![Item::enumeration(tag::QUERY_FUNCTION, spec::QUERY_SERVER_INFORMATION)],
        }
    }

    /// AES-GCM under the key `uid`, with the caller's IV so that the client,
    /// not the server, is sure of its freshness.
    pub fn encrypt_gcm(uid: &str, plaintext: &[u8], iv: &[u8], aad: &[u8]) -> Self {
        Self {
            op: Operation::Encrypt,
            payload: vec![
                Item::text(tag::UNIQUE_IDENTIFIER, uid),
                gcm_parameters(),
                Item::bytes(tag::DATA, plaintext),
                Item::bytes(tag::IV_COUNTER_NONCE, iv),
                Item::bytes(tag::AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA, aad),
            ],
        }
    }

    pub fn decrypt_gcm(uid: &str, ciphertext: &[u8], iv: &[u8], aad: &[u8], gcm_tag: &[u8]) -> Self {
        Self {
            op: Operation::Decrypt,
            payload: vec![
                Item::text(tag::UNIQUE_IDENTIFIER, uid),
                gcm_parameters(),
                Item::bytes(tag::DATA, ciphertext),
                Item::bytes(tag::IV_COUNTER_NONCE, iv),
                Item::bytes(tag::AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA, aad),
                Item::bytes(tag::AUTHENTICATED_ENCRYPTION_TAG, gcm_tag),
            ],
        }
    }

    /// The whole request message, header and one batch item.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, TtlvError> {
        let header = Item::structure(
            tag::REQUEST_HEADER,
            vec![
                Item::structure(
                    tag::PROTOCOL_VERSION,
                    vec![
                        Item::integer(tag::PROTOCOL_VERSION_MAJOR, spec::PROTOCOL_MAJOR),
                        Item::integer(tag::PROTOCOL_VERSION_MINOR, spec::PROTOCOL_MINOR),
                    ],
                ),
                Item::integer(tag::BATCH_COUNT, 1),
            ],
        );
        let batch_item = Item::structure(
            tag::BATCH_ITEM,
            vec![
                Item::enumeration(tag::OPERATION, self.op.code()),
                Item::structure(tag::REQUEST_PAYLOAD, self.payload.clone()),
            ],
        );
        Item::structure(tag::REQUEST_MESSAGE, vec![header, batch_item]).to_bytes()
    }
}

fn attribute(name: &str, value: Value) -> Item {
    Item::structure(tag::ATTRIBUTE, vec![Item::text(tag::ATTRIBUTE_NAME, name), Item::new(tag::ATTRIBUTE_VALUE, value)])
}

fn gcm_parameters() -> Item {
    // The order is the spec's; PyKMIP reads the fields in that order only.
    Item::structure(
        tag::CRYPTOGRAPHIC_PARAMETERS,
        vec![
            Item::enumeration(tag::BLOCK_CIPHER_MODE, spec::BLOCK_CIPHER_MODE_GCM),
            Item::enumeration(tag::CRYPTOGRAPHIC_ALGORITHM, spec::CRYPTOGRAPHIC_ALGORITHM_AES),
            Item::integer(tag::TAG_LENGTH, GCM_TAG_LEN as i32),
        ],
    )
}

/// The server's refusal of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub op: Operation,
    pub reason: Option<u32>,
    pub message: Option<String>,
}

impl Failure {
    pub fn has_reason(&self, code: u32) -> bool {
        self.reason == Some(code)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed", self.op.name())?;
        if let Some(code) = self.reason {
            write!(f, ": {} (0x{code:X})", spec::reason_name(code))?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

/// What a well-formed response said.
#[derive(Debug)]
pub enum Outcome {
    /// The operation's response payload (some operations send none).
    Success(Option<Item>),
    Failure(Failure),
}

/// A response that does not follow the protocol.
#[derive(Debug, thiserror::Error)]
#[error("malformed response to {op}: {detail}")]
pub struct Malformed {
    pub op: &'static str,
    pub detail: String,
}

/// Reads the response to a one-item request for `op`.
pub fn decode_response(op: Operation, bytes: &[u8]) -> Result<Outcome, Malformed> {
    let malformed = |detail: String| Malformed { op: op.name(), detail };
    let message = Item::decode(bytes).map_err(|e| malformed(e.to_string()))?;
    if message.tag != tag::RESPONSE_MESSAGE {
        return Err(malformed(format!("top-level tag {} is not Response Message", message.tag)));
    }
    let header = required(&message, tag::RESPONSE_HEADER, "Response Header").map_err(|e| malformed(e.to_string()))?;
    let count = required(header, tag::BATCH_COUNT, "Batch Count").and_then(Item::as_integer);
    if count != Ok(1) {
        return Err(malformed(format!("batch count {count:?} for a one-item request")));
    }
    let mut items = message.children(tag::BATCH_ITEM);
    let item = items.next().ok_or_else(|| malformed("no batch item".into()))?;
    if items.next().is_some() {
        return Err(malformed("more than one batch item".into()));
    }
    read_batch_item(op, item).map_err(|e| malformed(e.to_string()))
}

fn read_batch_item(op: Operation, item: &Item) -> Result<Outcome, TtlvError> {
    // Servers may leave the operation out of an error response, never put a
    // different one in.
    if let Some(echoed) = item.child(tag::OPERATION) {
        let code = echoed.as_enumeration()?;
        if code != op.code() {
            return Err(TtlvError::Unexpected { tag: tag::OPERATION, expected: op.name(), found: "another operation" });
        }
    }
    let status = required(item, tag::RESULT_STATUS, "Result Status")?.as_enumeration()?;
    if status == spec::RESULT_STATUS_SUCCESS {
        return Ok(Outcome::Success(item.child(tag::RESPONSE_PAYLOAD).cloned()));
    }
    let reason = item.child(tag::RESULT_REASON).map(Item::as_enumeration).transpose()?;
    let message = item.child(tag::RESULT_MESSAGE).map(|m| m.as_text().map(str::to_owned)).transpose()?;
    Ok(Outcome::Failure(Failure { op, reason, message }))
}

/// The child a response must have.
pub fn required<'a>(item: &'a Item, child: super::ttlv::Tag, name: &'static str) -> Result<&'a Item, TtlvError> {
    item.child(child).ok_or(TtlvError::Unexpected { tag: child, expected: name, found: "nothing" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(batch_item: Vec<Item>) -> Vec<u8> {
        let header = Item::structure(
            tag::RESPONSE_HEADER,
            vec![
                Item::structure(
                    tag::PROTOCOL_VERSION,
                    vec![Item::integer(tag::PROTOCOL_VERSION_MAJOR, 1), Item::integer(tag::PROTOCOL_VERSION_MINOR, 4)],
                ),
                Item::new(super::super::ttlv::Tag(0x420092), Value::DateTime(1_700_000_000)),
                Item::integer(tag::BATCH_COUNT, 1),
            ],
        );
        let message =
            Item::structure(tag::RESPONSE_MESSAGE, vec![header, Item::structure(tag::BATCH_ITEM, batch_item)]);
        message.to_bytes().expect("encodes").to_vec()
    }

    #[test]
    fn request_has_header_and_one_batch_item() {
        let bytes = Request::activate("42").encode().expect("encodes");
        let message = Item::decode(&bytes).expect("decodes");
        assert_eq!(message.tag, tag::REQUEST_MESSAGE);
        let header = message.child(tag::REQUEST_HEADER).expect("header");
        let version = header.child(tag::PROTOCOL_VERSION).expect("version");
        assert_eq!(version.child(tag::PROTOCOL_VERSION_MINOR).map(Item::as_integer), Some(Ok(4)));
        let item = message.child(tag::BATCH_ITEM).expect("batch item");
        assert_eq!(item.child(tag::OPERATION).map(Item::as_enumeration), Some(Ok(0x12)));
        let payload = item.child(tag::REQUEST_PAYLOAD).expect("payload");
        assert_eq!(payload.child(tag::UNIQUE_IDENTIFIER).map(Item::as_text), Some(Ok("42")));
    }

    #[test]
    fn success_gives_payload() {
        let bytes = response(vec![
            Item::enumeration(tag::OPERATION, Operation::Activate.code()),
            Item::enumeration(tag::RESULT_STATUS, 0),
            Item::structure(tag::RESPONSE_PAYLOAD, vec![Item::text(tag::UNIQUE_IDENTIFIER, "42")]),
        ]);
        match decode_response(Operation::Activate, &bytes) {
            Ok(Outcome::Success(Some(payload))) => {
                assert_eq!(payload.child(tag::UNIQUE_IDENTIFIER).map(Item::as_text), Some(Ok("42")));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn failure_gives_reason_and_message() {
        let bytes = response(vec![
            Item::enumeration(tag::OPERATION, Operation::Encrypt.code()),
            Item::enumeration(tag::RESULT_STATUS, 1),
            Item::enumeration(tag::RESULT_REASON, spec::reason::ITEM_NOT_FOUND),
            Item::text(tag::RESULT_MESSAGE, "Could not locate object: 7"),
        ]);
        match decode_response(Operation::Encrypt, &bytes) {
            Ok(Outcome::Failure(failure)) => {
                assert!(failure.has_reason(spec::reason::ITEM_NOT_FOUND));
                assert_eq!(failure.to_string(), "Encrypt failed: Item Not Found (0x1): Could not locate object: 7",);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn response_to_another_operation_is_malformed() {
        let bytes = response(vec![
            Item::enumeration(tag::OPERATION, Operation::Decrypt.code()),
            Item::enumeration(tag::RESULT_STATUS, 0),
        ]);
        assert!(decode_response(Operation::Encrypt, &bytes).is_err());
    }

    #[test]
    fn missing_status_is_malformed() {
        let bytes = response(vec![Item::enumeration(tag::OPERATION, Operation::Destroy.code())]);
        let err = decode_response(Operation::Destroy, &bytes).expect_err("malformed");
        assert!(err.to_string().contains("Result Status"), "{err}");
    }
}
