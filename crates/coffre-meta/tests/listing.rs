//! Listing through a real engine (embedded, or PostgreSQL under
//! `COFFRE_TEST_PG`), checked against a naive model
//! over random keys, prefixes, delimiters, resume points and page sizes.

use std::collections::BTreeSet;
use std::ops::Bound;

use coffre_core::list::{ListQuery, list};
use coffre_core::meta::{BucketRecord, DataLocation, ObjectVersion, PutObject, WriteCondition};
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
