//! Multipart uploads: parts stream into blobs of their own; completing one
//! checks the parts named against those stored and commits the object.

use super::keys::{self, ChecksumKey, CustomerKey, SseChoice, check_customer_key};
use crate::blob::ByteStream;
use crate::checksum::{
    BodyDigest, BodyHasher, ChecksumAlgorithm, ChecksumType, Checksums, combine_crcs, hex, multipart_etag,
};
use crate::error::{Error, Result};
use crate::lock::{LockState, MAX_OBJECT_TAGS, check_tags};
use crate::meta::{
    BucketRecord, CompleteUpload, ContentHeaders, DataLocation, ObjectVersion, PartRecord, PartRef, Sse, UploadRecord,
    VersionMeta, WriteCondition,
};
use crate::types::{BucketName, ObjectKey, Principal, UnixNanos, UploadId, VersionId};
use crate::witness::Change;

use super::{
    BodyClaims, ByteRange, CopySource, ExpectedChecksum, MAX_PART_NUMBER, MIN_PART_SIZE, ObjectService, PutResult,
    Sealing, initial_lock, new_version_id, sse_for, unquote, verify_claims,
};

/// What CreateMultipartUpload asks for; the completed object gets all of it.
pub struct NewUpload {
    pub bucket: BucketName,
    pub key: ObjectKey,
    pub headers: ContentHeaders,
    pub user_meta: Vec<(String, String)>,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    /// `x-amz-checksum-type`, if the request named one.
    pub checksum_type: Option<ChecksumType>,
    pub tags: Vec<(String, String)>,
    pub lock: Option<LockState>,
    pub sse: Option<SseChoice>,
}

pub struct PartUpload {
    pub bucket: BucketName,
    pub key: ObjectKey,
    pub upload_id: UploadId,
    pub part_number: u32,
    /// SSE-C: every part brings the key the upload was created with.
    pub customer_key: Option<CustomerKey>,
}

#[derive(Debug, Clone)]
pub struct PartResult {
    pub etag: String,
    pub sse: crate::meta::Sse,
    pub checksums: Checksums,
    pub last_modified: UnixNanos,
}

/// A part as named in CompleteMultipartUpload.
#[derive(Debug, Clone)]
pub struct CompletedPart {
    pub number: u32,
    pub etag: String,
    pub checksums: Checksums,
}

#[derive(Debug, Clone)]
pub struct UploadListing {
    pub uploads: Vec<UploadRecord>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
}

impl ObjectService {
    pub async fn create_upload(&self, who: &Principal, new: NewUpload) -> Result<UploadRecord> {
        let record = self.bucket(who, &new.bucket).await?;
        let checksum_type = ChecksumType::of_upload(new.checksum_algorithm, new.checksum_type)?;
        check_tags(&new.tags, MAX_OBJECT_TAGS)?;
        // Checked now so a bad request fails before any part is sent; the
        // default retention itself is stamped when the upload completes.
        initial_lock(&record, new.lock.clone())?;
        let (sse, _) = sse_for(&record, new.sse)?;
        let upload = UploadRecord {
            upload_id: UploadId::generate(),
            bucket: new.bucket,
            bucket_id: record.id,
            key: new.key,
            initiated: UnixNanos::now(),
            owner: who.access_key.clone(),
            headers: new.headers,
            user_meta: new.user_meta,
            checksum_algorithm: new.checksum_algorithm,
            tags: new.tags,
            lock: new.lock.unwrap_or_default(),
            sse,
            checksum_type,
        };
        let change = Change::new("change:CreateMultipartUpload", who.into(), &upload.bucket)
            .key(&upload.key)
            .detail(format!("upload_id={}", upload.upload_id.as_str()));
        self.witness(change).await?;
        self.meta.create_upload(upload.clone()).await?;
        Ok(upload)
    }

    async fn upload(
        &self,
        who: &Principal,
        bucket: &BucketName,
        key: &ObjectKey,
        id: &UploadId,
    ) -> Result<UploadRecord> {
        self.bucket(who, bucket).await?;
        self.meta.upload(bucket, key, id).await?.ok_or(Error::NoSuchUpload)
    }

