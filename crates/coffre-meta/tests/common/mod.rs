//! Records the engine tests store. The engine keeps wrapped data keys and
//! never opens them, so stand-ins do.
#![allow(dead_code)] // each test binary uses a part of this

use coffre_core::meta::{BucketKek, ContentHeaders, DataLocation, ObjectVersion, SealedKey, VersionMeta};
use coffre_core::types::{AccessKeyId, BlobId, UnixNanos, VersionId};

pub fn kek(generation: u32) -> BucketKek {
    BucketKek { generation, id: format!("kek-{generation}"), created: UnixNanos(0) }
}

/// A data key under generation 1, its id made from `n` so keys can be told apart.
pub fn sealed_key(n: u32) -> SealedKey {
    let mut key_id = [0u8; 16];
    key_id[..4].copy_from_slice(&n.to_be_bytes());
    SealedKey { key_id, kek_generation: 1, wrapped: vec![1; 60], origin: "o".into(), part: 0 }
}

/// A blob with a data key of its own.
pub fn blob(id: BlobId) -> DataLocation {
    DataLocation::Blob { id, key: sealed_key(id.0 as u32) }
}

pub fn version(owner: &AccessKeyId, version_id: VersionId, size: u64, data: DataLocation) -> ObjectVersion {
    ObjectVersion {
        meta: VersionMeta {
            version_id,
            delete_marker: false,
            size,
            etag: "e".into(),
            last_modified: UnixNanos::now(),
            owner: owner.clone(),
            headers: ContentHeaders::default(),
            user_meta: vec![],
            checksums: Default::default(),
            checksum_composite: false,
            tags: vec![],
            lock: Default::default(),
            sse: Default::default(),
        },
        data,
    }
}
