//! The layout of a GGUF checkpoint (llama.cpp's format), read from its header.
//!
//! A GGUF file is, all little-endian:
//!
//! ```text
//! "GGUF" || version u32 || tensor_count u64 || metadata_count u64
//!        || metadata * metadata_count || tensor_info * tensor_count
//!        || padding to the alignment || tensor data
//! metadata    = key string || value_type u32 || value
//! tensor_info = name string || n_dims u32 || dims u64 * n_dims || ggml_type u32 || offset u64
//! string      = length u64 || UTF-8 bytes
//! ```
//!
//! Tensor offsets are relative to the data section and multiples of the alignment
//! (`general.alignment`, a u32 metadata value, 32 when absent), so padding sits between
//! tensors. Backup only needs where each tensor lies and whether it holds floats
//! (docs/decisions/0010): metadata values are skipped, never kept.
//!
//! The header comes from a backed-up file, so it is untrusted: the caller hands in a
//! bounded prefix of the file, every count, length and nesting depth is capped before
//! anything is read or allocated for it, sizes are computed with checked arithmetic
//! from the shape and the ggml type, and every tensor must lie inside the file without
//! overlapping another. A header that fails any check is an error; the caller then
//! treats the file as plain bytes.

use std::collections::HashSet;

use super::tensor_layout::{Dtype, Layout, Tensor};

/// The first four bytes of every GGUF file.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Longest header (metadata and tensor infos) read; vocabularies of current models take
/// a few MiB.
pub const MAX_HEADER: u64 = 64 << 20;
/// Most tensors in one file (the largest published models hold a few thousand).
pub const MAX_TENSORS: u64 = 1 << 16;
/// Most metadata pairs in one file.
pub const MAX_METADATA: u64 = 1 << 16;
/// Longest metadata key or string value.
pub const MAX_STRING: u64 = 1 << 20;
/// Longest tensor name (llama.cpp itself allows 63 bytes).
pub const MAX_NAME: u64 = 1 << 10;
/// Most elements in one metadata array.
pub const MAX_ARRAY: u64 = 1 << 26;
/// Most dimensions of a tensor, as in ggml.
pub const MAX_DIMS: u64 = 4;
/// Deepest nesting of arrays in arrays.
pub const MAX_NESTING: u64 = 2;

