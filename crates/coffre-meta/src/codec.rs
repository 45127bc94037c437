//! The record format both engines store: postcard encodings of the core's
//! record types, and the one way their failures become a metadata error.

use coffre_core::error::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) fn meta_err(e: impl std::fmt::Display) -> Error {
    Error::Meta(e.to_string())
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(meta_err)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(meta_err)
}
