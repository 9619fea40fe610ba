//! The validated plan: what execution code sees instead of TOML.
//!
//! Every value here has been checked: names are valid, references resolve, paths are
//! absolute, schedules parse, durations are numbers. Code that runs backups, verifies or
//! drills takes a `Plan` and never re-checks. New sections (alerts, say) are added as
//! another map of named, validated values beside the ones below.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::format::anomaly::Policy;
use crate::format::names::{DatasetName, RegionName, Tag};

use super::json_path::JsonPath;
use super::retention::Retention;
use super::schedule::Schedule;

macro_rules! plan_name {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        /// Same rules as every other name: 1-64 letters, digits, `-`, `_`, `.`.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            pub fn new(name: &str) -> Option<Self> {
                Tag::new(name).ok().map(|_| Self(name.to_string()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

plan_name!(
    /// The name of a `[verify.NAME]` policy.
    VerifyName
);
plan_name!(
    /// The name of an `[endpoints.NAME]` entry.
    EndpointName
);
plan_name!(
    /// The name of a `[playbooks.NAME]` entry.
    PlaybookName
);

/// A whole plan file, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The plan file as it was given to `validate`.
    pub file: PathBuf,
    pub version: u32,
    pub key: KeySource,
    pub regions: BTreeMap<RegionName, Region>,
    pub datasets: BTreeMap<DatasetName, Dataset>,
    pub verify: BTreeMap<VerifyName, VerifyPolicy>,
    pub endpoints: BTreeMap<EndpointName, Endpoint>,
    pub playbooks: BTreeMap<PlaybookName, Playbook>,
    pub alerts: Alerts,
    /// `[signing]`, when the plan has one.
    pub signing: Option<Signing>,
}

/// How snapshot manifests are signed and whose signatures are trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signing {
    /// The private key (PEM, PKCS#8) that signs datasets with `sign = true`.
    pub key: Option<KeySource>,
    /// Public key files (PEM) whose signatures restore, verify and drills accept.
    pub trusted: Vec<PathBuf>,
}

/// Where failures (a verification that finds damage, say) are reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alerts {
    /// Receives a JSON POST per alert.
    pub webhook: Option<UrlSource>,
    /// Run per alert, with `LIFEBOAT_ALERT_*` variables describing it.
    pub command: Option<Vec<String>>,
    /// Variables of Lifeboat's own environment the command also receives.
    pub env: Vec<String>,
}

/// A URL written in the plan, or one read from a secret reference because the URL
/// itself is the credential (a webhook with a token in its path or query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    Plain(String),
    Secret(KeySource),
}

/// Where a secret comes from, never the secret itself. Sources are tried in order
/// (`env`, then `file`, then `command`); the first that yields a value wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySource {
    pub sources: Vec<SecretSource>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable's name.
    Env(String),
    /// A file whose first line is the secret (absolute path).
    File(PathBuf),
    /// A program and its arguments, run without a shell; its first output line.
    Command(Vec<String>),
}

/// One repository location and how it may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub name: RegionName,
    pub address: RepoAddress,
    pub storage_class: Option<String>,
    /// Object Lock retention in days; `None` for mutable storage.
    pub immutable_days: Option<u32>,
    /// Whether `apply` may initialise the repository if it does not exist.
    pub create: bool,
    /// Where the region's S3 credentials come from.
    pub credentials: RegionCredentials,
}

/// Where one region's S3 credentials come from; references only, never a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RegionCredentials {
    /// The AWS CLI's chain: environment, `AWS_PROFILE`, SSO, web identity, metadata.
    #[default]
    Chain,
    /// One profile of the shared AWS config and credentials files.
    Profile(String),
    /// An access key pair, each half read from a secret reference.
    Keys {
        access_key_id: KeySource,
        secret_access_key: KeySource,
    },
}

/// A repository address, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoAddress {
    /// A local directory (absolute).
    Local(PathBuf),
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: Option<String>,
    },
    Memory(String),
}

impl RepoAddress {
    /// The address in the URL form the storage layer accepts.
    pub fn to_url(&self) -> String {
        match self {
            RepoAddress::Local(path) => format!("file://{}", path.display()),
            RepoAddress::Memory(name) => format!("memory://{name}"),
            RepoAddress::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                let query: Vec<String> = [("endpoint", endpoint), ("region", region)]
                    .into_iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
                    .collect();
                let query = if query.is_empty() {
                    String::new()
                } else {
                    format!("?{}", query.join("&"))
                };
                format!("s3://{bucket}/{prefix}{query}")
            }
        }
    }
}

/// What a dataset holds; `Model` marks checkpoints (large, write-once files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetKind {
    Files,
    Model,
}

/// Something to protect: which paths, how often, where to, for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: DatasetName,
    /// Absolute paths (relative ones resolved against the plan file's directory).
    pub paths: Vec<PathBuf>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub kind: DatasetKind,
    pub schedule: Schedule,
    pub regions: Vec<RegionName>,
    pub retention: Retention,
    /// The recovery point objective: the most data, in time, that may be lost.
    pub rpo: Duration,
    pub tags: Vec<Tag>,
    /// Whether each snapshot's manifest is signed.
    pub sign: bool,
    /// Write no snapshot when nothing changed since the last one; the run still
    /// counts as a successful backup.
    pub skip_unchanged: bool,
    /// How backups are judged for anomalies (ransomware); `None` when turned off.
    pub anomaly: Option<Policy>,
}

/// A scheduled test restore.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyPolicy {
    pub name: VerifyName,
    pub schedule: Schedule,
    /// The datasets to verify (all of the plan's when the plan does not say).
    pub datasets: Vec<DatasetName>,
    /// The regions to verify from (all of the plan's when the plan does not say).
    pub regions: Vec<RegionName>,
    /// The share of files restored and compared each run, in (0, 1].
    pub sample_fraction: f64,
    /// Where test restores are written (absolute); a temporary directory when `None`.
    pub scratch: Option<PathBuf>,
}

