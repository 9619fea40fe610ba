//! Reading one TOML table with every problem reported, never just the first.
//!
//! serde's `deny_unknown_fields` stops at the first surprise; an operator fixing a plan
//! wants the whole list. `Fields` wraps one parsed table with spans, reports unknown keys
//! (with a did-you-mean) and inline secrets as soon as it is made, and hands out typed
//! values: a missing or mistyped key becomes a diagnostic and `None`, so callers keep
//! walking and build what they can.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::Diagnostics;
use super::units::{UnitError, parse_duration};

/// A parsed value with its byte span in the plan file.
pub type Value<'i> = Spanned<DeValue<'i>>;

/// A value taken from the plan together with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub span: Range<usize>,
}

/// Words that mark a key as holding a secret, which must never be written inline.
const SECRET_WORDS: [&str; 5] = ["password", "passwd", "passphrase", "secret", "token"];

pub fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| lower.contains(word))
}

/// The closest known key, if one is close enough to be a likely typo.
pub fn did_you_mean<'k>(typed: &str, known: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(typed, k), k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// One table of the plan, its known keys, and where it sits (for messages).
pub struct Fields<'t, 'i> {
    table: &'t DeTable<'i>,
    span: Range<usize>,
    context: String,
}

impl<'t, 'i> Fields<'t, 'i> {
    /// Wraps `table`, reporting every key not in `known` and every inline secret.
    pub fn new(
        table: &'t DeTable<'i>,
        span: Range<usize>,
        context: impl Into<String>,
        known: &[&str],
        diags: &mut Diagnostics,
    ) -> Self {
        let fields = Self {
            table,
            span,
            context: context.into(),
        };
        fields.check_keys(known, diags);
        fields
    }

    fn check_keys(&self, known: &[&str], diags: &mut Diagnostics) {
        for (key, value) in self.table.iter() {
            let name = key.get_ref().as_ref();
            if is_secret_key(name) && is_literal(value.get_ref()) {
                diags.error(
                    &value.span(),
                    format!("`{name}` in {} holds a secret written inline", self.context),
                    format!(
                        "reference it instead: {name} = {{ env = \"VAR\" }}, {{ file = \"path\" }} or {{ command = [\"prog\", \"arg\"] }}"
                    ),
                );
            } else if !known.contains(&name) {
                let fix = match did_you_mean(name, known.iter().copied()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!("remove it; known keys here: {}", known.join(", ")),
                };
                diags.error(&key.span(), format!("unknown key `{name}` in {}", self.context), fix);
            }
        }
    }

    pub fn context(&self) -> &str {
        &self.context
    }

    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    pub fn get(&self, key: &str) -> Option<&'t Value<'i>> {
        self.table.get(key)
    }

    /// Reports that `key` is required, showing a line the operator can paste.
    pub fn missing(&self, key: &str, example: &str, diags: &mut Diagnostics) {
        diags.error(
            &self.span,
            format!("{} has no `{key}`", self.context),
            format!("add `{key} = {example}`"),
        );
    }

    fn wrong_type(&self, key: &str, value: &Value, want: &str, example: &str, diags: &mut Diagnostics) {
        diags.error(
            &value.span(),
            format!(
                "`{key}` in {} must be {want}, found {}",
                self.context,
                found(value.get_ref())
            ),
            format!("write it like `{key} = {example}`"),
        );
    }

    /// A string value; a secret-named key with a literal was already reported.
    pub fn string(&self, key: &str, example: &str, diags: &mut Diagnostics) -> Option<At<String>> {
        let value = self.get(key)?;
        match value.get_ref().as_str() {
            Some(s) => Some(At {
                value: s.to_string(),
                span: value.span(),
            }),
            None => {
                self.wrong_type(key, value, "a string", example, diags);
                None
            }
        }
    }

    pub fn required_string(&self, key: &str, example: &str, diags: &mut Diagnostics) -> Option<At<String>> {
        if self.get(key).is_none() {
            self.missing(key, example, diags);
        }
        self.string(key, example, diags)
    }

    pub fn bool(&self, key: &str, diags: &mut Diagnostics) -> Option<bool> {
        let value = self.get(key)?;
        let found = value.get_ref().as_bool();
        if found.is_none() {
            self.wrong_type(key, value, "true or false", "true", diags);
        }
        found
    }

