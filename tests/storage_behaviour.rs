//! One behaviour suite for every storage backend.
//!
//! Layers above `storage` assume all backends behave identically, so the same
//! assertions run against memory, a local directory and (when
//! `LIFEBOAT_TEST_S3_ENDPOINT` is set, e.g. `http://127.0.0.1:9101` for moto_server)
//! a real S3 server. Each backend starts from an empty store.

mod servers;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use lifeboat::storage::{
    ErrorKind, FS_TEMP_DIR, FaultStore, OpenOptions, Store, open, open_with, probe_conditional_writes,
};

/// Large enough to take the S3 multipart path (threshold 16 MiB, parts of 8 MiB).
const LARGE_OBJECT_LEN: usize = 17 * 1024 * 1024 + 3;

async fn behaves_like_a_store(store: Arc<dyn Store>) {
    let store = store.as_ref();
    missing_objects_are_reported(store).await;
    put_replaces_and_get_returns_exact_bytes(store).await;
    get_range_returns_the_requested_bytes(store).await;
    stat_reports_size(store).await;
    list_is_recursive_prefix_match_of_files_only(store).await;
    delete_removes_and_tolerates_missing(store).await;
    put_if_absent_writes_once(store).await;
    concurrent_put_if_absent_has_one_winner(store).await;
    large_objects_round_trip(store).await;
    invalid_keys_are_refused(store).await;
    assert!(probe_conditional_writes(store).await.unwrap(), "{}", store.address());
    assert!(store.list("").await.unwrap().is_empty(), "suite left objects behind");
}

async fn missing_objects_are_reported(store: &dyn Store) {
    let err = store.get("nothing/here").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.location, format!("{}/nothing/here", store.address()));
    let range_err = store.get_range("nothing/here", 0..1).await.unwrap_err();
    assert!(range_err.is_not_found(), "{range_err}");
    assert_eq!(store.stat("nothing/here").await.unwrap(), None);
    assert!(store.list("").await.unwrap().is_empty());
}

async fn put_replaces_and_get_returns_exact_bytes(store: &dyn Store) {
    store.put("a/obj", bytes(b"first version")).await.unwrap();
    assert_eq!(store.get("a/obj").await.unwrap(), bytes(b"first version"));
    store.put("a/obj", bytes(b"second")).await.unwrap();
    assert_eq!(store.get("a/obj").await.unwrap(), bytes(b"second"));
    store.put("a/empty", Bytes::new()).await.unwrap();
    assert_eq!(store.get("a/empty").await.unwrap(), Bytes::new());
    let binary: Vec<u8> = (0..=255u8).collect();
    store.put("a/binary", Bytes::from(binary.clone())).await.unwrap();
    assert_eq!(store.get("a/binary").await.unwrap(), binary);
    for key in ["a/obj", "a/empty", "a/binary"] {
        store.delete(key).await.unwrap();
    }
}

async fn get_range_returns_the_requested_bytes(store: &dyn Store) {
    store.put("r", bytes(b"0123456789")).await.unwrap();
    assert_eq!(store.get_range("r", 0..10).await.unwrap(), bytes(b"0123456789"));
    assert_eq!(store.get_range("r", 3..7).await.unwrap(), bytes(b"3456"));
    assert_eq!(store.get_range("r", 9..10).await.unwrap(), bytes(b"9"));
    assert_eq!(store.get_range("r", 4..4).await.unwrap(), Bytes::new());
    let past_end = store.get_range("r", 8..20).await.unwrap_err();
    assert_eq!(past_end.kind, ErrorKind::Permanent, "{past_end}");
    assert!(past_end.message.contains("exceeds object size 10"), "{past_end}");
    store.delete("r").await.unwrap();
}

async fn stat_reports_size(store: &dyn Store) {
    store.put("s/k", bytes(b"12345")).await.unwrap();
    let meta = store.stat("s/k").await.unwrap().expect("object exists");
    assert_eq!((meta.key.as_str(), meta.size), ("s/k", 5));
    // A "directory" that only exists because of its children is not an object.
    assert_eq!(store.stat("s").await.unwrap(), None);
    store.delete("s/k").await.unwrap();
}

