//! The key side of a bucket's life: its first KEK at creation, new ones at
//! rotation (rewrapping data keys, never rewriting data), and their
//! destruction when the bucket is deleted or erased.

use std::ops::Bound;

use coffre_crypto::KekId;
use coffre_topology::PolicyRequest;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lock::{ComplianceLocks, LockConfig};
use crate::meta::{
    BucketChange, BucketKek, BucketRecord, BucketRemoval, EraseReport, KekDestroy, UploadRecord, VersionCursor,
    Versioning,
};
use crate::types::{BucketName, Principal, UnixNanos};
use crate::witness::Change;

use super::ObjectService;
use super::keys::kms_error;

/// What `coffre bucket erase` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EraseOutcome {
    pub bucket: String,
    /// The custodian's ids of the KEKs destroyed.
    pub keks_destroyed: Vec<String>,
    /// KEKs the custodian could not destroy yet: recorded, and retried by a
    /// background job until done (`coffre kms status` lists them).
    #[serde(default)]
    pub keks_pending: Vec<String>,
    #[serde(flatten)]
    pub removed: EraseReport,
}

/// What `coffre bucket rotate-key` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotateOutcome {
    pub bucket: String,
    pub new_generation: u32,
    pub new_kek: String,
    /// Data keys rewrapped under the new KEK.
    pub rewrapped: u64,
    /// Old KEKs destroyed once nothing used them.
    pub keks_destroyed: Vec<String>,
    /// Old KEKs not destroyed yet: recorded and retried, as for an erasure.
    #[serde(default)]
    pub keks_pending: Vec<String>,
}

/// How many data keys one rotation step rewraps.
const REWRAP_BATCH: usize = 256;

impl ObjectService {
    /// Creates a bucket and its first KEK; with Object Lock it is versioned
    /// from the start, as S3 requires.
    pub async fn create_bucket(&self, who: &Principal, name: BucketName, object_lock: bool) -> Result<()> {
        self.create_bucket_with(who, name, object_lock, None).await
    }

    /// Creates a bucket with the residency policy it asks for (completed from
    /// the operator's `[residency]`, checked by the blob store, never wider);
    /// `None`: the deployment's default.
    pub async fn create_bucket_with(
        &self,
        who: &Principal,
        name: BucketName,
        object_lock: bool,
        asked: Option<PolicyRequest>,
    ) -> Result<()> {
        let residency = asked.map(|asked| self.blobs.bucket_policy(&asked)).transpose()?;
        // An existing bucket is refused before the custodian is asked for a key.
        if let Some(existing) = self.meta.bucket(&name).await? {
            return Err(if existing.owner == who.access_key {
                Error::BucketAlreadyOwnedByYou
            } else {
                Error::BucketAlreadyExists
            });
        }
        let detail = format!("object_lock={object_lock} residency={}", residency.is_some());
        self.witness(Change::new("change:CreateBucket", who.into(), &name).detail(detail)).await?;
        let kek = self.new_kek(&name, 1).await?;
        let mut record = BucketRecord::new(name.clone(), who.access_key.clone());
        record.keks.push(kek.clone());
        record.residency = residency;
        if !self.config.block_public_access_by_default {
            record.public_access = None;
        }
        if object_lock {
            record.object_lock = Some(LockConfig::default());
            record.versioning = Versioning::Enabled;
        }
        let created = self.meta.create_bucket(record).await;
        if created.is_err() {
            // Lost a race for the name: the key was never used.
            self.destroy_keks(&name, std::slice::from_ref(&kek)).await;
        }
        created
    }

    async fn new_kek(&self, bucket: &BucketName, generation: u32) -> Result<BucketKek> {
        let label = format!("coffre bucket {bucket} generation {generation}");
        let id = self.keyring.kms().create_kek(&label).await.map_err(kms_error)?;
        Ok(BucketKek { generation, id: id.0, created: UnixNanos::now() })
    }

    /// Records the destruction of `keks` as owed, then tries it: (destroyed, pending).
    async fn destroy_keks(&self, bucket: &BucketName, keks: &[BucketKek]) -> (Vec<String>, Vec<String>) {
        let owed: Vec<KekDestroy> = keks.iter().map(|k| KekDestroy::new(k, bucket)).collect();
        if let Err(e) = self.meta.queue_kek_destroys(owed.clone()).await {
            tracing::error!(bucket = %bucket, error = %e, "could not record the key destructions owed; trying them now");
        }
        self.destroy_owed(&owed).await
    }

