//! The layout of a safetensors checkpoint, read from its header.
//!
//! A safetensors file is `n` (u64 LE) || `n` bytes of JSON || tensor data. The JSON maps
//! each tensor's name to its dtype, shape and `data_offsets` (relative to the end of the
//! header), plus an optional `__metadata__` map. Backup cuts chunks at tensor boundaries
//! (docs/decisions/0010) and compresses float tensors plane by plane, so it needs to
//! know where each tensor lies and what its elements are. The header comes from a
//! backed-up file, so it is untrusted: its length is capped as safetensors itself caps
//! it, and every tensor must fit its shape and dtype and lie inside the data region,
//! the tensors covering it without overlap or hole. A header that fails any check is
//! an error; the caller then treats the file as plain bytes.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;

use super::tensor_layout::{Dtype, Layout, Tensor};
use serde::de::{IgnoredAny, MapAccess, Visitor};

/// Longest header accepted: the limit of the safetensors reference implementation.
pub const MAX_HEADER: u64 = 100_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SafetensorsError {
    #[error("header length {0} is beyond the file or the {MAX_HEADER}-byte limit")]
    HeaderLength(u64),
    #[error("header is not valid safetensors JSON: {0}")]
    Json(String),
    #[error("tensor {name:?}: {problem}")]
    Tensor { name: String, problem: String },
    #[error("tensors {first:?} and {second:?} overlap")]
    Overlap { first: String, second: String },
    #[error("bytes {from}..{to} of the data region belong to no tensor")]
    Hole { from: u64, to: u64 },
}

/// The storage class of a safetensors dtype name.
fn dtype_of(name: &str) -> Dtype {
    match name {
        "F64" => Dtype::Float(8),
        "F32" => Dtype::Float(4),
        "F16" | "BF16" => Dtype::Float(2),
        "F8_E4M3" | "F8_E5M2" | "F8_E8M0" => Dtype::Float(1),
        "BOOL" | "U8" | "I8" => Dtype::Other(1),
        "I16" | "U16" => Dtype::Other(2),
        "I32" | "U32" => Dtype::Other(4),
        "I64" | "U64" | "C64" => Dtype::Other(8),
        _ => Dtype::Unknown,
    }
}

/// The header length a file's first bytes declare, when they look like safetensors:
/// at least 9 bytes, a length from 2 to [`MAX_HEADER`], and JSON starting with `{`.
pub fn declared_header_len(first: &[u8]) -> Option<u64> {
    let len = u64::from_le_bytes(first.get(..8)?.try_into().ok()?);
    ((2..=MAX_HEADER).contains(&len) && first.get(8) == Some(&b'{')).then_some(len)
}

/// Parse and check the header JSON of a file of `file_len` bytes.
pub fn parse(header: &[u8], file_len: u64) -> Result<Layout, SafetensorsError> {
    let header_len = header.len() as u64;
    let data_start = header_len + 8;
    if header_len > MAX_HEADER || data_start > file_len {
        return Err(SafetensorsError::HeaderLength(header_len));
    }
    let entries = serde_json::from_slice::<Entries>(header).map_err(|e| SafetensorsError::Json(e.to_string()))?;
    let mut named = entries.0;
    for (name, e) in &named {
        check_entry(name, e, file_len - data_start)?;
    }
    named.sort_by_key(|(_, e)| (e.data_offsets[0], e.data_offsets[1]));
    check_coverage(&named, file_len - data_start)?;
    let tensors = named
        .iter()
        .filter(|(_, e)| e.data_offsets[1] > e.data_offsets[0])
        .map(|(_, e)| Tensor {
            start: data_start + e.data_offsets[0],
            end: data_start + e.data_offsets[1],
            dtype: dtype_of(&e.dtype),
        })
        .collect();
    Ok(Layout { data_start, tensors })
}

fn check_entry(name: &str, e: &Entry, data_len: u64) -> Result<(), SafetensorsError> {
    let problem = |problem: String| SafetensorsError::Tensor {
        name: name.to_string(),
        problem,
    };
    let [begin, end] = e.data_offsets;
    if begin > end || end > data_len {
        return Err(problem(format!(
            "data_offsets [{begin}, {end}] are not inside the {data_len}-byte data region"
        )));
    }
    let Some(size) = dtype_of(&e.dtype).element_size() else {
        return Ok(());
    };
    let elements = e.shape.iter().try_fold(1u64, |n, d| n.checked_mul(*d));
    match elements.and_then(|n| n.checked_mul(size)) {
        Some(bytes) if bytes == end - begin => Ok(()),
        _ => Err(problem(format!(
            "shape {:?} of {} does not fill its {} bytes",
            e.shape,
            e.dtype,
            end - begin
        ))),
    }
}

