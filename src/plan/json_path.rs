//! A small JSON path language for naming one value in a probe's answer:
//! `$`, then dotted keys and `[index]`, e.g. `$.choices[0].score`.
//!
//! Plans name the fields a drill may see drift in, so the language is deliberately
//! small: no wildcards, filters or quoting. A path either names exactly one place or
//! is refused when the plan is validated, and every path has one written form (the
//! canonical text), which is also how differences are named in reports.

use serde_json::Value;

/// Longest path a plan may write.
pub const MAX_PATH_LEN: usize = 256;
/// Most keys and indexes in one path.
const MAX_SEGMENTS: usize = 32;

/// One step down into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A parsed path; [`JsonPath::text`] is its canonical form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct JsonPath {
    segments: Vec<Segment>,
}

impl JsonPath {
    /// Parses `$.a.b[0]`; the error says what is wrong, for a plan diagnostic.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        if text.len() > MAX_PATH_LEN {
            return Err(format!("is longer than {MAX_PATH_LEN} characters"));
        }
        let Some(mut rest) = text.strip_prefix('$') else {
            return Err("must start with `$`".into());
        };
        let mut segments = Vec::new();
        while !rest.is_empty() {
            let (segment, after) = next_segment(rest)?;
            segments.push(segment);
            rest = after;
        }
        if segments.len() > MAX_SEGMENTS {
            return Err(format!("has more than {MAX_SEGMENTS} keys and indexes"));
        }
        Ok(JsonPath { segments })
    }

    /// The path of the root and of its children, for walking a value.
    pub fn root() -> JsonPath {
        JsonPath { segments: Vec::new() }
    }

    pub fn child(&self, segment: Segment) -> JsonPath {
        let mut segments = self.segments.clone();
        segments.push(segment);
        JsonPath { segments }
    }

    /// The value this path names in `value`, if there is one.
    pub fn find<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.segments.iter().try_fold(value, |v, s| match s {
            Segment::Key(k) => v.as_object()?.get(k),
            Segment::Index(i) => v.as_array()?.get(*i),
        })
    }

    /// The canonical text: `$`, `.key` for keys the language can write, `["key"]`
    /// (JSON-quoted) for others, which only reports show.
    pub fn text(&self) -> String {
        let mut out = String::from("$");
        for s in &self.segments {
            match s {
                Segment::Key(k) if is_plain_key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Segment::Key(k) => out.push_str(&format!("[{}]", Value::from(k.as_str()))),
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(is_key_char)
}

/// The segment at the start of `rest` (`.key` or `[index]`) and what follows it.
fn next_segment(rest: &str) -> Result<(Segment, &str), String> {
    if let Some(after) = rest.strip_prefix('.') {
        let end = after.find(|c| !is_key_char(c)).unwrap_or(after.len());
        if end == 0 {
            return Err("has a `.` not followed by a key (letters, digits, `_`, `-`)".into());
        }
        return Ok((Segment::Key(after[..end].to_string()), &after[end..]));
    }
    if let Some(after) = rest.strip_prefix('[') {
        let end = after.find(']').ok_or("has a `[` without its `]`")?;
        let digits = &after[..end];
        let plain = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
        let index = digits.parse::<usize>().ok().filter(|_| plain && digits.len() <= 9);
        let index = index.ok_or_else(|| format!("has `[{digits}]`, not an index such as `[0]`"))?;
        return Ok((Segment::Index(index), &after[end + 1..]));
    }
    let shown: String = rest.chars().take(12).collect();
    Err(format!("has `{shown}` where `.key` or `[index]` belongs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_keys_and_indexes_name_one_value() {
        let answer: Value = serde_json::json!({"choices": [{"score": 0.5}, {"score": 0.7}], "a-b": {"c_1": true}});
        let path = JsonPath::parse("$.choices[1].score").unwrap();
        assert_eq!(path.find(&answer), Some(&Value::from(0.7)));
        assert_eq!(path.text(), "$.choices[1].score");
        let other = JsonPath::parse("$.a-b.c_1").unwrap();
        assert_eq!(other.find(&answer), Some(&Value::Bool(true)));
        assert_eq!(JsonPath::parse("$").unwrap().find(&answer), Some(&answer));
        assert_eq!(JsonPath::parse("$.choices[2]").unwrap().find(&answer), None);
        assert_eq!(JsonPath::parse("$.choices.x").unwrap().find(&answer), None);
    }

    #[test]
    fn anything_outside_the_small_language_is_refused_with_the_reason() {
        let cases = [
            ("choices[0]", "must start with `$`"),
            ("$.", "not followed by a key"),
            ("$..score", "not followed by a key"),
            ("$.a[", "without its `]`"),
            ("$.a[*]", "`[*]`, not an index"),
            ("$.a[-1]", "`[-1]`, not an index"),
            ("$.a['b']", "not an index"),
            ("$ .a", "where `.key` or `[index]` belongs"),
            ("$.a b", "where `.key` or `[index]` belongs"),
        ];
        for (text, why) in cases {
            let err = JsonPath::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
        let long = format!("${}", ".a".repeat(200));
        assert!(JsonPath::parse(&long).unwrap_err().contains("longer than"));
        let deep = format!("${}", "[0]".repeat(40));
        assert!(JsonPath::parse(&deep).unwrap_err().contains("more than 32"));
    }

    #[test]
    fn keys_the_language_cannot_write_are_shown_quoted() {
        let path = JsonPath::root()
            .child(Segment::Key("a b".into()))
            .child(Segment::Index(3));
        assert_eq!(path.text(), "$[\"a b\"][3]");
    }
}