async fn list_is_recursive_prefix_match_of_files_only(store: &dyn Store) {
    let objects = [
        ("d/1", 1),
        ("d/sub/2", 2),
        ("d/sub/deeper/3", 3),
        ("dx/4", 4),
        ("top", 5),
    ];
    for (key, len) in objects {
        store.put(key, Bytes::from(vec![7u8; len])).await.unwrap();
    }
    let all = listed(store, "").await;
    let expected: BTreeMap<String, u64> = objects.iter().map(|(k, n)| (k.to_string(), *n as u64)).collect();
    assert_eq!(all, expected);
    assert_eq!(keys(listed(store, "d/").await), ["d/1", "d/sub/2", "d/sub/deeper/3"]);
    assert_eq!(
        keys(listed(store, "d").await),
        ["d/1", "d/sub/2", "d/sub/deeper/3", "dx/4"]
    );
    assert_eq!(keys(listed(store, "d/sub/de").await), ["d/sub/deeper/3"]);
    assert_eq!(keys(listed(store, "to").await), ["top"]);
    assert!(listed(store, "missing/").await.is_empty());
    for (key, _) in objects {
        store.delete(key).await.unwrap();
    }
}

async fn delete_removes_and_tolerates_missing(store: &dyn Store) {
    store.put("del/k", bytes(b"x")).await.unwrap();
    store.delete("del/k").await.unwrap();
    assert!(store.get("del/k").await.unwrap_err().is_not_found());
    store.delete("del/k").await.unwrap();
    store.delete("never/existed").await.unwrap();
}

async fn put_if_absent_writes_once(store: &dyn Store) {
    assert!(store.put_if_absent("locks/one", bytes(b"mine")).await.unwrap());
    assert!(!store.put_if_absent("locks/one", bytes(b"theirs")).await.unwrap());
    assert_eq!(store.get("locks/one").await.unwrap(), bytes(b"mine"));
    store.delete("locks/one").await.unwrap();
    assert!(store.put_if_absent("locks/one", bytes(b"again")).await.unwrap());
    assert_eq!(store.get("locks/one").await.unwrap(), bytes(b"again"));
    store.delete("locks/one").await.unwrap();
}

async fn concurrent_put_if_absent_has_one_winner(store: &dyn Store) {
    let attempts = (0..8u8).map(|i| store.put_if_absent("locks/race", Bytes::from(vec![i; 64])));
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<usize> = results
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.unwrap().then_some(i))
        .collect();
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let stored = store.get("locks/race").await.unwrap();
    assert_eq!(stored, Bytes::from(vec![winners[0] as u8; 64]));
    store.delete("locks/race").await.unwrap();
}

async fn large_objects_round_trip(store: &dyn Store) {
    let data: Bytes = (0..LARGE_OBJECT_LEN).map(|i| (i % 251) as u8).collect();
    store.put("big/blob", data.clone()).await.unwrap();
    let meta = store.stat("big/blob").await.unwrap().expect("large object exists");
    assert_eq!(meta.size, LARGE_OBJECT_LEN as u64);
    assert_eq!(store.get("big/blob").await.unwrap(), data);
    let boundary = 8 * 1024 * 1024;
    let across = store.get_range("big/blob", boundary - 5..boundary + 5).await.unwrap();
    assert_eq!(across, data.slice(boundary as usize - 5..boundary as usize + 5));
    assert!(!store.put_if_absent("big/blob", data.slice(..10)).await.unwrap());
    store.delete("big/blob").await.unwrap();
    assert!(store.put_if_absent("big/blob", data.clone()).await.unwrap());
    let reversed: Bytes = data.iter().rev().copied().collect();
    assert!(!store.put_if_absent("big/blob", reversed).await.unwrap());
    assert_eq!(store.get("big/blob").await.unwrap(), data);
    store.delete("big/blob").await.unwrap();
}

async fn invalid_keys_are_refused(store: &dyn Store) {
    for key in ["../escape", "/absolute", "a//b", "dir/"] {
        let err = store.put(key, bytes(b"x")).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent, "{key}: {err}");
    }
}