    /// The upload a part goes to, its customer key checked, and a fresh data
    /// key for the part bound to the upload and the part number.
    async fn part_target(&self, who: &Principal, part: &PartUpload) -> Result<(UploadRecord, Sealing)> {
        if !(1..=MAX_PART_NUMBER).contains(&part.part_number) {
            return Err(Error::InvalidArgument(format!("part number must be 1 to {MAX_PART_NUMBER}")));
        }
        let bucket = self.bucket(who, &part.bucket).await?;
        let upload = self.meta.upload(&part.bucket, &part.key, &part.upload_id).await?.ok_or(Error::NoSuchUpload)?;
        check_customer_key(&upload.sse, part.customer_key.as_ref())?;
        let sealing = self
            .sealing(&bucket, &part.key, upload.upload_id.as_str(), part.part_number, part.customer_key.as_ref())
            .await?;
        Ok((upload, sealing))
    }

    pub async fn upload_part(
        &self,
        who: &Principal,
        part: PartUpload,
        mut claims: BodyClaims,
        body: ByteStream,
    ) -> Result<PartResult> {
        let (upload, sealing) = self.part_target(who, &part).await?;
        if claims.checksum.is_none()
            && let Some(alg) = upload.checksum_algorithm
        {
            claims.checksum = Some(ExpectedChecksum::Compute(alg));
        }
        let algorithms: Vec<_> = claims.checksum.iter().map(ExpectedChecksum::algorithm).collect();
        let checksum_key = part.customer_key.is_some().then(|| ChecksumKey::of(&sealing.key));
        let (data, digest) = self.store_body(body, &algorithms, claims.content_length, false, sealing).await?;
        let change = part_change(who, &upload, part.part_number, None);
        let stored = StoredPart { number: part.part_number, data, digest, checksum_key };
        self.record_part(&upload, stored, claims, change).await
    }

    async fn record_part(
        &self,
        upload: &UploadRecord,
        part: StoredPart,
        claims: BodyClaims,
        change: Change,
    ) -> Result<PartResult> {
        let StoredPart { number, data, digest, checksum_key } = part;
        let pending = data.blobs();
        let outcome = async {
            let checksums = verify_claims(claims, &digest)?;
            let DataLocation::Blob { id: blob, key } = data else {
                return Err(Error::Meta("a part must be stored in exactly one blob".into()));
            };
            // SSE-C parts keep no digest of their plaintext in clear: a random
            // ETag, and the checksums sealed for the holder of the key.
            let (md5, stored, sealed) = match (upload.sse.customer(), &checksum_key) {
                (None, _) => (digest.md5, checksums.clone(), Vec::new()),
                (Some(_), _) if checksums.is_empty() => (keys::random_etag()?, Checksums::default(), Vec::new()),
                (Some(_), Some(ck)) => {
                    (keys::random_etag()?, Checksums::default(), ck.seal(&checksums, &part_context(upload, number))?)
                }
                (Some(_), None) => return Err(Error::CustomerKeyRequired),
            };
            let record = PartRecord {
                number,
                blob,
                key,
                size: digest.len,
                md5,
                last_modified: UnixNanos::now(),
                checksums: stored,
                sealed_checksums: sealed,
            };
            let last_modified = record.last_modified;
            self.witness(change).await?;
            self.meta.put_part(upload, record).await?;
            Ok(PartResult { etag: hex(&md5), sse: upload.sse.clone(), checksums, last_modified })
        }
        .await;
        self.release_on_error(outcome, &pending).await
    }

