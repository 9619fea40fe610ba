//! Structured logs on stderr, for people (`human`) or log collectors (`json`).
//! `RUST_LOG` refines the level (default `info`). Every line passes through
//! `apply::secrets::redact` on its way out, so no log line carries URL credentials or
//! a resolved secret, whichever part of the daemon wrote it.

use std::io::{IsTerminal, Write};

use crate::apply::secrets::redact;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} — use human or json")),
        }
    }
}

/// Install the global subscriber; a second call (as in tests) is a no-op.
pub fn init(format: LogFormat) {
    init_with_default(format, "info");
}

/// [`init`] with `default` as the filter when `RUST_LOG` is not set.
pub fn init_with_default(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Redacted(std::io::stderr()))
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// A writer that redacts each formatted event before passing it on (to stderr in the
/// daemon). The formatter writes one whole event per call, so a URL is never split
/// across two writes.
struct Redacted<W>(W);

impl<W: Write> Write for Redacted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = redact(&String::from_utf8_lossy(buf));
        self.0.write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_written_is_redacted() {
        let mut out = Redacted(Vec::new());
        let event = b"WARN alert not delivered problem=POST https://u:pw@h/x?token=abc1: refused\n";
        assert_eq!(out.write(event).unwrap(), event.len());
        let shown = String::from_utf8(out.0).unwrap();
        assert_eq!(
            shown,
            "WARN alert not delivered problem=POST https://***@h/x?token=***: refused\n"
        );
    }
}