const DEFAULT_ALIGNMENT: u64 = 32;
const ALIGNMENT_KEY: &[u8] = b"general.alignment";
pub(crate) const TYPE_U32: u32 = 4;
pub(crate) const TYPE_STRING: u32 = 8;
pub(crate) const TYPE_ARRAY: u32 = 9;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GgufError {
    #[error("the header goes on past the end of the file or the {MAX_HEADER}-byte limit")]
    Truncated,
    #[error("the file does not start with the GGUF magic")]
    Magic,
    #[error("version {0} is not supported (2 and 3, little-endian, are)")]
    Version(u32),
    #[error("{what} {count} is above the limit of {limit}")]
    Limit { what: &'static str, count: u64, limit: u64 },
    #[error("metadata {key:?}: {problem}")]
    Metadata { key: String, problem: String },
    #[error("tensor {name:?}: {problem}")]
    Tensor { name: String, problem: String },
    #[error("tensor {0:?} appears twice")]
    Duplicate(String),
    #[error("tensors {first:?} and {second:?} overlap")]
    Overlap { first: String, second: String },
}

/// How ggml stores one tensor type: elements per block and bytes per block.
struct GgmlType {
    name: &'static str,
    block: u64,
    bytes: u64,
    dtype: Dtype,
}

const fn plain(name: &'static str, bytes: u8, dtype: Dtype) -> GgmlType {
    GgmlType {
        name,
        block: 1,
        bytes: bytes as u64,
        dtype,
    }
}

const fn quantized(name: &'static str, block: u64, bytes: u64) -> GgmlType {
    GgmlType {
        name,
        block,
        bytes,
        dtype: Dtype::Quantized,
    }
}

/// The ggml types by code; codes not listed (retired or newer types) are unknown.
fn ggml_type(code: u32) -> Option<GgmlType> {
    Some(match code {
        0 => plain("F32", 4, Dtype::Float(4)),
        1 => plain("F16", 2, Dtype::Float(2)),
        30 => plain("BF16", 2, Dtype::Float(2)),
        28 => plain("F64", 8, Dtype::Float(8)),
        24 => plain("I8", 1, Dtype::Other(1)),
        25 => plain("I16", 2, Dtype::Other(2)),
        26 => plain("I32", 4, Dtype::Other(4)),
        27 => plain("I64", 8, Dtype::Other(8)),
        2 => quantized("Q4_0", 32, 18),
        3 => quantized("Q4_1", 32, 20),
        6 => quantized("Q5_0", 32, 22),
        7 => quantized("Q5_1", 32, 24),
        8 => quantized("Q8_0", 32, 34),
        9 => quantized("Q8_1", 32, 36),
        20 => quantized("IQ4_NL", 32, 18),
        39 => quantized("MXFP4", 32, 17),
        _ => return k_quantized(code),
    })
}

/// The types quantised in super-blocks of 256 elements.
fn k_quantized(code: u32) -> Option<GgmlType> {
    let (name, bytes) = match code {
        10 => ("Q2_K", 84),
        11 => ("Q3_K", 110),
        12 => ("Q4_K", 144),
        13 => ("Q5_K", 176),
        14 => ("Q6_K", 210),
        15 => ("Q8_K", 292),
        16 => ("IQ2_XXS", 66),
        17 => ("IQ2_XS", 74),
        18 => ("IQ3_XXS", 98),
        19 => ("IQ1_S", 50),
        21 => ("IQ3_S", 110),
        22 => ("IQ2_S", 82),
        23 => ("IQ4_XS", 136),
        29 => ("IQ1_M", 56),
        34 => ("TQ1_0", 54),
        35 => ("TQ2_0", 66),
        _ => return None,
    };
    Some(quantized(name, 256, bytes))
}

/// One entry of the tensor table, as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    /// Relative to the data section.
    pub offset: u64,
    /// Bytes, from the shape and the type.
    pub size: u64,
}

/// What backup reads from a GGUF header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub alignment: u64,
    /// Where the data section starts in the file (the end of the header, aligned).
    pub data_start: u64,
    /// In the order the header lists them.
    pub tensors: Vec<TensorInfo>,
}

/// Whether a file's first bytes claim the format.
pub fn is_gguf(first: &[u8]) -> bool {
    first.starts_with(&MAGIC)
}

/// The tensor layout of a GGUF file of `file_len` bytes, from its first bytes.
pub fn parse(prefix: &[u8], file_len: u64) -> Result<Layout, GgufError> {
    Ok(read_header(prefix, file_len)?.layout(file_len))
}

/// Read and check the header from `prefix`, the first bytes of a file of `file_len`
/// bytes. [`GgufError::Truncated`] when the header goes on past the prefix: a longer
/// prefix (up to [`MAX_HEADER`]) may then succeed.
pub fn read_header(prefix: &[u8], file_len: u64) -> Result<Header, GgufError> {
    let limit = prefix.len().min(usize::try_from(MAX_HEADER).unwrap_or(usize::MAX));
    let mut c = Cursor {
        bytes: &prefix[..limit],
        at: 0,
    };
    if c.array::<4>()? != MAGIC {
        return Err(GgufError::Magic);
    }
    let version = u32::from_le_bytes(c.array()?);
    if !(2..=3).contains(&version) {
        return Err(GgufError::Version(version));
    }
    let tensor_count = c.count("tensor count", MAX_TENSORS)?;
    let metadata_count = c.count("metadata count", MAX_METADATA)?;
    let alignment = read_metadata(&mut c, metadata_count)?;
    let tensors = (0..tensor_count)
        .map(|_| tensor_info(&mut c))
        .collect::<Result<Vec<_>, _>>()?;
    let data_start = align_up(c.at as u64, alignment).ok_or(GgufError::Truncated)?;
    check_tensors(&tensors, data_start, alignment, file_len)?;
    Ok(Header {
        version,
        alignment,
        data_start: data_start.min(file_len),
        tensors,
    })
}