    pub async fn upload_part_copy(
        &self,
        who: &Principal,
        part: PartUpload,
        source: CopySource,
        range: Option<ByteRange>,
    ) -> Result<PartResult> {
        let (upload, sealing) = self.part_target(who, &part).await?;
        let (src, src_keys) = self.copy_source(who, &source).await?;
        let size = src.meta.size;
        let range = match range {
            // A copy range must lie inside the source (`InvalidRange`, as
            // ceph/s3-tests expects); GET ranges may overhang.
            Some(ByteRange::From { last: Some(last), .. }) if last >= size => {
                return Err(Error::InvalidRange { size });
            }
            Some(r) => r.resolve(size)?,
            None => 0..size,
        };
        let claims = BodyClaims {
            content_length: Some(range.end - range.start),
            content_md5: None,
            checksum: upload.checksum_algorithm.map(ExpectedChecksum::Compute),
        };
        let algorithms: Vec<_> = claims.checksum.iter().map(ExpectedChecksum::algorithm).collect();
        let body = self.read_data(src.data, size, range, src_keys);
        let checksum_key = part.customer_key.is_some().then(|| ChecksumKey::of(&sealing.key));
        let (data, digest) = self.store_body(body, &algorithms, claims.content_length, false, sealing).await?;
        let change = part_change(who, &upload, part.part_number, Some(source.describe()));
        let stored = StoredPart { number: part.part_number, data, digest, checksum_key };
        self.record_part(&upload, stored, claims, change).await
    }

    /// Completes the upload; a completion sent again once it is done (a
    /// retry after a lost answer) is answered as the first was, as S3 does,
    /// while the object it made is the key's current version.
    #[expect(clippy::too_many_arguments, reason = "the request's fields, as S3 names them")]
    pub async fn complete_upload(
        &self,
        who: &Principal,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &UploadId,
        requested: Vec<CompletedPart>,
        condition: WriteCondition,
        customer: Option<&CustomerKey>,
        claimed: &Checksums,
    ) -> Result<PutResult> {
        match self.complete_pending(who, bucket, key, upload_id, requested, condition, customer, claimed).await {
            Err(Error::NoSuchUpload) => self.completed_already(who, bucket, key, upload_id).await,
            done => done,
        }
    }

    /// What the completion of `upload_id` answered, if its object is current;
    /// `NoSuchUpload` otherwise. The parts' data keys are bound to their upload.
    async fn completed_already(
        &self,
        who: &Principal,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &UploadId,
    ) -> Result<PutResult> {
        // The bucket, checked as every request's is, before its object is read.
        self.bucket(who, bucket).await?;
        let current = self.meta.object(bucket, key, None).await?.ok_or(Error::NoSuchUpload)?;
        let made_by_it = match &current.data {
            DataLocation::Parts(parts, _) => parts.first().is_some_and(|p| p.key.origin == upload_id.as_str()),
            _ => false,
        };
        if !made_by_it || current.meta.delete_marker {
            return Err(Error::NoSuchUpload);
        }
        Ok(PutResult::of(&current.meta))
    }

