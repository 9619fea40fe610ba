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