    /// Tries destructions already recorded: a success is forgotten, a failure
    /// stays recorded with its error for the background job. (destroyed, pending)
    async fn destroy_owed(&self, owed: &[KekDestroy]) -> (Vec<String>, Vec<String>) {
        let (mut destroyed, mut pending) = (Vec::new(), Vec::new());
        for d in owed {
            match self.keyring.kms().destroy_kek(&KekId(d.kek.clone())).await {
                Ok(()) => {
                    if let Err(e) = self.meta.kek_destroyed(&d.kek).await {
                        tracing::warn!(kek = %d.kek, error = %e, "key destroyed, but its record stays until the next retry");
                    }
                    destroyed.push(d.kek.clone());
                }
                Err(e) => {
                    tracing::error!(kek = %d.kek, bucket = %d.bucket, error = %e, "could not destroy a key-encryption key; recorded, will retry");
                    if let Err(m) = self.meta.kek_destroy_failed(&d.kek, &e.to_string()).await {
                        tracing::error!(kek = %d.kek, error = %m, "could not record a failed key destruction");
                    }
                    pending.push(d.kek.clone());
                }
            }
        }
        (destroyed, pending)
    }

    /// The background job: tries again every key destruction still owed.
    /// Returns how many were done and how many are still owed.
    pub async fn retry_kek_destroys(&self) -> Result<(usize, usize)> {
        let owed = self.meta.kek_destroys().await?;
        let (destroyed, pending) = self.destroy_owed(&owed).await;
        Ok((destroyed.len(), pending.len()))
    }

    /// Key destructions still owed, oldest first (`coffre kms status`).
    pub async fn kek_destroys(&self) -> Result<Vec<KekDestroy>> {
        self.meta.kek_destroys().await
    }

    /// Whether the metadata answers (the readiness probe): it lists the buckets.
    pub async fn ready(&self) -> Result<()> {
        self.meta.buckets().await.map(drop)
    }

    /// Deletes a bucket holding no version, aborting its unfinished uploads
    /// (as AWS does), and destroys its KEKs. Each abort is recorded as an
    /// AbortMultipartUpload would be, before the transaction that commits
    /// them all with the bucket's removal.
    pub async fn delete_bucket(&self, who: &Principal, name: &BucketName) -> Result<()> {
        let record = self.bucket(who, name).await?;
        // Refused before any abort is recorded; the engine checks again under lock.
        if !self.meta.list_versions(name, b"", Bound::Unbounded, 1).await?.is_empty() {
            return Err(Error::BucketNotEmpty);
        }
        let aborting = self.all_uploads(name).await?;
        self.witness(Change::new("change:DeleteBucket", who.into(), name)).await?;
        for upload in &aborting {
            let change = Change::new("change:AbortMultipartUpload", who.into(), name)
                .key(&upload.key)
                .detail(format!("upload_id={} by=DeleteBucket", upload.upload_id.as_str()));
            self.witness(change).await?;
        }
        let removal = BucketRemoval { uploads: aborting.into_iter().map(|u| u.upload_id).collect() };
        self.meta.delete_bucket(name, &removal).await?;
        let (destroyed, pending) = self.destroy_keks(name, &record.keks).await;
        tracing::info!(bucket = %name, keks_destroyed = destroyed.len(), keks_pending = pending.len(), "bucket deleted, its keys destroyed");
        Ok(())
    }