    #[expect(clippy::too_many_arguments, reason = "the request's fields, as S3 names them")]
    async fn complete_pending(
        &self,
        who: &Principal,
        bucket: &BucketName,
        key: &ObjectKey,
        upload_id: &UploadId,
        requested: Vec<CompletedPart>,
        condition: WriteCondition,
        customer: Option<&CustomerKey>,
        claimed: &Checksums,
    ) -> Result<PutResult> {
        let bucket_record = self.bucket(who, bucket).await?;
        let upload = self.upload(who, bucket, key, upload_id).await?;
        // An SSE-C upload's checksums open only with the key, which S3 asks
        // for here when the upload has a checksum algorithm.
        if upload.sse.customer().is_some() && (customer.is_some() || upload.checksum_algorithm.is_some()) {
            check_customer_key(&upload.sse, customer)?;
        }
        if requested.is_empty() {
            return Err(Error::InvalidArgument("You must specify at least one part".into()));
        }
        if requested.windows(2).any(|w| w[0].number >= w[1].number) {
            return Err(Error::InvalidPartOrder);
        }
        let stored = self.meta.parts(upload_id, 0, MAX_PART_NUMBER as usize).await?;
        let mut chosen = Vec::with_capacity(requested.len());
        let mut chosen_checksums = Vec::with_capacity(requested.len());
        // An SSE-C part completed without its key has no checksum to compare with.
        let unopened = upload.sse.customer().is_some() && customer.is_none();
        for want in &requested {
            let part = stored
                .iter()
                .find(|p| p.number == want.number)
                .filter(|p| hex(&p.md5) == unquote(&want.etag))
                .ok_or_else(|| {
                Error::InvalidPart(format!(
                    "One or more of the specified parts could not be found. The part may not have been uploaded, \
                         or the specified entity tag may not match the part's entity tag. (part {})",
                    want.number
                ))
            })?;
            let recorded = self.part_checksums(&bucket_record, &upload, part, customer).await?;
            for alg in want.checksums.algorithms().filter(|_| !unopened) {
                if recorded.get(alg) != want.checksums.get(alg) {
                    return Err(Error::InvalidPart(format!("part {} has a different {alg} checksum", want.number)));
                }
            }
            chosen.push(part.clone());
            chosen_checksums.push(recorded);
        }
        // Sizes are judged once every named part is known to exist, as S3 does.
        if let Some(small) = chosen.iter().rev().skip(1).find(|p| p.size < MIN_PART_SIZE) {
            return Err(Error::EntityTooSmall { part: small.number });
        }
        let md5s: Vec<[u8; 16]> = chosen.iter().map(|p| p.md5).collect();
        let checksums = object_checksums(&upload, &chosen, &chosen_checksums, claimed)?;
        let version_id = new_version_id(&bucket_record);
        let (recorded, sse) =
            self.seal_composite(&bucket_record, &upload, &version_id, &chosen, &checksums, customer).await?;
        let version = ObjectVersion {
            meta: VersionMeta {
                version_id,
                delete_marker: false,
                size: chosen.iter().map(|p| p.size).sum(),
                etag: multipart_etag(&md5s),
                last_modified: UnixNanos::now(),
                owner: upload.owner.clone(),
                headers: upload.headers.clone(),
                user_meta: upload.user_meta.clone(),
                checksum_composite: !checksums.is_empty() && upload.checksum_type == ChecksumType::Composite,
                checksums: recorded,
                tags: upload.tags.clone(),
                lock: initial_lock(&bucket_record, Some(upload.lock.clone()))?,
                sse,
            },
            data: DataLocation::Parts(
                chosen
                    .iter()
                    .map(|p| PartRef { number: p.number, blob: p.blob, size: p.size, key: p.key.clone() })
                    .collect(),
                // An SSE-C object's part checksums are not kept in clear.
                if upload.sse.customer().is_some() { Vec::new() } else { chosen_checksums },
            ),
        };
        // The completer brought the key: it is told the checksum, sealed or not.
        let result = PutResult { checksums, ..PutResult::of(&version.meta) };
        let keep = chosen.iter().map(|p| p.number).collect();
        let change = Change::new("change:CompleteMultipartUpload", who.into(), bucket)
            .key(key)
            .version(Some(&version.meta.version_id))
            .detail(format!("upload_id={} parts={}", upload_id.as_str(), chosen.len()));
        self.witness(change).await?;
        self.meta.complete_upload(CompleteUpload { upload, version, keep, condition }).await?;
        Ok(result)
    }

    pub async fn abort_upload(
        &self,
        who: &Principal,
        bucket: &BucketName,
        key: &ObjectKey,
        id: &UploadId,
    ) -> Result<()> {
        self.upload(who, bucket, key, id).await?;
        let change = Change::new("change:AbortMultipartUpload", who.into(), bucket)
            .key(key)
            .detail(format!("upload_id={}", id.as_str()));
        self.witness(change).await?;
        self.meta.abort_upload(bucket, key, id).await
    }

