//! Typed access to the repository's bookkeeping objects: prune records, retention
//! ledgers and stored reports.
//!
//! Each is a sealed value under its own prefix (docs/format.md, section 3), encoded by
//! its codec in `format` and read only up to its kind's bound. Callers name records
//! by the last part of their key; the prefixes stay in `layout`.

use bytes::Bytes;

use super::bounded::{MAX_INDEX, MAX_SEALED_OBJECT, read_bounded};
use super::error::{RepoError, Result};
use super::objects::ObjectKind;
use super::{Repository, layout};
use crate::format::blob::Compression;
use crate::format::ids::ContentHash;
use crate::format::ledger::Ledger;
use crate::format::prune::PruneRecord;
use crate::format::report::{self, ReportName};

impl Repository {
    /// Seal `plain`, store it under `name(hash of the sealed bytes)`, return that hash.
    async fn put_sealed(
        &self,
        kind: ObjectKind,
        plain: &[u8],
        level: Compression,
        name: fn(&str) -> String,
    ) -> Result<String> {
        let sealed = self.seal(plain, level);
        let id = ContentHash::of_bytes(&sealed).to_hex();
        self.put(kind, &name(&id), Bytes::from(sealed)).await?;
        Ok(id)
    }

    /// Names (last key part) and sizes of the objects under `prefix`.
    async fn names(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let listed = self.store.list(prefix).await?;
        Ok(listed
            .into_iter()
            .map(|m| (layout::id_part(&m.key).to_string(), m.size))
            .collect())
    }

    /// Store a prune record; returns its name.
    pub async fn save_prune_record(&self, record: &PruneRecord) -> Result<String> {
        self.put_sealed(
            ObjectKind::PruneRecord,
            &record.encode(),
            Compression::OFF,
            layout::prune_record,
        )
        .await
    }

    /// Every prune record, by name. One that cannot be read is damage: its packs are
    /// out of the index, and only the record can put them back.
    pub async fn prune_records(&self) -> Result<Vec<(String, PruneRecord)>> {
        let mut out = Vec::new();
        for (name, size) in self.names(layout::PRUNE).await? {
            let key = layout::prune_record(&name);
            let raw = read_bounded(self.store.as_ref(), &key, Some(size), MAX_INDEX).await?;
            let plain = self.open_sealed(&key, &raw)?;
            let record = PruneRecord::decode(&plain).map_err(|e| RepoError::damaged(&key, e))?;
            out.push((name, record));
        }
        Ok(out)
    }

    pub async fn delete_prune_record(&self, name: &str) -> Result<()> {
        Ok(self.store.delete(&layout::prune_record(name)).await?)
    }

    /// Store a retention ledger; returns its name.
    pub async fn save_ledger(&self, ledger: &Ledger) -> Result<String> {
        self.put_sealed(
            ObjectKind::RetentionLedger,
            &ledger.encode(),
            Compression::DEFAULT,
            layout::retention_ledger,
        )
        .await
    }

    /// Every retention ledger's name, with its content when it can be read: an
    /// unreadable ledger only means its packs count as unknown.
    pub async fn ledgers(&self) -> Result<Vec<(String, Option<Ledger>)>> {
        let mut out = Vec::new();
        for (name, size) in self.names(layout::RETENTION).await? {
            let key = layout::retention_ledger(&name);
            let ledger = match read_bounded(self.store.as_ref(), &key, Some(size), MAX_SEALED_OBJECT).await {
                Ok(sealed) => self
                    .open_sealed(&key, &sealed)
                    .ok()
                    .and_then(|p| Ledger::decode(&p).ok()),
                Err(_) => None,
            };
            out.push((name, ledger));
        }
        Ok(out)
    }

    pub async fn delete_ledger(&self, name: &str) -> Result<()> {
        Ok(self.store.delete(&layout::retention_ledger(name)).await?)
    }

    /// Store a report under `reports/<name>`, replacing one of that name.
    pub async fn save_report(&self, name: &ReportName, data: &[u8]) -> Result<()> {
        let key = layout::report(name.as_str());
        report::check_len(data).map_err(|e| RepoError::Invalid(format!("{key}: {e}")))?;
        let sealed = self.seal(data, self.compression());
        self.put(ObjectKind::Report, &key, Bytes::from(sealed)).await
    }