impl Header {
    /// Non-empty tensors in file order; each span runs to the next multiple of the
    /// alignment (the padding after it) or the end of the file.
    pub fn layout(&self, file_len: u64) -> Layout {
        let mut sorted: Vec<&TensorInfo> = self.tensors.iter().filter(|t| t.size > 0).collect();
        sorted.sort_by_key(|t| t.offset);
        let tensors = sorted
            .iter()
            .map(|t| {
                let start = self.data_start.saturating_add(t.offset);
                let end = align_up(start.saturating_add(t.size), self.alignment).unwrap_or(file_len);
                Tensor {
                    start,
                    end: end.min(file_len),
                    dtype: ggml_type(t.ggml_type).map_or(Dtype::Unknown, |g| g.dtype),
                }
            })
            .collect();
        Layout {
            data_start: self.data_start,
            tensors,
        }
    }
}

/// Skip every metadata pair; returns the alignment they set (or the default).
fn read_metadata(c: &mut Cursor, count: u64) -> Result<u64, GgufError> {
    let mut alignment = None;
    for _ in 0..count {
        let key = c.string("metadata key length", MAX_STRING)?;
        let ty = u32::from_le_bytes(c.array()?);
        if key == ALIGNMENT_KEY {
            let bad = |problem: &str| metadata_error(key, problem.to_string());
            if alignment.is_some() {
                return Err(bad("appears twice"));
            }
            if ty != TYPE_U32 {
                return Err(bad("is not a u32"));
            }
            let value = u32::from_le_bytes(c.array()?);
            if !value.is_power_of_two() {
                return Err(bad(&format!("{value} is not a power of two")));
            }
            alignment = Some(u64::from(value));
        } else {
            skip_value(c, key, ty, 0)?;
        }
    }
    Ok(alignment.unwrap_or(DEFAULT_ALIGNMENT))
}

fn metadata_error(key: &[u8], problem: String) -> GgufError {
    GgufError::Metadata {
        key: String::from_utf8_lossy(key).into_owned(),
        problem,
    }
}

/// Bytes of one value of a fixed-size metadata type.
fn fixed_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

fn skip_value(c: &mut Cursor, key: &[u8], ty: u32, depth: u64) -> Result<(), GgufError> {
    if let Some(size) = fixed_size(ty) {
        return c.take(size).map(drop);
    }
    match ty {
        TYPE_STRING => c.string("string length", MAX_STRING).map(drop),
        TYPE_ARRAY if depth >= MAX_NESTING => Err(GgufError::Limit {
            what: "array nesting",
            count: depth + 1,
            limit: MAX_NESTING,
        }),
        TYPE_ARRAY => skip_array(c, key, depth + 1),
        _ => Err(metadata_error(key, format!("unknown value type {ty}"))),
    }
}

fn skip_array(c: &mut Cursor, key: &[u8], depth: u64) -> Result<(), GgufError> {
    let ty = u32::from_le_bytes(c.array()?);
    let len = c.count("array length", MAX_ARRAY)?;
    if let Some(size) = fixed_size(ty) {
        return c.take(len * size).map(drop);
    }
    if ty != TYPE_STRING && ty != TYPE_ARRAY {
        return Err(metadata_error(key, format!("unknown array element type {ty}")));
    }
    (0..len).try_for_each(|_| skip_value(c, key, ty, depth))
}

fn tensor_info(c: &mut Cursor) -> Result<TensorInfo, GgufError> {
    let name = String::from_utf8_lossy(c.string("tensor name length", MAX_NAME)?).into_owned();
    let n_dims = u64::from(u32::from_le_bytes(c.array()?));
    if n_dims > MAX_DIMS {
        return Err(GgufError::Limit {
            what: "dimension count",
            count: n_dims,
            limit: MAX_DIMS,
        });
    }
    let dims = (0..n_dims)
        .map(|_| c.array().map(u64::from_le_bytes))
        .collect::<Result<Vec<_>, _>>()?;
    let ggml_type = u32::from_le_bytes(c.array()?);
    let offset = u64::from_le_bytes(c.array()?);
    let size = tensor_size(&name, &dims, ggml_type)?;
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
        size,
    })
}