/// How traffic for one service is re-pointed, and the address per region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: EndpointName,
    pub provider: Provider,
    /// What the endpoint points at when a region serves (an IP, host, URL, ...).
    pub targets: BTreeMap<RegionName, String>,
    /// The drill route: the same provider with some settings overridden, re-pointed by
    /// drills instead of the production route.
    pub drill: Option<Provider>,
    /// Variables of Lifeboat's own environment passed to the provider's programs.
    pub env: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsRecordType {
    A,
    Aaaa,
    Cname,
}

/// The HMAC a TSIG key signs with; it must match the key as the server knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TsigAlgorithm {
    #[default]
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithm {
    /// The name as written in plans and server configurations.
    pub fn as_str(self) -> &'static str {
        match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha384 => "hmac-sha384",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// An RFC 2136 dynamic update of one record.
    Dns {
        server: String,
        zone: String,
        record: String,
        record_type: DnsRecordType,
        ttl: Duration,
        tsig_key_name: Option<String>,
        tsig_secret: Option<KeySource>,
        tsig_algorithm: TsigAlgorithm,
        /// Resolvers asked after the change, besides `server`, until they return the target.
        verify_resolvers: Vec<std::net::SocketAddr>,
    },
    /// Render `template` with the target, replace the file atomically, run `check`
    /// (the old file comes back if it fails), then run `reload`.
    File {
        path: PathBuf,
        /// `{target}`, `{region}` and `{endpoint}` are replaced; `None` writes the target.
        template: Option<String>,
        check: Option<Vec<String>>,
        reload: Option<Vec<String>>,
    },
    /// Send the target to a gateway's admin API.
    Http {
        url: String,
        method: String,
        token: Option<KeySource>,
        /// Request body; placeholders as in `File::template`.
        body: Option<String>,
        /// The status that means success; any 2xx when `None`.
        expect_status: Option<u16>,
        /// Read the change back from the gateway; `None` trusts the answer's status.
        verify: Option<HttpVerify>,
    },
    /// Run a program with the target as its last argument (and in `LIFEBOAT_TARGET`).
    Command {
        command: Vec<String>,
        /// Run after the change, with the target likewise: a non-zero exit fails the step.
        verify: Option<Vec<String>>,
    },
}

/// An HTTP read-back: `GET url` (with the endpoint's token) must answer 2xx, its body
/// contain `contains`, and the JSON value at each pointer of `json` equal the given one.
/// Placeholders (`{target}`, `{region}`, ...) are replaced in the URL, `contains` and
/// string values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpVerify {
    pub url: String,
    pub contains: Option<String>,
    pub json: BTreeMap<String, serde_json::Value>,
}

/// An ordered recovery procedure with a time objective.
#[derive(Debug, Clone, PartialEq)]
pub struct Playbook {
    pub name: PlaybookName,
    pub description: Option<String>,
    /// The recovery time objective for the whole playbook.
    pub rto: Duration,
    pub steps: Vec<Step>,
    /// Steps run, in order, if a step fails (after the re-points are undone).
    pub rollback: Vec<Step>,
    /// Where traffic is served normally: re-points are undone back to it.
    pub primary: Option<RegionName>,
    /// The region the playbook recovers into: restores without a region use it.
    pub standby: Option<RegionName>,
    /// When the daemon rehearses this playbook as a drill; never when `None`.
    pub drill_schedule: Option<Schedule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: Option<String>,
    pub timeout: Option<Duration>,
    pub action: StepAction,
    /// Variables of Lifeboat's own environment passed to the step's program (command
    /// steps and command probes); every other variable is withheld.
    pub env: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepAction {
    Restore {
        dataset: DatasetName,
        /// `None`: whichever region is reachable.
        region: Option<RegionName>,
        snapshot: String,
        target: PathBuf,
    },
    Probe(Probe),
    Repoint {
        endpoint: EndpointName,
        to: RegionName,
    },
    Command {
        command: Vec<String>,
    },
    Wait {
        duration: Duration,
    },
    Notify {
        message: String,
        url: Option<UrlSource>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// An HTTP request, retried until it passes or the step's deadline.
    Http(HttpProbe),
    /// Run the program, retried every `interval` until it exits 0 or the step's deadline.
    Command { argv: Vec<String>, interval: Duration },
}

/// One HTTP request and what its answer must look like.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpProbe {
    pub url: String,
    /// Used instead of `url` by drills (the drill route's address).
    pub drill_url: Option<String>,
    pub method: String,
    pub body: Option<String>,
    /// The status that means healthy; any 2xx when `None`.
    pub expect_status: Option<u16>,
    /// Text the body must contain.
    pub expect_body: Option<String>,
    /// JSON pointer (`/answer`) → the value found there must equal.
    pub expect_json: BTreeMap<String, serde_json::Value>,
    /// Pause between attempts.
    pub interval: Duration,
    /// `record_baseline = true`: the answer is compared with one recorded by an earlier run.
    pub baseline: Option<Baseline>,
}

/// How a probe's answer is compared with its recorded baseline (model drift).
#[derive(Debug, Clone, PartialEq)]
pub enum Baseline {
    /// `compare = "exact"`: the body must be the recorded one, byte for byte.
    Exact,
    /// `compare = "json"` or a `tolerance` table: the body must be JSON equal to the
    /// recorded one, except that the numbers at these paths may differ by up to their
    /// tolerance.
    Json { tolerance: Vec<(JsonPath, f64)> },
}
