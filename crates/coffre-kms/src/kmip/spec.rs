//! The numbers of KMIP 1.4 this custodian uses: tags, operations and the
//! enumerations inside its requests and responses.

use super::ttlv::Tag;

pub mod tag {
    use super::Tag;

    pub const ATTRIBUTE: Tag = Tag(0x420008);
    pub const ATTRIBUTE_NAME: Tag = Tag(0x42000A);
    pub const ATTRIBUTE_VALUE: Tag = Tag(0x42000B);
    pub const BATCH_COUNT: Tag = Tag(0x42000D);
    pub const BATCH_ITEM: Tag = Tag(0x42000F);
    pub const BLOCK_CIPHER_MODE: Tag = Tag(0x420011);
    pub const CRYPTOGRAPHIC_ALGORITHM: Tag = Tag(0x420028);
    pub const CRYPTOGRAPHIC_PARAMETERS: Tag = Tag(0x42002B);
    pub const IV_COUNTER_NONCE: Tag = Tag(0x42003D);
    pub const NAME_TYPE: Tag = Tag(0x420054);
    pub const NAME_VALUE: Tag = Tag(0x420055);
    pub const OBJECT_TYPE: Tag = Tag(0x420057);
    pub const OPERATION: Tag = Tag(0x42005C);
    pub const PROTOCOL_VERSION: Tag = Tag(0x420069);
    pub const PROTOCOL_VERSION_MAJOR: Tag = Tag(0x42006A);
    pub const PROTOCOL_VERSION_MINOR: Tag = Tag(0x42006B);
    pub const QUERY_FUNCTION: Tag = Tag(0x420074);
    pub const REQUEST_HEADER: Tag = Tag(0x420077);
    pub const REQUEST_MESSAGE: Tag = Tag(0x420078);
    pub const REQUEST_PAYLOAD: Tag = Tag(0x420079);
    pub const RESPONSE_HEADER: Tag = Tag(0x42007A);
    pub const RESPONSE_MESSAGE: Tag = Tag(0x42007B);
    pub const RESPONSE_PAYLOAD: Tag = Tag(0x42007C);
    pub const RESULT_MESSAGE: Tag = Tag(0x42007D);
    pub const RESULT_REASON: Tag = Tag(0x42007E);
    pub const RESULT_STATUS: Tag = Tag(0x42007F);
    pub const REVOCATION_REASON: Tag = Tag(0x420081);
    pub const REVOCATION_REASON_CODE: Tag = Tag(0x420082);
    pub const TEMPLATE_ATTRIBUTE: Tag = Tag(0x420091);
    pub const UNIQUE_IDENTIFIER: Tag = Tag(0x420094);
    pub const VENDOR_IDENTIFICATION: Tag = Tag(0x42009D);
    pub const DATA: Tag = Tag(0x4200C2);
    pub const TAG_LENGTH: Tag = Tag(0x4200CE);
    pub const AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA: Tag = Tag(0x4200FE);
    pub const AUTHENTICATED_ENCRYPTION_TAG: Tag = Tag(0x4200FF);
}

/// Operations, with the names the spec gives them (for error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Activate,
    Revoke,
    Destroy,
    Query,
    Encrypt,
    Decrypt,
}

impl Operation {
    pub fn code(self) -> u32 {
        match self {
            Self::Create => 0x01,
            Self::Activate => 0x12,
            Self::Revoke => 0x13,
            Self::Destroy => 0x14,
            Self::Query => 0x18,
            Self::Encrypt => 0x1F,
            Self::Decrypt => 0x20,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "Create",
            Self::Activate => "Activate",
            Self::Revoke => "Revoke",
            Self::Destroy => "Destroy",
            Self::Query => "Query",
            Self::Encrypt => "Encrypt",
            Self::Decrypt => "Decrypt",
        }
    }
}

/// KMIP 1.4: the first version whose Encrypt and Decrypt carry additional
/// authenticated data and a tag (PyKMIP ignores both under older versions).
pub const PROTOCOL_MAJOR: i32 = 1;
pub const PROTOCOL_MINOR: i32 = 4;

pub const OBJECT_TYPE_SYMMETRIC_KEY: u32 = 0x02;
pub const CRYPTOGRAPHIC_ALGORITHM_AES: u32 = 0x03;
pub const BLOCK_CIPHER_MODE_GCM: u32 = 0x09;
pub const USAGE_MASK_ENCRYPT: i32 = 0x04;
pub const USAGE_MASK_DECRYPT: i32 = 0x08;
pub const NAME_TYPE_UNINTERPRETED_TEXT: u32 = 0x01;
pub const REVOCATION_CESSATION_OF_OPERATION: u32 = 0x06;
pub const QUERY_SERVER_INFORMATION: u32 = 0x03;

pub const RESULT_STATUS_SUCCESS: u32 = 0x00;

/// Result reasons this custodian reacts to; the rest are only shown.
pub mod reason {
    pub const ITEM_NOT_FOUND: u32 = 0x01;
    pub const CRYPTOGRAPHIC_FAILURE: u32 = 0x0A;
    pub const ILLEGAL_OPERATION: u32 = 0x0B;
    pub const PERMISSION_DENIED: u32 = 0x0C;
    pub const GENERAL_FAILURE: u32 = 0x100;
}

/// The spec's name for a result reason, for messages.
pub fn reason_name(code: u32) -> &'static str {
    match code {
        0x01 => "Item Not Found",
        0x02 => "Response Too Large",
        0x03 => "Authentication Not Successful",
        0x04 => "Invalid Message",
        0x05 => "Operation Not Supported",
        0x06 => "Missing Data",
        0x07 => "Invalid Field",
        0x08 => "Feature Not Supported",
        0x09 => "Operation Canceled By Requester",
        0x0A => "Cryptographic Failure",
        0x0B => "Illegal Operation",
        0x0C => "Permission Denied",
        0x0D => "Object archived",
        0x0E => "Index Out of Bounds",
        0x0F => "Application Namespace Not Supported",
        0x10 => "Key Format Type Not Supported",
        0x11 => "Key Compression Type Not Supported",
        0x12 => "Encoding Option Error",
        0x13 => "Key Value Not Present",
        0x14 => "Attestation Required",
        0x15 => "Attestation Failed",
        0x16 => "Sensitive",
        0x17 => "Not Extractable",
        0x18 => "Object Already Exists",
        0x100 => "General Failure",
        _ => "unknown reason",
    }
}