    /// The parts of an upload. An SSE-C part's checksums are opened for a
    /// request bringing the customer's key, and left out without it.
    #[expect(clippy::too_many_arguments, reason = "the request's fields, as S3 names them")]
    pub async fn list_parts(
        &self,
        who: &Principal,
        bucket: &BucketName,
        key: &ObjectKey,
        id: &UploadId,
        after: u32,
        max: usize,
        customer: Option<&CustomerKey>,
    ) -> Result<(UploadRecord, Vec<PartRecord>, bool)> {
        let record = self.bucket(who, bucket).await?;
        let upload = self.meta.upload(bucket, key, id).await?.ok_or(Error::NoSuchUpload)?;
        if customer.is_some() {
            check_customer_key(&upload.sse, customer)?;
        }
        let mut parts = self.meta.parts(id, after, max + 1).await?;
        let truncated = parts.len() > max;
        parts.truncate(max);
        for part in &mut parts {
            part.checksums = self.part_checksums(&record, &upload, part, customer).await?;
        }
        Ok((upload, parts, truncated))
    }

    /// A part's checksums: in clear, or an SSE-C part's opened with the
    /// customer's key (already checked), none without it.
    async fn part_checksums(
        &self,
        bucket: &BucketRecord,
        upload: &UploadRecord,
        part: &PartRecord,
        customer: Option<&CustomerKey>,
    ) -> Result<Checksums> {
        let Some(customer) = customer.filter(|_| !part.sealed_checksums.is_empty()) else {
            return Ok(part.checksums.clone());
        };
        let data_key = self.keyring.open_data_key(&bucket.name, &bucket.keks, &part.key, Some(customer)).await?;
        ChecksumKey::of(&data_key).open(&part.sealed_checksums, &part_context(upload, part.number))
    }

    /// What a completed version records of `checksums`: in clear, or for
    /// SSE-C sealed under its first part's data key, where a read with the
    /// key opens them (as a single PUT's).
    async fn seal_composite(
        &self,
        bucket: &BucketRecord,
        upload: &UploadRecord,
        version_id: &VersionId,
        parts: &[PartRecord],
        checksums: &Checksums,
        customer: Option<&CustomerKey>,
    ) -> Result<(Checksums, Sse)> {
        let (Some(check), Some(customer), Some(first)) = (upload.sse.customer(), customer, parts.first()) else {
            return Ok((checksums.clone(), upload.sse.clone()));
        };
        let sealed = if checksums.is_empty() {
            Vec::new()
        } else {
            let data_key = self.keyring.open_data_key(&bucket.name, &bucket.keks, &first.key, Some(customer)).await?;
            let context = keys::checksum_context(&bucket.name, &upload.key, version_id.as_str());
            ChecksumKey::of(&data_key).seal(checksums, &context)?
        };
        Ok((Checksums::default(), Sse::CustomerSealed { check: check.clone(), checksums: sealed }))
    }

    pub async fn list_uploads(
        &self,
        who: &Principal,
        bucket: &BucketName,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<(&str, Option<&UploadId>)>,
        max: usize,
    ) -> Result<UploadListing> {
        self.bucket(who, bucket).await?;
        let mut listing = UploadListing { uploads: Vec::new(), common_prefixes: Vec::new(), is_truncated: false };
        let mut cursor: Option<(Vec<u8>, Option<UploadId>)> = after.map(|(k, u)| (k.as_bytes().to_vec(), u.cloned()));
        loop {
            let batch = self
                .meta
                .uploads(bucket, prefix.as_bytes(), cursor.as_ref().map(|(k, u)| (k.as_slice(), u.as_ref())), max + 1)
                .await?;
            let exhausted = batch.len() <= max;
            for u in batch {
                if listing.uploads.len() + listing.common_prefixes.len() == max {
                    listing.is_truncated = true;
                    return Ok(listing);
                }
                let key = u.key.as_str();
                let common = delimiter
                    .filter(|d| !d.is_empty())
                    .and_then(|d| key[prefix.len()..].find(d).map(|i| key[..prefix.len() + i + d.len()].to_owned()));
                cursor = Some((u.key.as_bytes().to_vec(), Some(u.upload_id.clone())));
                match common {
                    Some(cp) if listing.common_prefixes.last() == Some(&cp) => {}
                    Some(cp) => listing.common_prefixes.push(cp),
                    None => listing.uploads.push(u),
                }
            }
            if exhausted {
                return Ok(listing);
            }
        }
    }
}

