//! Content-defined chunking with a per-repository secret gear table.
//!
//! FastCDC (2020) with normalisation level 1; the repository seed is XORed into the
//! gear table, so chunk boundaries depend on a secret and cannot be predicted by
//! someone who only sees the storage.

use std::io::Read;

use fastcdc::v2020::{Normalization, StreamCDC};

use super::config::ChunkerParams;

/// Split a reader into chunks; each item is one chunk's bytes.
pub fn chunks<R: Read>(reader: R, p: &ChunkerParams) -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
    StreamCDC::with_level_and_seed(
        reader,
        p.min_size,
        p.avg_size,
        p.max_size,
        Normalization::Level1,
        p.seed,
    )
    .map(|r| {
        r.map(|c| c.data).map_err(|e| match e {
            fastcdc::v2020::Error::IoError(io) => io,
            other => std::io::Error::other(other.to_string()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        let mut x = 0x9E3779B97F4A7C15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn chunks_reassemble_and_respect_bounds() {
        let input = data(5 << 20);
        let p = ChunkerParams::with_seed(1);
        let parts: Vec<Vec<u8>> = chunks(&input[..], &p).collect::<Result<_, _>>().unwrap();
        assert_eq!(parts.concat(), input);
        for c in &parts[..parts.len() - 1] {
            assert!(c.len() >= p.min_size as usize && c.len() <= p.max_size as usize);
        }
    }

    #[test]
    fn seed_changes_boundaries() {
        let input = data(6 << 20);
        let lens = |seed| -> Vec<usize> {
            chunks(&input[..], &ChunkerParams::with_seed(seed))
                .map(|c| c.unwrap().len())
                .collect()
        };
        assert_ne!(lens(1), lens(2));
    }
}
