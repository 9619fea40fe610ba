//! Targets for objects a repository reads through its store: each input is written
//! into an in-memory repository and read back by the library's own code path.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use lifeboat::format::blob::Compression;
use lifeboat::format::ids::IndexId;
use lifeboat::repo::{InitOptions, KdfParams, Repository, layout};
use lifeboat::storage::Store;
use tokio::runtime::Runtime;

struct Fixture {
    runtime: Runtime,
    repo: Repository,
    /// The repository's store, to plant hostile objects in it.
    store: Arc<dyn Store>,
}

/// One repository per process, created with a cheap key derivation.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let store = lifeboat::storage::open("memory://fuzz-repo").expect("a memory store");
        let opts = InitOptions {
            kdf: KdfParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            ..InitOptions::default()
        };
        let repo = runtime
            .block_on(Repository::init(store.clone(), b"fuzz password", &opts))
            .expect("a repository in memory");
        Fixture { runtime, repo, store }
    })
}

/// Input: a `locks/` object (JSON, not sealed); read as every lease check does.
pub fn lease(data: &[u8]) {
    let f = fixture();
    let store = &f.store;
    let key = layout::lock("fuzz");
    f.runtime.block_on(async {
        store.put(&key, Bytes::copy_from_slice(data)).await.expect("memory put");
        let _ = f.repo.live_leases().await;
        let _ = f.repo.remove_stale_leases().await;
        store.delete(&key).await.expect("memory delete");
    });
}

/// Input: a prune record's plaintext (`activated ms i64 LE || index encoding`),
/// sealed with the repository's key and read as `prune` and `repair` read it.
pub fn prune_record(data: &[u8]) {
    let f = fixture();
    let sealed = f.repo.seal(data, Compression::OFF);
    let key = layout::prune_record(&IndexId::of_bytes(&sealed).to_hex());
    let store = &f.store;
    f.runtime.block_on(async {
        store.put(&key, Bytes::from(sealed)).await.expect("memory put");
        let _ = lifeboat::engine::prune::condemned_packs(&f.repo).await;
        store.delete(&key).await.expect("memory delete");
    });
}
