//! Backup anomaly signals and their verdict: what a backup saw change, and how far
//! that strays from the dataset's own history.
//!
//! Ransomware that encrypts a dataset shows in the backup that follows: many files
//! changed at once, what changed no longer compresses, names gain an extension the
//! dataset never had, originals vanish while same-sized files appear beside them.
//! Each backup records those counts ([`Signals`]) in its snapshot summary, so every
//! region carries the history; the next backup compares its own against the last
//! [`WINDOW`] with the median and the median absolute deviation (robust to the odd
//! large run, unlike a mean and standard deviation), and records the [`Verdict`].
//! Pure: the history and the policy come in as values.

use serde::{Deserialize, Serialize};

use super::ids::SnapshotId;

/// How many earlier snapshots of a dataset form its baseline.
pub const WINDOW: usize = 30;
/// At most this many distinct extensions are remembered per dataset (see `extensions`).
pub const MAX_EXTENSIONS: usize = 512;
/// Longer extensions are not extensions but names with a dot in them.
const MAX_EXTENSION_LEN: usize = 16;
/// The scale that makes a MAD comparable to a standard deviation for normal data.
const MAD_SCALE: f64 = 1.4826;
/// The least spread a share is allowed, so that a dataset whose history is perfectly
/// flat (no deletions ever) does not call one deleted file an anomaly.
const MIN_SPREAD: f64 = 0.02;
/// Changes below this many files or bytes of new data say too little to judge a share.
const MIN_FILES: u64 = 5;
const MIN_SEALED_BYTES: u64 = 256 << 10;

/// What one backup saw change, beyond the counts every summary has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signals {
    /// Files of the parent snapshot that are gone.
    pub files_deleted: u64,
    /// New files with the size of a file deleted from the same directory.
    pub files_renamed: u64,
    /// New or changed files whose extension the parent snapshot did not have.
    pub files_new_extension: u64,
    /// Bytes of new data the compressibility probe judged (data blobs sealed this run).
    pub bytes_judged: u64,
    /// Of those, the bytes that did not compress (stored raw).
    pub bytes_incompressible: u64,
    /// Changed, new and deleted files in the directory that had most of them.
    pub top_dir_changes: u64,
    /// That directory, relative to the backup's sources (at most 256 bytes).
    #[serde(default)]
    pub top_dir: String,
    /// Every extension the dataset's files have had, this snapshot's and its parent's
    /// set (lower case, sorted, at most [`MAX_EXTENSIONS`]; `""` for files without
    /// one), for the next backup's churn.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// More extensions were seen than are kept: churn is then not counted.
    #[serde(default)]
    pub extensions_full: bool,
}

/// How a snapshot compares with its dataset's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The largest robust z-score over the judged shares (0 when nothing stood out).
    pub score: f64,
    /// Which share gave the score (`changed`, `deleted`, `renamed`, `incompressible`,
    /// `new_extension`).
    pub signal: String,
    /// The score passed the dataset's threshold with enough history behind it.
    pub suspect: bool,
    /// How many earlier snapshots the baseline had.
    pub history: u32,
    /// The last snapshot before the anomaly (the parent), kept while it is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<SnapshotId>,
}

// Scores are always finite (see `score`), so equality is reflexive.
impl Eq for Verdict {}

/// A dataset's thresholds (`anomaly = { ... }` in a plan).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// A score above this makes a snapshot suspect.
    pub threshold: f64,
    /// Earlier snapshots with signals needed before any snapshot can be suspect.
    pub min_history: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            threshold: Sensitivity::Medium.threshold(),
            min_history: 10,
        }
    }
}

/// The user-facing knob: how far from normal a backup must be to be suspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    Low,
    Medium,
    High,
}

impl Sensitivity {
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            _ => None,
        }
    }
    pub fn threshold(self) -> f64 {
        match self {
            Self::Low => 12.0,
            Self::Medium => 8.0,
            Self::High => 5.0,
        }
    }
}

/// One share of a run: a fraction, and what one file is worth in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    pub value: f64,
    /// The step one more file makes (`1 / whole` for file counts, 0 for bytes): in a
    /// dataset of six files, one config edit moves a share by a sixth, which is noise,
    /// not an anomaly, however flat the history.
    pub grain: f64,
}