    /// A non-negative integer that fits in `u32`.
    pub fn count(&self, key: &str, example: &str, diags: &mut Diagnostics) -> Option<At<u32>> {
        let value = self.get(key)?;
        let parsed = value
            .get_ref()
            .as_integer()
            .and_then(|i| i64::from_str_radix(i.as_str(), i.radix()).ok())
            .and_then(|i| u32::try_from(i).ok());
        if parsed.is_none() {
            self.wrong_type(key, value, "a whole number from 0 to 4294967295", example, diags);
        }
        parsed.map(|value_| At {
            value: value_,
            span: value.span(),
        })
    }

    /// A float or integer.
    pub fn number(&self, key: &str, example: &str, diags: &mut Diagnostics) -> Option<At<f64>> {
        let value = self.get(key)?;
        let parsed = match value.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok().map(|i| i as f64),
            _ => None,
        };
        if parsed.is_none() {
            self.wrong_type(key, value, "a number", example, diags);
        }
        parsed.map(|v| At {
            value: v,
            span: value.span(),
        })
    }

    /// A human duration such as `"6h"`.
    pub fn duration(&self, key: &str, example: &str, diags: &mut Diagnostics) -> Option<At<Duration>> {
        let text = self.string(key, example, diags)?;
        match parse_duration(&text.value) {
            Ok(value) => Some(At { value, span: text.span }),
            Err(err) => {
                diags.error(
                    &text.span,
                    format!("`{key}` in {}: {err}", self.context),
                    UnitError::duration_hint(),
                );
                None
            }
        }
    }

    /// An array of strings; wrong items are reported one by one and skipped.
    pub fn strings(&self, key: &str, example: &str, diags: &mut Diagnostics) -> Option<Vec<At<String>>> {
        let value = self.get(key)?;
        let Some(items) = value.get_ref().as_array() else {
            self.wrong_type(key, value, "an array of strings", example, diags);
            return None;
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref().as_str() {
                Some(s) => out.push(At {
                    value: s.to_string(),
                    span: item.span(),
                }),
                None => self.wrong_type(key, item, "an array of strings", example, diags),
            }
        }
        Some(out)
    }

    /// A sub-table, with its span.
    pub fn table(&self, key: &str, example: &str, diags: &mut Diagnostics) -> Option<(&'t DeTable<'i>, Range<usize>)> {
        let value = self.get(key)?;
        match value.get_ref().as_table() {
            Some(table) => Some((table, value.span())),
            None => {
                self.wrong_type(key, value, "a table", example, diags);
                None
            }
        }
    }
}

/// How a wrong value is described: numbers as written, anything else by its type.
fn found(value: &DeValue) -> String {
    match value {
        DeValue::Integer(i) => i.as_str().to_string(),
        DeValue::Float(f) => f.as_str().to_string(),
        other => other.type_str().to_string(),
    }
}

fn is_literal(value: &DeValue) -> bool {
    matches!(value, DeValue::String(_) | DeValue::Integer(_) | DeValue::Float(_))
}

/// The entries of a table of named tables (`[datasets.NAME]`), each checked to be a table.
pub fn named_tables<'t, 'i>(
    table: &'t DeTable<'i>,
    what: &str,
    diags: &mut Diagnostics,
) -> Vec<(At<String>, &'t DeTable<'i>, Range<usize>)> {
    let mut out = Vec::new();
    for (key, value) in table.iter() {
        let name = At {
            value: key.get_ref().to_string(),
            span: key.span(),
        };
        match value.get_ref().as_table() {
            Some(inner) => out.push((name, inner, value.span())),
            None => diags.error(
                &value.span(),
                format!(
                    "{what} `{}` must be a table, found {}",
                    name.value,
                    value.get_ref().type_str()
                ),
                format!("write it as a section: [{what}.{}]", name.value),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_words_match_anywhere_in_a_key() {
        assert!(is_secret_key("password"));
        assert!(is_secret_key("tsig_secret"));
        assert!(is_secret_key("API_TOKEN"));
        assert!(!is_secret_key("schedule"));
    }

    #[test]
    fn did_you_mean_picks_the_closest_known_key() {
        let known = ["retention", "regions", "rpo"];
        assert_eq!(did_you_mean("retension", known), Some("retention"));
        assert_eq!(did_you_mean("region", known), Some("regions"));
        assert_eq!(did_you_mean("zzz", known), None);
    }
}