fn tensor_error(name: &str, problem: String) -> GgufError {
    GgufError::Tensor {
        name: name.to_string(),
        problem,
    }
}

/// Bytes of a tensor of this shape and type; the first dimension must hold whole blocks.
fn tensor_size(name: &str, dims: &[u64], code: u32) -> Result<u64, GgufError> {
    let t = ggml_type(code).ok_or_else(|| tensor_error(name, format!("unknown ggml type {code}")))?;
    let too_large = || tensor_error(name, format!("shape {dims:?} of {} is too large", t.name));
    let elements = dims
        .iter()
        .try_fold(1u64, |n, d| n.checked_mul(*d))
        .filter(|n| *n <= i64::MAX as u64)
        .ok_or_else(too_large)?;
    let row = dims.first().copied().unwrap_or(1);
    if row % t.block != 0 {
        return Err(tensor_error(
            name,
            format!(
                "first dimension {row} is not a multiple of {}'s block of {}",
                t.name, t.block
            ),
        ));
    }
    (elements / t.block).checked_mul(t.bytes).ok_or_else(too_large)
}

/// Every tensor aligned, inside the file, named once, and apart from the others.
fn check_tensors(tensors: &[TensorInfo], data_start: u64, alignment: u64, file_len: u64) -> Result<(), GgufError> {
    let mut names = HashSet::new();
    for t in tensors {
        if !names.insert(t.name.as_str()) {
            return Err(GgufError::Duplicate(t.name.clone()));
        }
        if t.offset % alignment != 0 {
            let problem = format!("offset {} is not a multiple of the alignment {alignment}", t.offset);
            return Err(tensor_error(&t.name, problem));
        }
        let end = data_start.checked_add(t.offset).and_then(|s| s.checked_add(t.size));
        if end.is_none_or(|end| end > file_len) {
            let problem = format!(
                "{} bytes at offset {} of the data section (from byte {data_start}) go past the end of the {file_len}-byte file",
                t.size, t.offset
            );
            return Err(tensor_error(&t.name, problem));
        }
    }
    check_overlap(tensors)
}

/// Sorted by offset, each non-empty tensor starts at or after the end of the one before.
fn check_overlap(tensors: &[TensorInfo]) -> Result<(), GgufError> {
    let mut sorted: Vec<&TensorInfo> = tensors.iter().filter(|t| t.size > 0).collect();
    sorted.sort_by_key(|t| t.offset);
    for pair in sorted.windows(2) {
        if pair[1].offset < pair[0].offset + pair[0].size {
            return Err(GgufError::Overlap {
                first: pair[0].name.clone(),
                second: pair[1].name.clone(),
            });
        }
    }
    Ok(())
}

fn align_up(at: u64, alignment: u64) -> Option<u64> {
    at.checked_next_multiple_of(alignment)
}

/// Reads the header front to back; running out of bytes is [`GgufError::Truncated`].
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], GgufError> {
        let left = self.bytes.len() - self.at;
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= left)
            .ok_or(GgufError::Truncated)?;
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    /// A u64 count or length, refused above `limit`.
    fn count(&mut self, what: &'static str, limit: u64) -> Result<u64, GgufError> {
        let count = u64::from_le_bytes(self.array()?);
        if count > limit {
            return Err(GgufError::Limit { what, count, limit });
        }
        Ok(count)
    }

    fn string(&mut self, what: &'static str, limit: u64) -> Result<&'a [u8], GgufError> {
        let len = self.count(what, limit)?;
        self.take(len)
    }
}

#[cfg(test)]
#[path = "gguf_tests.rs"]
pub(crate) mod tests;