/// A part as stored, before it is recorded.
struct StoredPart {
    number: u32,
    data: DataLocation,
    digest: BodyDigest,
    /// For SSE-C: the key its checksums are sealed with.
    checksum_key: Option<ChecksumKey>,
}

/// What an SSE-C part's sealed checksums are bound to: the upload and the part.
fn part_context(upload: &UploadRecord, number: u32) -> Vec<u8> {
    let part = format!("upload:{}:part:{number}", upload.upload_id.as_str());
    keys::checksum_context(&upload.bucket, &upload.key, &part)
}

/// The checksum of a multipart object, as its upload's checksum type asks,
/// checked against the one the completion claims for the whole object.
fn object_checksums(
    upload: &UploadRecord,
    parts: &[PartRecord],
    checksums: &[Checksums],
    claimed: &Checksums,
) -> Result<Checksums> {
    let Some(alg) = upload.checksum_algorithm else { return Ok(Checksums::default()) };
    let whole = match upload.checksum_type {
        ChecksumType::Composite => composite_checksums(Some(alg), checksums),
        ChecksumType::FullObject => full_object_checksums(alg, parts, checksums)?,
    };
    // A COMPOSITE value may be claimed with its `-N` suffix or without.
    let ours = whole.get(alg).unwrap_or_default();
    let bare = ours.rsplit_once('-').map_or(ours, |(value, _)| value);
    if claimed.get(alg).is_some_and(|c| c != ours && c != bare) {
        return Err(Error::ChecksumMismatch(alg));
    }
    Ok(whole)
}

/// The `FULL_OBJECT` checksum: the parts' CRCs combined with their lengths,
/// the object's bytes never read again. Every part carries one, computed
/// when it was stored if its request sent none.
fn full_object_checksums(alg: ChecksumAlgorithm, parts: &[PartRecord], checksums: &[Checksums]) -> Result<Checksums> {
    let mut pieces = Vec::with_capacity(parts.len());
    for (part, sums) in parts.iter().zip(checksums) {
        let value = sums
            .get(alg)
            .ok_or_else(|| Error::InvalidPart(format!("part {} has no {alg} checksum to combine", part.number)))?;
        pieces.push((value, part.size));
    }
    let whole = combine_crcs(alg, pieces)
        .ok_or_else(|| Error::InvalidRequest(format!("{alg} checksums do not combine into a full-object checksum")))?;
    let mut out = Checksums::default();
    out.set(alg, whole);
    Ok(out)
}

/// The checksum of a multipart object: the checksum of the parts' raw
/// checksums, suffixed with the part count, as S3 computes `COMPOSITE` values.
fn composite_checksums(alg: Option<ChecksumAlgorithm>, parts: &[Checksums]) -> Checksums {
    let mut out = Checksums::default();
    let Some(alg) = alg else { return out };
    let mut hasher = BodyHasher::new([alg]);
    for p in parts {
        let Some(b64) = p.get(alg) else { return Checksums::default() };
        let Ok(raw) = base64_simd::STANDARD.decode_to_vec(b64) else { return Checksums::default() };
        hasher.update(&raw);
    }
    if let Some(v) = hasher.finish().checksums.get(alg) {
        out.set(alg, format!("{v}-{}", parts.len()));
    }
    out
}

/// The change event of a part: which upload, which part, and a copy's source.
fn part_change(who: &Principal, upload: &UploadRecord, number: u32, source: Option<String>) -> Change {
    let mut detail = format!("upload_id={} part={number}", upload.upload_id.as_str());
    if let Some(source) = source {
        detail.push(' ');
        detail.push_str(&source);
    }
    Change::new("change:UploadPart", who.into(), &upload.bucket).key(&upload.key).detail(detail)
}