fn bytes(data: &'static [u8]) -> Bytes {
    Bytes::from_static(data)
}

async fn listed(store: &dyn Store, prefix: &str) -> BTreeMap<String, u64> {
    let objects = store.list(prefix).await.unwrap();
    let count = objects.len();
    let map: BTreeMap<String, u64> = objects.into_iter().map(|o| (o.key, o.size)).collect();
    assert_eq!(map.len(), count, "list returned duplicate keys");
    map
}

fn keys(listing: BTreeMap<String, u64>) -> Vec<String> {
    listing.into_keys().collect()
}

#[tokio::test]
async fn memory_store_behaves() {
    behaves_like_a_store(open("memory://behaviour-suite").unwrap()).await;
}

#[tokio::test]
async fn fs_store_behaves() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().to_string_lossy()).unwrap();
    behaves_like_a_store(store).await;
    let leftovers = std::fs::read_dir(dir.path().join(FS_TEMP_DIR)).unwrap().count();
    assert_eq!(leftovers, 0, "temporary files left behind");
}

#[tokio::test]
async fn fs_store_objects_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("file://{}", dir.path().display());
    let create = OpenOptions {
        create: true,
        ..OpenOptions::default()
    };
    let first = open_with(&address, create).unwrap();
    first.put("config", bytes(b"repo config")).await.unwrap();
    drop(first);
    let reopened = open(&address).unwrap();
    assert_eq!(reopened.get("config").await.unwrap(), bytes(b"repo config"));
    assert_eq!(std::fs::read(dir.path().join("config")).unwrap(), b"repo config");
}

#[tokio::test]
async fn fault_store_without_faults_behaves_like_its_inner_store() {
    let inner = open("memory://behaviour-suite-fault-wrapper").unwrap();
    behaves_like_a_store(Arc::new(FaultStore::new(inner))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_readers_never_see_a_partly_written_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().to_string_lossy()).unwrap();
    store
        .put("pack", Bytes::from(vec![0u8; LARGE_OBJECT_LEN]))
        .await
        .unwrap();
    let writer = tokio::spawn({
        let store = store.clone();
        async move {
            for fill in 1..=3u8 {
                let data = Bytes::from(vec![fill; LARGE_OBJECT_LEN]);
                store.put("pack", data).await.unwrap();
            }
        }
    });
    while !writer.is_finished() {
        let seen = store.get("pack").await.unwrap();
        assert_eq!(seen.len(), LARGE_OBJECT_LEN, "torn read");
        assert!(seen.iter().all(|b| *b == seen[0]), "mixed versions in one read");
    }
    writer.await.unwrap();
    assert_eq!(store.get("pack").await.unwrap()[0], 3);
}

#[tokio::test]
async fn s3_store_behaves() {
    let Ok(endpoint) = std::env::var("LIFEBOAT_TEST_S3_ENDPOINT") else {
        return servers::missing("s3_store_behaves", "LIFEBOAT_TEST_S3_ENDPOINT is not set");
    };
    let bucket = format!("lifeboat-test-{:08x}", rand::random::<u32>());
    if let Err(reason) = create_bucket(&endpoint, &bucket) {
        return servers::missing("s3_store_behaves", &format!("no bucket on {endpoint}: {reason}"));
    }
    let address = format!("s3://{bucket}/pfx?endpoint={endpoint}");
    behaves_like_a_store(open(&address).unwrap()).await;
}

/// Create `bucket` with boto3, the one S3 client assumed to be around in test setups;
/// opendal cannot create buckets.
fn create_bucket(endpoint: &str, bucket: &str) -> Result<(), String> {
    let script = "import sys, boto3; boto3.client('s3', endpoint_url=sys.argv[1], \
                  region_name='us-east-1').create_bucket(Bucket=sys.argv[2])";
    let output = std::process::Command::new("python3")
        .args(["-c", script, endpoint, bucket])
        .output()
        .map_err(|err| format!("cannot run python3 to create the bucket: {err}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'boto3'") {
        return Err("python3 has no boto3 to create the test bucket".into());
    }
    panic!("creating bucket {bucket} at {endpoint} failed: {stderr}");
}