    /// Every unfinished upload of the bucket, in key order.
    async fn all_uploads(&self, name: &BucketName) -> Result<Vec<UploadRecord>> {
        const PAGE: usize = 1000;
        let mut all: Vec<UploadRecord> = Vec::new();
        loop {
            let after = all.last().map(|u| (u.key.as_bytes(), Some(&u.upload_id)));
            let page = self.meta.uploads(name, b"", after, PAGE).await?;
            let done = page.len() < PAGE;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Crypto-erasure: removes the bucket's records and queues its blobs,
    /// recording in the same transaction that its KEKs are to be destroyed,
    /// then destroys them (a failure stays recorded and is retried), so that no copy of its data
    /// anywhere (a blob, a backup of the metadata) can be read. Only root may
    /// do it, and not while a version is under an unexpired COMPLIANCE
    /// retention: the engine checks that in the erasing transaction, so a
    /// refused erasure destroys nothing.
    pub async fn erase_bucket(&self, who: &Principal, name: &BucketName) -> Result<EraseOutcome> {
        if !who.is_root {
            return Err(Error::AccessDenied);
        }
        let record = self.bucket(who, name).await?;
        // Recorded before anything goes: the erasure cannot be undone.
        let detail = format!("keks={}", record.keks.len());
        self.witness(Change::new("change:EraseBucket", who.into(), name).detail(detail)).await?;
        let owed: Vec<KekDestroy> = record.keks.iter().map(|k| KekDestroy::new(k, name)).collect();
        let removed = self.meta.erase_bucket(name, owed.clone()).await?;
        let (destroyed, pending) = self.destroy_owed(&owed).await;
        tracing::warn!(bucket = %name, keks = destroyed.len(), keks_pending = pending.len(), versions = removed.versions, "bucket crypto-erased");
        Ok(EraseOutcome { bucket: name.to_string(), keks_destroyed: destroyed, keks_pending: pending, removed })
    }

    /// Refuses, before anything changes, what [`Self::erase_bucket`] would
    /// refuse for its COMPLIANCE-locked versions: for callers erasing several
    /// buckets, so that one locked bucket stops them all before the first.
    pub async fn check_erasable(&self, who: &Principal, name: &BucketName) -> Result<()> {
        const PAGE: usize = 1000;
        self.bucket(who, name).await?;
        let now = UnixNanos::now();
        let mut locks = ComplianceLocks::default();
        let mut from = Bound::Unbounded;
        loop {
            let page = self.meta.list_versions(name, b"", from, PAGE).await?;
            page.iter().for_each(|v| locks.note(&v.meta.lock, now));
            match page.last() {
                Some(last) if page.len() == PAGE => {
                    let key = last.key.as_str().as_bytes().to_vec();
                    from = Bound::Excluded(VersionCursor { key, after_version: Some(last.meta.version_id.clone()) });
                }
                _ => return locks.check_erase(),
            }
        }
    }

    /// Key rotation: a new KEK wraps new data keys at once; every existing
    /// data key is rewrapped under it (the data is not touched); then the old
    /// KEKs are destroyed.
    pub async fn rotate_bucket_key(&self, who: &Principal, name: &BucketName) -> Result<RotateOutcome> {
        let record = self.bucket(who, name).await?;
        let generation = record.keks.iter().map(|k| k.generation).max().unwrap_or(0) + 1;
        let detail = format!("new_generation={generation}");
        self.witness(Change::new("change:RotateBucketKey", who.into(), name).detail(detail)).await?;
        let kek = self.new_kek(name, generation).await?;
        self.meta.update_bucket(name, BucketChange::AddKek(kek.clone())).await?;
        let old: Vec<BucketKek> = record.keks.clone();
        let mut rewrapped = self.rewrap_below(name, &kek, &old).await?;
        // From here no write can commit a key under an old KEK (the engine
        // checks); one more pass catches writes that committed meanwhile.
        self.meta.update_bucket(name, BucketChange::DropKeksBefore(generation)).await?;
        rewrapped += self.rewrap_below(name, &kek, &old).await?;
        let (keks_destroyed, keks_pending) = self.destroy_keks(name, &old).await;
        Ok(RotateOutcome {
            bucket: name.to_string(),
            new_generation: generation,
            new_kek: kek.id,
            rewrapped,
            keks_destroyed,
            keks_pending,
        })
    }

    /// Rewraps under `to` every data key of an older generation, in one walk
    /// through the bucket; `old` names the KEKs being retired, which the
    /// bucket record may no longer list.
    async fn rewrap_below(&self, name: &BucketName, to: &BucketKek, old: &[BucketKek]) -> Result<u64> {
        let mut total = 0u64;
        let mut cursor = None;
        loop {
            // Re-read: the record lists the KEKs in force right now.
            let record = self.meta.bucket(name).await?.ok_or(Error::NoSuchBucket)?;
            let retired = old.iter().filter(|o| record.kek(o.generation).is_none()).cloned();
            let keks: Vec<BucketKek> = record.keks.iter().cloned().chain(retired).collect();
            let (batch, next) = self.meta.sealed_keys(name, to.generation, cursor, REWRAP_BATCH).await?;
            let mut rewrapped = Vec::with_capacity(batch.len());
            for mut slot in batch {
                slot.key = self.keyring.rewrap(name, &keks, &slot.key, to).await?;
                rewrapped.push(slot);
            }
            // Keys deleted meanwhile are skipped: nothing to rewrap there.
            total += self.meta.replace_sealed_keys(name, rewrapped).await? as u64;
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(total),
            }
        }
    }
}
