//! OIDC bearer tokens: JWTs signed by an identity provider the daemon is told to trust.
//!
//! The provider's keys come from its discovery document
//! (`/.well-known/openid-configuration` → `jwks_uri`) and are cached. A token naming a
//! key id the cache lacks makes the daemon fetch the keys again, at most once a
//! minute, so the provider can rotate keys without a restart while a flood of made-up
//! key ids cannot make the daemon hammer it. Cached keys older than ten minutes are
//! fetched again too, so a key the provider withdrew stops being accepted. Every size
//! and wait is bounded: the token, the discovery document, the key set, each fetch.
//!
//! A token's subject is its `sub` prefixed with `oidc:`, which a static token's
//! subject can never hold (`:` is not allowed there), so the access log, the rate
//! limits and the audit trail can never take one for the other. Its grants are the
//! values of the roles claim, written like the token file's (`viewer`,
//! `operator:ml-platform`).

mod jwt;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use self::jwt::{Jwk, Jwt, Key, parse_jwks};
use super::roles::{Caller, parse_grants};

/// Largest discovery document read.
const MAX_DISCOVERY: usize = 64 * 1024;
/// Largest key set read.
const MAX_JWKS: usize = 256 * 1024;
/// Least time between two fetches of the key set caused by unknown key ids, or by
/// old keys.
const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// Age after which cached keys are fetched again.
const KEYS_MAX_AGE: Duration = Duration::from_secs(600);
/// Clock skew allowed on `exp` and `nbf`, in seconds.
const SKEW_SECONDS: f64 = 60.0;
/// Time one request to the provider may take, and its connection.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest `sub` accepted.
const MAX_SUBJECT: usize = 255;
/// What an OIDC subject is prefixed with.
pub const SUBJECT_PREFIX: &str = "oidc:";

/// What `--oidc-issuer`, `--oidc-audience` and `--oidc-roles-claim` say.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    pub roles_claim: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error(
        "--oidc-issuer {issuer}: {why} — give the provider's URL exactly as its tokens' iss claim says (https://, or http:// on loopback only)"
    )]
    Issuer { issuer: String, why: String },
    #[error("--{flag} is empty — give {what}")]
    Empty { flag: &'static str, what: &'static str },
}

/// The keys in use and when they were fetched.
#[derive(Default)]
struct Cached {
    keys: Arc<Vec<Jwk>>,
    fetched: Option<Instant>,
}

/// When the key set was last asked for: any fetch, and one an unknown key id caused.
#[derive(Debug, Default, Clone, Copy)]
struct Fetches {
    attempted: Option<Instant>,
    forced: Option<Instant>,
}

/// What to do for a token, given the cache and the fetches so far.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Verify with the cached key.
    Use,
    /// Fetch the key set, then look again.
    Fetch,
    /// Refuse: unknown key id, and the key set was fetched for one less than a minute ago.
    Refuse,
}

fn within(t: Option<Instant>, span: Duration, now: Instant) -> bool {
    t.is_some_and(|t| now.saturating_duration_since(t) < span)
}

/// The rule the cache follows. A known key is used, and also when old if the key set
/// was asked for less than a minute ago (a provider that is down does not lock every
/// caller out, nor get asked on every request). An unknown key id makes one fetch a
/// minute at most; the fetch at start does not count, so a key rotated just after the
/// start is picked up at once.
fn next_step(found: bool, fetched: Option<Instant>, f: Fetches, now: Instant) -> Step {
    match found {
        true if within(fetched, KEYS_MAX_AGE, now) || within(f.attempted, REFRESH_EVERY, now) => Step::Use,
        true => Step::Fetch,
        false if within(f.forced, REFRESH_EVERY, now) => Step::Refuse,
        false => Step::Fetch,
    }
}

/// Verifies the provider's tokens; holds its cached keys.
pub struct Oidc {
    cfg: OidcConfig,
    client: reqwest::Client,
    cache: RwLock<Cached>,
    /// Held while the key set is fetched, so only one fetch runs at a time.
    fetches: Arc<tokio::sync::Mutex<Fetches>>,
}

