//! Property tests for signed manifests: statements and stored manifests round-trip, a
//! DSSE envelope verifies only under its own key, and no flipped byte anywhere in the
//! payload or the signature is ever accepted.

use base64::Engine as _;
use lifeboat::format::digest::Sha256;
use lifeboat::format::dsse::Envelope;
use lifeboat::format::ids::{ContentHash, SnapshotId};
use lifeboat::format::manifest::{ManifestFile, ModelSignature, SnapshotManifest, StoredManifest};
use lifeboat::format::names::DatasetName;
use lifeboat::format::oms;
use lifeboat::format::signing::{SigningKey, generate};
use proptest::prelude::*;
use std::sync::LazyLock;

/// One key for every case: generating a key per case would only slow the test.
static KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::from_pem(generate().unwrap().0.as_bytes()).unwrap());

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn files() -> impl Strategy<Value = Vec<ManifestFile>> {
    let file = (
        "[a-z]{1,6}(/[a-z0-9_-][a-z0-9._-]{0,7}){0,3}",
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(path, size, sha, b3)| ManifestFile {
            path,
            size,
            sha256: Sha256(sha),
            blake3: ContentHash(b3),
        });
    prop::collection::vec(file, 0..20).prop_map(|mut v| {
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v.dedup_by(|a, b| a.path == b.path);
        v
    })
}

fn manifest() -> impl Strategy<Value = SnapshotManifest> {
    (
        any::<[u8; 32]>(),
        "[a-z][a-z0-9-]{0,12}",
        "[a-z.]{1,12}",
        0i64..4_000_000_000,
        files(),
    )
        .prop_map(|(id, ds, host, secs, files)| SnapshotManifest {
            snapshot: SnapshotId(id),
            dataset: DatasetName::new(&ds).unwrap(),
            host,
            time: chrono::DateTime::from_timestamp(secs, 0).unwrap(),
            files,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn statements_and_stored_manifests_round_trip(m in manifest()) {
        let envelope = Envelope::sign(&m.statement(), &KEY).unwrap();
        let (payload, signer) = envelope.verify(std::slice::from_ref(KEY.public())).unwrap();
        prop_assert_eq!(signer, KEY.public());
        prop_assert_eq!(SnapshotManifest::from_statement(&payload).unwrap(), m.clone());
        let model = Envelope::sign(&oms::statement(&m.files, "model"), &KEY).unwrap();
        let stored = StoredManifest {
            version: StoredManifest::VERSION,
            snapshot: envelope,
            models: vec![ModelSignature { path: "model".into(), hint: oms::key_hint(KEY.public()), envelope: model }],
            copied_from: None,
        };
        prop_assert_eq!(StoredManifest::decode(&stored.encode()).unwrap(), stored);
    }

    #[test]
    fn any_flipped_byte_in_the_payload_is_refused(m in manifest(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut envelope = Envelope::sign(&m.statement(), &KEY).unwrap();
        let mut payload = b64().decode(&envelope.payload).unwrap();
        let i = at.index(payload.len());
        payload[i] ^= 1 << bit;
        envelope.payload = b64().encode(&payload);
        prop_assert!(envelope.verify(std::slice::from_ref(KEY.public())).is_err());
    }

    #[test]
    fn any_flipped_byte_in_the_signature_is_refused(m in manifest(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut envelope = Envelope::sign(&m.statement(), &KEY).unwrap();
        let mut sig = b64().decode(&envelope.signatures[0].sig).unwrap();
        let i = at.index(sig.len());
        sig[i] ^= 1 << bit;
        envelope.signatures[0].sig = b64().encode(&sig);
        prop_assert!(envelope.verify(std::slice::from_ref(KEY.public())).is_err());
    }

    #[test]
    fn a_payload_type_or_statement_changed_after_signing_is_refused(m in manifest(), other in manifest()) {
        prop_assume!(m != other);
        let mut envelope = Envelope::sign(&m.statement(), &KEY).unwrap();
        envelope.payload = b64().encode(other.statement());
        prop_assert!(envelope.verify(std::slice::from_ref(KEY.public())).is_err());
    }

    #[test]
    fn stored_manifest_decoding_never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = StoredManifest::decode(&bytes);
        let _ = SnapshotManifest::from_statement(&bytes);
    }
}

#[test]
fn another_key_never_verifies() {
    let other = SigningKey::from_pem(generate().unwrap().0.as_bytes()).unwrap();
    let envelope = Envelope::sign(b"{}", &KEY).unwrap();
    assert!(envelope.verify(std::slice::from_ref(other.public())).is_err());
    assert!(envelope.verify(&[]).is_err());
}