/// Each judged share by name, `None` where the run says too little to judge it.
pub type Shares = [(&'static str, Option<Share>); 5];

/// The counts a share is computed from: a summary's and its signals'.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
}

/// The shares judged, by name, or `None` where the run says too little.
pub fn shares(counts: &Counts, s: &Signals) -> Shares {
    let touched = counts.files_new + counts.files_changed;
    let changes = touched + s.files_deleted;
    let files = changes + counts.files_unchanged;
    let of = |part: u64, whole: u64, least: u64| {
        (whole >= least).then(|| Share {
            value: part as f64 / whole as f64,
            grain: 1.0 / whole as f64,
        })
    };
    let bytes = of(s.bytes_incompressible, s.bytes_judged, MIN_SEALED_BYTES).map(|b| Share { grain: 0.0, ..b });
    [
        ("changed", of(changes, files, 1)),
        ("deleted", of(s.files_deleted, files, 1)),
        ("renamed", of(s.files_renamed, changes, MIN_FILES)),
        ("incompressible", bytes),
        (
            "new_extension",
            of(s.files_new_extension, touched, MIN_FILES).filter(|_| !s.extensions_full),
        ),
    ]
}

/// Judge one backup's shares against its dataset's earlier ones (oldest first; the
/// last [`WINDOW`] count). Only rises are anomalous: fewer changes than usual is not.
pub fn judge(now: &Shares, history: &[Shares], policy: &Policy) -> Verdict {
    let recent = &history[history.len().saturating_sub(WINDOW)..];
    let mut best = (0.0, String::new());
    for (i, (name, share)) in now.iter().enumerate() {
        let Some(x) = share else { continue };
        let past: Vec<f64> = recent.iter().filter_map(|h| h[i].1.map(|s| s.value)).collect();
        let z = robust_z(x, &past);
        if z > best.0 {
            best = (z, name.to_string());
        }
    }
    Verdict {
        score: best.0,
        signal: best.1,
        suspect: recent.len() >= policy.min_history && best.0 > policy.threshold,
        history: recent.len() as u32,
        pinned: None,
    }
}

/// How many spreads `x` lies above the median of `past` (0 below it or without a past).
/// The spread is the scaled MAD, but never less than [`MIN_SPREAD`] or one file's grain.
fn robust_z(x: &Share, past: &[f64]) -> f64 {
    if past.is_empty() || !x.value.is_finite() {
        return 0.0;
    }
    let mid = median(past.to_vec());
    let mad = median(past.iter().map(|v| (v - mid).abs()).collect());
    let spread = (MAD_SCALE * mad).max(MIN_SPREAD).max(x.grain);
    ((x.value - mid) / spread).max(0.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The extension a file name is counted under: lower case after the last dot, `""`
/// for none, `None` for what is not an extension (too long, not alphanumeric).
pub fn extension(name: &[u8]) -> Option<String> {
    let Some(dot) = name.iter().rposition(|&b| b == b'.') else {
        return Some(String::new());
    };
    let ext = &name[dot + 1..];
    if dot == 0 || ext.is_empty() {
        return Some(String::new());
    }
    let fits = ext.len() <= MAX_EXTENSION_LEN && ext.iter().all(u8::is_ascii_alphanumeric);
    fits.then(|| String::from_utf8_lossy(ext).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(new: u64, changed: u64, unchanged: u64, s: Signals) -> Shares {
        let c = Counts {
            files_new: new,
            files_changed: changed,
            files_unchanged: unchanged,
        };
        shares(&c, &s)
    }

    fn usual(i: u64) -> Shares {
        let s = Signals {
            files_deleted: 2 + i % 3,
            files_new_extension: i % 2,
            bytes_judged: 8 << 20,
            bytes_incompressible: (1 + i % 3) << 20,
            ..Signals::default()
        };
        run(10 + i % 4, 20 + i % 5, 900, s)
    }

    #[test]
    fn usual_churn_is_not_suspect_and_encryption_is() {
        let history: Vec<_> = (0..20).map(usual).collect();
        let policy = Policy::default();
        assert!(!judge(&usual(21), &history, &policy).suspect);
        let locked = Signals {
            files_deleted: 300,
            files_renamed: 280,
            files_new_extension: 300,
            bytes_judged: 300 << 20,
            bytes_incompressible: 300 << 20,
            ..Signals::default()
        };
        let v = judge(&run(300, 10, 620, locked), &history, &policy);
        assert!(v.suspect, "{v:?}");
        assert!(v.score > policy.threshold);
        assert_eq!(v.history, 20);
    }

    #[test]
    fn too_little_history_is_never_suspect() {
        let history: Vec<_> = (0..3).map(usual).collect();
        let wild = run(
            0,
            900,
            0,
            Signals {
                files_deleted: 900,
                ..Signals::default()
            },
        );
        let v = judge(&wild, &history, &Policy::default());
        assert!(v.score > 8.0 && !v.suspect, "{v:?}");
    }

    #[test]
    fn fewer_changes_than_usual_score_zero() {
        let history: Vec<_> = (0..12).map(usual).collect();
        let quiet = run(0, 0, 950, Signals::default());
        assert_eq!(judge(&quiet, &history, &Policy::default()).score, 0.0);
    }

    #[test]
    fn small_runs_leave_shares_unjudged() {
        let s = Signals {
            files_renamed: 1,
            bytes_judged: 1000,
            bytes_incompressible: 1000,
            ..Signals::default()
        };
        let shares = run(1, 1, 10, s);
        assert_eq!(shares[2].1, None);
        assert_eq!(shares[3].1, None);
        assert_eq!(shares[4].1, None);
        assert_eq!(shares[0].1.map(|s| s.value), Some(2.0 / 12.0));
    }

    #[test]
    fn one_file_more_in_a_small_dataset_is_not_an_anomaly() {
        let ckpt = |config: u64| {
            let s = Signals {
                files_deleted: 1,
                ..Signals::default()
            };
            run(1, 1 + config, 3 - config, s)
        };
        let history: Vec<_> = (0..15).map(|i| ckpt(u64::from(i % 7 == 0))).collect();
        let v = judge(&ckpt(1), &history, &Policy::default());
        assert!(v.score <= 1.0 && !v.suspect, "{v:?}");
    }

    #[test]
    fn extensions_are_normalised() {
        assert_eq!(extension(b"Report.DOCX").as_deref(), Some("docx"));
        assert_eq!(extension(b"a.tar.gz").as_deref(), Some("gz"));
        assert_eq!(extension(b"README").as_deref(), Some(""));
        assert_eq!(extension(b".bashrc").as_deref(), Some(""));
        assert_eq!(extension(b"x.with space"), None);
        assert_eq!(extension(b"x.abcdefghijklmnopq"), None);
    }

    #[test]
    fn signals_of_old_summaries_default() {
        let v: Verdict =
            serde_json::from_str(r#"{"score":9.5,"signal":"deleted","suspect":true,"history":12}"#).unwrap();
        assert_eq!(v.pinned, None);
        let s: Signals = serde_json::from_str(r#"{"files_deleted":1,"files_renamed":0,"files_new_extension":0,"bytes_judged":0,"bytes_incompressible":0,"top_dir_changes":1}"#).unwrap();
        assert!(s.extensions.is_empty());
    }
}