impl Oidc {
    /// Check the configuration; nothing is fetched yet (see [`Oidc::prefetch`]).
    pub fn new(cfg: OidcConfig) -> Result<Oidc, OidcError> {
        let bad = |why: String| OidcError::Issuer {
            issuer: cfg.issuer.clone(),
            why,
        };
        check_url(&cfg.issuer).map_err(bad)?;
        if cfg.audience.trim().is_empty() {
            let what = "the audience the provider writes in aud for this daemon";
            return Err(OidcError::Empty {
                flag: "oidc-audience",
                what,
            });
        }
        if cfg.roles_claim.trim().is_empty() {
            let what = "the claim that holds the caller's roles";
            return Err(OidcError::Empty {
                flag: "oidc-roles-claim",
                what,
            });
        }
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Oidc {
            cfg,
            client,
            cache: RwLock::new(Cached::default()),
            fetches: Arc::new(tokio::sync::Mutex::new(Fetches::default())),
        })
    }

    /// Fetch the keys once, in the background. The fetch lock is taken before this
    /// returns, so a token arriving meanwhile waits for these keys rather than
    /// fetching them a second time. A provider that cannot be reached is logged and
    /// asked again when a token arrives.
    pub fn prefetch(self: Arc<Self>) -> impl Future<Output = ()> + Send + 'static {
        let held = self.fetches.clone().try_lock_owned();
        async move {
            let Ok(mut fetches) = held else { return };
            fetches.attempted = Some(Instant::now());
            if let Err(why) = self.refresh().await {
                tracing::warn!(issuer = %self.cfg.issuer, error = %why, "cannot fetch the OIDC keys yet; asking again when a token arrives");
            }
        }
    }

    /// The caller a valid token names. Why a token is refused is logged at debug
    /// level only: refusals are counted and summarized by the gate, so a storm of bad
    /// tokens does not flood the log.
    pub async fn identify(&self, token: &str) -> Option<Caller> {
        match self.verify(token).await {
            Ok(caller) => Some(caller),
            Err(why) => {
                tracing::debug!(reason = %why, "OIDC token refused");
                None
            }
        }
    }

    /// The caller a valid token names; `Err` says why it is not valid.
    async fn verify(&self, token: &str) -> Result<Caller, String> {
        let jwt = Jwt::parse(token, super::auth::MAX_TOKEN_LEN)?;
        let key = self.key_for(&jwt).await?;
        let claims = jwt.verified_claims(&key)?;
        self.check_claims(&claims, now_seconds())?;
        self.caller(&claims)
    }

    fn cached(&self) -> (Arc<Vec<Jwk>>, Option<Instant>) {
        let c = self.cache.read().unwrap_or_else(|e| e.into_inner());
        (c.keys.clone(), c.fetched)
    }

    /// The key the token names, fetching the key set when the rule says so.
    async fn key_for(&self, jwt: &Jwt) -> Result<Key, String> {
        let (keys, fetched) = self.cached();
        if let Some(key) = jwt.key_in(&keys)
            && within(fetched, KEYS_MAX_AGE, Instant::now())
        {
            return Ok(key.clone());
        }
        let mut fetches = self.fetches.lock().await;
        let (keys, fetched) = self.cached();
        let found = jwt.key_in(&keys).cloned();
        let now = Instant::now();
        match (next_step(found.is_some(), fetched, *fetches, now), found) {
            (Step::Use, Some(key)) => return Ok(key),
            (Step::Refuse, _) | (Step::Use, None) => {
                return Err(
                    "no key with the token's kid (the key set was fetched for one less than a minute ago)".into(),
                );
            }
            (Step::Fetch, found) => {
                fetches.attempted = Some(now);
                if found.is_none() {
                    fetches.forced = Some(now);
                }
                if let Err(why) = self.refresh().await {
                    tracing::warn!(issuer = %self.cfg.issuer, error = %why, "cannot fetch the OIDC keys; cached ones stay in use");
                    return found.ok_or_else(|| format!("cannot fetch the issuer's keys: {why}"));
                }
            }
        }
        let (keys, _) = self.cached();
        let key = jwt.key_in(&keys).cloned();
        key.ok_or_else(|| "no key with the token's kid at the issuer".into())
    }

    /// Fetch the discovery document and the key set, and cache the keys.
    async fn refresh(&self) -> Result<(), String> {
        let base = self.cfg.issuer.trim_end_matches('/');
        let url = format!("{base}/.well-known/openid-configuration");
        let discovery: Value = serde_json::from_slice(&self.fetch(&url, MAX_DISCOVERY).await?)
            .map_err(|e| format!("discovery document {url}: {e}"))?;
        if discovery["issuer"].as_str() != Some(self.cfg.issuer.as_str()) {
            return Err(format!("the discovery document {url} names another issuer"));
        }
        let jwks_uri = discovery["jwks_uri"]
            .as_str()
            .ok_or_else(|| format!("the discovery document {url} has no jwks_uri"))?;
        check_url(jwks_uri)?;
        let set: Value = serde_json::from_slice(&self.fetch(jwks_uri, MAX_JWKS).await?)
            .map_err(|e| format!("key set {jwks_uri}: {e}"))?;
        let keys = parse_jwks(&set);
        tracing::info!(issuer = %self.cfg.issuer, keys = keys.len(), "OIDC keys fetched");
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = Cached {
            keys: Arc::new(keys),
            fetched: Some(Instant::now()),
        };
        Ok(())
    }

    /// GET `url`, reading at most `max` bytes.
    async fn fetch(&self, url: &str, max: usize) -> Result<Vec<u8>, String> {
        let mut resp = self.client.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP {}", resp.status().as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(format!("{url}: longer than {max} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > max {
                return Err(format!("{url}: longer than {max} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Issuer, audience (one or a list), expiry and not-before (a minute of skew).
    fn check_claims(&self, c: &Value, now: f64) -> Result<(), String> {
        if c["iss"].as_str() != Some(self.cfg.issuer.as_str()) {
            return Err("wrong issuer".into());
        }
        let audience = Some(self.cfg.audience.as_str());
        let aud_ok = match &c["aud"] {
            Value::String(a) => Some(a.as_str()) == audience,
            Value::Array(list) => list.iter().any(|a| a.as_str() == audience),
            _ => false,
        };
        if !aud_ok {
            return Err("wrong audience".into());
        }
        let exp = c["exp"].as_f64().ok_or("no exp")?;
        if now > exp + SKEW_SECONDS {
            return Err("expired".into());
        }
        if let Some(nbf) = c.get("nbf") {
            let nbf = nbf.as_f64().ok_or("nbf is not a number")?;
            if now + SKEW_SECONDS < nbf {
                return Err("not yet valid".into());
            }
        }
        Ok(())
    }

    /// The caller: `oidc:` and `sub`, with the grants of the roles claim (a list of
    /// strings, or one string of words).
    fn caller(&self, c: &Value) -> Result<Caller, String> {
        let sub = c["sub"].as_str().ok_or("no sub")?;
        let printable = |ch: char| !ch.is_control() && !ch.is_whitespace();
        if sub.is_empty() || sub.len() > MAX_SUBJECT || !sub.chars().all(printable) {
            return Err(format!(
                "sub must be 1 to {MAX_SUBJECT} bytes without spaces or control characters"
            ));
        }
        let claim = self.cfg.roles_claim.as_str();
        let words: Vec<&str> = match &c[claim] {
            Value::String(s) => s.split_whitespace().collect(),
            Value::Array(list) => list
                .iter()
                .map(|v| v.as_str().ok_or("a role is not text"))
                .collect::<Result<_, _>>()?,
            Value::Null => Vec::new(),
            _ => return Err(format!("claim {claim} is neither text nor a list")),
        };
        let grants = parse_grants(words).map_err(|e| format!("claim {claim}: {e}"))?;
        Ok(Caller {
            subject: format!("{SUBJECT_PREFIX}{sub}"),
            grants,
        })
    }
}

fn now_seconds() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

/// `https://`, or `http://` to a loopback host only.
fn check_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text} is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!("{text} must be an https:// URL (http:// only on loopback)")),
    }
}

#[cfg(test)]
mod tests;
