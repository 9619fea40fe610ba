//! Where the tensors of a checkpoint file lie, whatever its format.
//!
//! Backup cuts chunks at tensor boundaries and compresses float tensors plane by plane
//! (docs/decisions/0010). Each checkpoint format (`safetensors`, `gguf`) reads its own
//! header into this one description, so the chunker and the blob encoder never learn
//! which format a file was.

use super::byteplanes::Elements;

/// What a tensor's elements are, as far as storing them is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// IEEE-like floats of this many bytes (F64, F32, F16, BF16, the F8 variants).
    Float(u8),
    /// Integers, booleans and complex numbers, with their element size in bytes.
    Other(u8),
    /// Block-quantised weights (GGUF's Q and IQ types): scales and packed integers,
    /// sized per block of elements, with no byte position worth grouping.
    Quantized,
    /// A dtype this code does not know (or a sub-byte one): no size check, plain bytes.
    Unknown,
}

impl Dtype {
    /// Bytes per element, for the types that have a whole number of them.
    pub fn element_size(self) -> Option<u64> {
        match self {
            Dtype::Float(n) | Dtype::Other(n) => Some(n.into()),
            Dtype::Quantized | Dtype::Unknown => None,
        }
    }
}

/// One tensor's bytes, as absolute offsets in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    pub start: u64,
    pub end: u64,
    pub dtype: Dtype,
}

/// Where the header ends and each tensor lies, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// First byte after the header (and its padding).
    pub data_start: u64,
    /// Non-empty tensors sorted by `start`, not overlapping, inside
    /// `data_start..file_len`. Safetensors tensors tile that range exactly; a GGUF
    /// tensor's span includes the alignment padding after it.
    pub tensors: Vec<Tensor>,
}

impl Layout {
    /// Ascending offsets where a chunk must end: the end of the header, and the start
    /// and end of every tensor.
    pub fn cuts(&self) -> Vec<u64> {
        let mut out = vec![self.data_start];
        for at in self.tensors.iter().flat_map(|t| [t.start, t.end]) {
            if out.last() != Some(&at) {
                out.push(at);
            }
        }
        out
    }

    /// The tensor holding byte `offset` of the file, if any (the header holds none).
    pub fn tensor_at(&self, offset: u64) -> Option<&Tensor> {
        let i = self.tensors.partition_point(|t| t.end <= offset);
        self.tensors.get(i).filter(|t| t.start <= offset)
    }

    /// How the float elements lie in a chunk starting at `offset`, for byte-plane
    /// compression; `None` outside float tensors of at least two bytes per element.
    pub fn elements_at(&self, offset: u64) -> Option<Elements> {
        let t = self.tensor_at(offset)?;
        let Dtype::Float(width @ 2..) = t.dtype else {
            return None;
        };
        let phase = ((offset - t.start) % u64::from(width)) as u8;
        Some(Elements { width, phase })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_fall_at_every_tensor_start_and_end_once() {
        let t = |start, end, dtype| Tensor { start, end, dtype };
        let layout = Layout {
            data_start: 64,
            tensors: vec![
                t(64, 96, Dtype::Float(4)),
                t(96, 128, Dtype::Quantized),
                t(160, 200, Dtype::Float(2)),
            ],
        };
        assert_eq!(layout.cuts(), vec![64, 96, 128, 160, 200]);
        assert_eq!(layout.tensor_at(140), None);
        assert_eq!(layout.elements_at(100), None);
        assert_eq!(layout.elements_at(65), Some(Elements { width: 4, phase: 1 }));
        assert_eq!(layout.elements_at(163), Some(Elements { width: 2, phase: 1 }));
    }
}