/// Sorted tensors must follow each other without overlap or hole, from 0 to `data_len`.
fn check_coverage(sorted: &[(String, Entry)], data_len: u64) -> Result<(), SafetensorsError> {
    let mut reached = 0u64;
    let mut last = "";
    for (name, e) in sorted {
        let [begin, end] = e.data_offsets;
        if begin < reached {
            return Err(SafetensorsError::Overlap {
                first: last.to_string(),
                second: name.clone(),
            });
        }
        if begin > reached {
            return Err(SafetensorsError::Hole {
                from: reached,
                to: begin,
            });
        }
        reached = end;
        last = name;
    }
    if reached < data_len {
        return Err(SafetensorsError::Hole {
            from: reached,
            to: data_len,
        });
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// The header's tensors by name; `__metadata__` is skipped, a repeated name refused.
struct Entries(Vec<(String, Entry)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EntriesVisitor)
    }
}

struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Entries;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of tensor names to dtype, shape and data_offsets")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if name == "__metadata__" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if !seen.insert(name.clone()) {
                return Err(serde::de::Error::custom(format!("tensor {name:?} appears twice")));
            }
            let entry = map.next_value::<Entry>()?;
            out.push((name, entry));
        }
        Ok(Entries(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::byteplanes::Elements;

    fn header(json: &str) -> Vec<u8> {
        json.as_bytes().to_vec()
    }

    #[test]
    fn tensors_come_out_in_file_order_with_absolute_offsets() {
        let h = header(
            r#"{"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},
                "__metadata__":{"format":"pt"},
                "a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
        );
        let start = 8 + h.len() as u64;
        let layout = parse(&h, start + 12).unwrap();
        assert_eq!(layout.data_start, start);
        assert_eq!(
            layout.tensors,
            vec![
                Tensor {
                    start,
                    end: start + 8,
                    dtype: Dtype::Float(4)
                },
                Tensor {
                    start: start + 8,
                    end: start + 12,
                    dtype: Dtype::Float(2)
                },
            ]
        );
        assert_eq!(layout.cuts(), vec![start, start + 8, start + 12]);
        assert_eq!(layout.tensor_at(start + 9).map(|t| t.dtype), Some(Dtype::Float(2)));
        assert_eq!(layout.tensor_at(3), None);
        assert_eq!(layout.elements_at(start + 5), Some(Elements { width: 4, phase: 1 }));
        assert_eq!(layout.elements_at(start + 11), Some(Elements { width: 2, phase: 1 }));
        assert_eq!(layout.elements_at(start - 1), None);
    }

    #[test]
    fn malformed_headers_are_refused_with_the_reason() {
        let cases = [
            (
                r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                "does not fill",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,80]}}"#,
                "not inside",
            ),
            (
                r#"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#,
                "overlap",
            ),
            (
                r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
                "belong to no tensor",
            ),
            (
                r#"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"a":{"dtype":"U8","shape":[0],"data_offsets":[8,8]}}"#,
                "twice",
            ),
            (
                r#"{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
                "does not fill",
            ),
            (r#"{"a":[1,2]}"#, "JSON"),
            (r#"{"a":{"dtype":"U8""#, "JSON"),
        ];
        for (json, want) in cases {
            let h = header(json);
            let err = parse(&h, 8 + h.len() as u64 + 8).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
        let h = header(r#"{}"#);
        assert!(matches!(parse(&h, 5), Err(SafetensorsError::HeaderLength(2))));
    }

    #[test]
    fn unknown_dtypes_are_kept_as_plain_bytes() {
        let h = header(r#"{"q":{"dtype":"F4","shape":[16],"data_offsets":[0,8]}}"#);
        let layout = parse(&h, 8 + h.len() as u64 + 8).unwrap();
        assert_eq!(layout.tensors[0].dtype, Dtype::Unknown);
    }

    #[test]
    fn only_plausible_prefixes_declare_a_header() {
        let mut first = 40u64.to_le_bytes().to_vec();
        first.push(b'{');
        assert_eq!(declared_header_len(&first), Some(40));
        first[8] = b'[';
        assert_eq!(declared_header_len(&first), None);
        let mut huge = (MAX_HEADER + 1).to_le_bytes().to_vec();
        huge.push(b'{');
        assert_eq!(declared_header_len(&huge), None);
        assert_eq!(declared_header_len(b"{}"), None);
    }
}