    /// The names of every object under `reports/`, sorted. Names no writer could have
    /// chosen are included, for the caller to pass over and name (`ReportName::parse`).
    pub async fn report_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = (self.names(layout::REPORTS).await?.into_iter())
            .map(|(name, _)| name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// One stored report's bytes, as saved.
    pub async fn load_report(&self, name: &ReportName) -> Result<Vec<u8>> {
        let key = layout::report(name.as_str());
        let sealed = read_bounded(self.store.as_ref(), &key, None, MAX_SEALED_OBJECT).await?;
        let plain = self.open_sealed(&key, &sealed)?;
        report::check_len(&plain).map_err(|e| RepoError::damaged(&key, e))?;
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::format::ids::PackId;
    use crate::format::index::{IndexFile, IndexedPack};
    use crate::repo::test_init_options;
    use crate::storage::{OpendalStore, Store};

    async fn repo() -> (Arc<dyn Store>, Repository) {
        let store: Arc<dyn Store> =
            Arc::new(OpendalStore::memory(format!("records-{}", rand::random::<u64>())).unwrap());
        let repo = Repository::init(store.clone(), b"pw", &test_init_options())
            .await
            .unwrap();
        (store, repo)
    }

    #[tokio::test]
    async fn prune_records_and_ledgers_round_trip_under_their_names() {
        let (store, repo) = repo().await;
        let record = PruneRecord {
            activated: None,
            packs: IndexFile {
                supersedes: Vec::new(),
                packs: vec![IndexedPack {
                    id: PackId([4; 32]),
                    blobs: Vec::new(),
                }],
            },
        };
        let name = repo.save_prune_record(&record).await.unwrap();
        assert!(store.stat(&format!("prune/{name}")).await.unwrap().is_some());
        assert_eq!(repo.prune_records().await.unwrap(), vec![(name.clone(), record)]);
        repo.delete_prune_record(&name).await.unwrap();
        assert!(repo.prune_records().await.unwrap().is_empty());

        let now = chrono::DateTime::from_timestamp(1_764_000_000, 0).unwrap();
        let ledger = Ledger::from_map(&HashMap::from([(PackId([5; 32]), now)]));
        let name = repo.save_ledger(&ledger).await.unwrap();
        store
            .put("retention/garbled", Bytes::from_static(b"not sealed"))
            .await
            .unwrap();
        let mut found = repo.ledgers().await.unwrap();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        // Sorted by name: a content hash in hex sorts before "garbled".
        assert_eq!(found, vec![(name, Some(ledger)), ("garbled".to_string(), None)]);
    }

    #[tokio::test]
    async fn a_damaged_prune_record_is_damage_naming_it() {
        let (store, repo) = repo().await;
        let sealed = repo.seal(b"\x01\x02", Compression::OFF);
        store.put("prune/short", Bytes::from(sealed)).await.unwrap();
        let err = repo.prune_records().await.unwrap_err();
        assert!(err.is_damage() && err.to_string().contains("prune/short"), "{err}");
    }

    #[tokio::test]
    async fn reports_round_trip_and_odd_names_are_listed_but_never_read() {
        let (store, repo) = repo().await;
        let name = ReportName::parse("20261201T100000.000Z-db-drill.json").unwrap();
        repo.save_report(&name, b"{\"ok\":true}").await.unwrap();
        assert_eq!(repo.load_report(&name).await.unwrap(), b"{\"ok\":true}");
        store.put("reports/a b", Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(
            repo.report_names().await.unwrap(),
            vec!["20261201T100000.000Z-db-drill.json".to_string(), "a b".to_string()]
        );
        // A report object longer than one sealed value is refused before it is read.
        let huge = ReportName::parse("huge.json").unwrap();
        let too_long = vec![0u8; MAX_SEALED_OBJECT as usize + 1];
        store.put("reports/huge.json", Bytes::from(too_long)).await.unwrap();
        let err = repo.load_report(&huge).await.unwrap_err();
        assert!(
            err.is_damage() && err.to_string().contains("reports/huge.json"),
            "{err}"
        );
    }
}
