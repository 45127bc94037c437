//! Listing through a real engine (embedded, or PostgreSQL under
//! `COFFRE_TEST_PG`), checked against a naive model
//! over random keys, prefixes, delimiters, resume points and page sizes.

use std::collections::BTreeSet;
use std::ops::Bound;

use coffre_core::list::{ListQuery, VersionQuery, list, list_versions};
use coffre_core::meta::{BucketRecord, DataLocation, ObjectVersion, PutObject, Versioning, WriteCondition};
use coffre_core::types::{AccessKeyId, BucketName, ObjectKey, VersionId};

mod common;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn version(owner: &AccessKeyId, size: u64) -> ObjectVersion {
    let data = DataLocation::Inline { sealed: vec![0; size as usize], key: common::sealed_key(0) };
    common::version(owner, VersionId::Null, size, data)
}

/// What S3 returns for one page, computed the slow, obvious way.
fn model(keys: &BTreeSet<String>, q: &ListQuery) -> (Vec<String>, Vec<String>, bool) {
    let mut objects = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    for k in keys.iter().filter(|k| k.starts_with(&q.prefix)) {
        if q.after.as_ref().is_some_and(|a| k.as_str() <= a.as_str()) {
            continue;
        }
        let cp = q
            .delimiter
            .as_ref()
            .and_then(|d| k[q.prefix.len()..].find(d.as_str()).map(|i| k[..q.prefix.len() + i + d.len()].to_owned()));
        if let Some(cp) = &cp
            && (prefixes.last() == Some(cp) || q.after.as_ref().is_some_and(|a| a.starts_with(cp.as_str())))
        {
            continue;
        }
        if objects.len() + prefixes.len() == q.max_keys {
            truncated = true;
            break;
        }
        match cp {
            Some(cp) => prefixes.push(cp),
            None => objects.push(k.clone()),
        }
    }
    (objects, prefixes, truncated)
}

#[tokio::test]
async fn listing_matches_the_model() {
    let (meta, _held) = common::engine().await;
    let owner = AccessKeyId::parse("owner").expect("id");
    let bucket = BucketName::parse("list-test").expect("name");
    let other = BucketName::parse("list-test-2").expect("name");
    for b in [&bucket, &other] {
        meta.create_bucket(BucketRecord {
            id: common::BUCKET_ID,
            keks: vec![common::kek(1)],
            ..BucketRecord::new(b.clone(), owner.clone())
        })
        .await
        .expect("bucket");
    }
    let parts = ["a", "b", "a/", "/", "é", "x.y", "-", "~", "zz/", "a/b/"];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut keys = BTreeSet::new();
    while keys.len() < 600 {
        let n = 1 + rng.below(5);
        let key: String = (0..n).map(|_| rng.pick(&parts)).collect();
        keys.insert(key);
    }
    for k in &keys {
        let put = PutObject {
            bucket: bucket.clone(),
            bucket_id: common::BUCKET_ID,
            key: ObjectKey::parse(k).expect("key"),
            version: version(&owner, 1),
            condition: WriteCondition::None,
            pending: vec![],
        };
        meta.put_object(put).await.expect("put");
    }
    // Keys in a neighbouring bucket must never leak into the listing.
    for k in ["a", "zz/top"] {
        let put = PutObject {
            bucket: other.clone(),
            bucket_id: common::BUCKET_ID,
            key: ObjectKey::parse(k).expect("key"),
            version: version(&owner, 1),
            condition: WriteCondition::None,
            pending: vec![],
        };
        meta.put_object(put).await.expect("put");
    }

    let prefixes = ["", "a", "a/", "a/b", "é", "zz/", "q"];
    let delimiters = [None, Some("/"), Some("a"), Some("b/")];
    for case in 0..400 {
        let mut q = ListQuery {
            prefix: rng.pick(&prefixes).to_owned(),
            delimiter: delimiters[rng.below(delimiters.len())].map(str::to_owned),
            after: None,
            max_keys: 1 + rng.below(40),
            max_scan: 0,
        };
        if rng.below(3) == 0 {
            q.after = Some(keys.iter().nth(rng.below(keys.len())).cloned().unwrap_or_default());
        }
        // Walk all pages, resuming from `last` as continuation tokens do.
        for page_no in 0..1000 {
            let page = list(meta.as_ref(), &bucket, &q).await.expect("list");
            let got: Vec<String> = page.objects.iter().map(|o| o.key.to_string()).collect();
            let (want_objects, want_prefixes, want_truncated) = model(&keys, &q);
            assert_eq!(got, want_objects, "case {case} page {page_no}: {q:?}");
            assert_eq!(page.common_prefixes, want_prefixes, "case {case} page {page_no}: {q:?}");
            assert_eq!(page.is_truncated, want_truncated, "case {case} page {page_no}: {q:?}");
            if !page.is_truncated {
                break;
            }
            q.after = page.last;
        }
    }

    // A page may also end once it has read `max_scan` rows: followed to the
    // end, the pages still list everything the model lists, once each.
    for case in 0..200 {
        let base = ListQuery {
            prefix: rng.pick(&prefixes).to_owned(),
            delimiter: delimiters[rng.below(delimiters.len())].map(str::to_owned),
            after: None,
            max_keys: 1 + rng.below(40),
            max_scan: 1 + rng.below(5),
        };
        let (want_objects, want_prefixes, _) = model(&keys, &ListQuery { max_keys: usize::MAX, ..base.clone() });
        let (mut objects, mut common, mut q) = (Vec::new(), Vec::new(), base.clone());
        for page_no in 0.. {
            assert!(page_no < 2000, "case {case}: the pages never end: {base:?}");
            let page = list(meta.as_ref(), &bucket, &q).await.expect("list");
            assert!(page.objects.len() + page.common_prefixes.len() <= q.max_keys, "case {case}");
            objects.extend(page.objects.iter().map(|o| o.key.to_string()));
            common.extend(page.common_prefixes.iter().cloned());
            if !page.is_truncated {
                break;
            }
            assert!(page.last.is_some(), "case {case}: a truncated page says where to resume");
            q.after = page.last;
        }
        assert_eq!(objects, want_objects, "case {case}: {base:?}");
        assert_eq!(common, want_prefixes, "case {case}: {base:?}");
    }

    let usage = meta.bucket_usage(&bucket).await.expect("usage");
    assert_eq!(usage.objects, keys.len() as u64);
    let all = meta.list_objects(&other, b"", Bound::Unbounded, 100).await.expect("scan");
    assert_eq!(all.len(), 2);
}

/// Writes versions and delete markers of random keys into a versioned bucket;
/// returns how many entries a version listing holds.
async fn versioned_keys(meta: &dyn coffre_core::meta::MetaStore, bucket: &BucketName, rng: &mut Rng) -> usize {
    let owner = AccessKeyId::parse("owner").expect("id");
    let record = BucketRecord {
        id: common::BUCKET_ID,
        versioning: Versioning::Enabled,
        keks: vec![common::kek(1)],
        ..BucketRecord::new(bucket.clone(), owner.clone())
    };
    meta.create_bucket(record).await.expect("bucket");
    let parts = ["a", "b", "a/", "/", "x.y", "zz/", "a/b/"];
    let mut entries = 0;
    for _ in 0..150 {
        let n = 1 + rng.below(4);
        let key = ObjectKey::parse(&(0..n).map(|_| rng.pick(&parts)).collect::<String>()).expect("key");
        for _ in 0..1 + rng.below(4) {
            if rng.below(4) == 0 {
                meta.delete_object(bucket, common::BUCKET_ID, &key, None, &Default::default()).await.expect("marker");
            } else {
                let version = common::version(&owner, VersionId::generate(), 1, version(&owner, 1).data);
                let put = PutObject {
                    bucket: bucket.clone(),
                    bucket_id: common::BUCKET_ID,
                    key: key.clone(),
                    version,
                    condition: WriteCondition::None,
                    pending: vec![],
                };
                meta.put_object(put).await.expect("put");
            }
            entries += 1;
        }
    }
    entries
}

/// A version listing followed from page to page, resuming from NextKeyMarker
/// and NextVersionIdMarker: (key, version id) of every entry, common prefixes.
async fn versions_followed(
    meta: &dyn coffre_core::meta::MetaStore,
    bucket: &BucketName,
    base: &VersionQuery,
) -> (Vec<(String, String)>, Vec<String>) {
    let (mut versions, mut common, mut q) = (Vec::new(), Vec::new(), base.clone());
    for page_no in 0.. {
        assert!(page_no < 5000, "the pages never end: {base:?}");
        let page = list_versions(meta, bucket, &q).await.expect("list versions");
        let entries = page.versions.len() + page.common_prefixes.len();
        assert!(entries <= q.max_keys, "{entries} entries on a page of {}: {q:?}", q.max_keys);
        if base.max_scan > 0 {
            // Every entry stands for at least one row read, and no page reads past its bound.
            assert!(entries <= base.max_scan, "{entries} entries while reading at most {}: {q:?}", base.max_scan);
        }
        versions.extend(page.versions.iter().map(|v| (v.key.to_string(), v.meta.version_id.as_str().to_owned())));
        common.extend(page.common_prefixes.iter().cloned());
        if !page.is_truncated {
            break;
        }
        assert!(page.next_key_marker.is_some(), "a truncated page says where to resume: {q:?}");
        q.key_marker = page.next_key_marker;
        q.version_marker = page.next_version_marker;
    }
    (versions, common)
}

#[tokio::test]
async fn a_version_listing_bounded_in_rows_lists_every_version_once_in_order() {
    let (meta, _held) = common::engine().await;
    let bucket = BucketName::parse("versions-test").expect("name");
    let mut rng = Rng(0x0bad_cafe_1234_5678);
    let total = versioned_keys(meta.as_ref(), &bucket, &mut rng).await;
    let all = VersionQuery { max_keys: 1000, max_scan: usize::MAX, ..Default::default() };
    let (everything, _) = versions_followed(meta.as_ref(), &bucket, &all).await;
    assert_eq!(everything.len(), total, "one entry per version and delete marker");

    let prefixes = ["", "a", "a/", "zz/", "q"];
    let delimiters = [None, Some("/"), Some("a"), Some("b/")];
    for case in 0..150 {
        let unbounded = VersionQuery {
            prefix: rng.pick(&prefixes).to_owned(),
            delimiter: delimiters[rng.below(delimiters.len())].map(str::to_owned),
            max_keys: 1000,
            max_scan: usize::MAX,
            ..Default::default()
        };
        let bounded = VersionQuery { max_keys: 1 + rng.below(40), max_scan: 1 + rng.below(6), ..unbounded.clone() };
        let want = versions_followed(meta.as_ref(), &bucket, &unbounded).await;
        let got = versions_followed(meta.as_ref(), &bucket, &bounded).await;
        assert_eq!(got, want, "case {case}: {bounded:?}");
    }
}
