//! Content-defined chunking with a per-repository secret gear table.
//!
//! FastCDC (2020) with normalisation level 1; the repository seed is XORed into the
//! gear table, so chunk boundaries depend on a secret and cannot be predicted by
//! someone who only sees the storage.
//!
//! [`Chunker`] streams a reader through one reusable window of twice the maximum chunk
//! size and hands out each chunk as a slice of that window: no allocation, no zeroing.
//! A cut found inside the buffered bytes is the one FastCDC finds over the whole input
//! (its decision at a byte depends only on the bytes before); when the search reaches
//! the end of what is buffered without one, and more input could still place it, the
//! undecided bytes (less than a chunk, typically) move to the front and the window is
//! filled again. So the boundaries are exactly those of FastCDC run over the whole
//! input at once, and about one chunk per window is copied, not half of every window.

use std::io::{self, Read};

use fastcdc::v2020::{MASKS, Normalization, cut_gear, get_gear_with_seed, logarithm2};

use super::config::ChunkerParams;

/// Smallest and largest sizes the chunker accepts (FastCDC's own limits).
const MIN_RANGE: (u32, u32) = (fastcdc::v2020::MINIMUM_MIN, fastcdc::v2020::MINIMUM_MAX);
const AVG_RANGE: (u32, u32) = (fastcdc::v2020::AVERAGE_MIN, fastcdc::v2020::AVERAGE_MAX);
const MAX_RANGE: (u32, u32) = (fastcdc::v2020::MAXIMUM_MIN, fastcdc::v2020::MAXIMUM_MAX);

impl ChunkerParams {
    /// Whether FastCDC accepts these sizes (`min <= avg <= max`, each in its range).
    pub fn valid(&self) -> bool {
        let within = |v: u32, (lo, hi): (u32, u32)| (lo..=hi).contains(&v);
        within(self.min_size, MIN_RANGE)
            && within(self.avg_size, AVG_RANGE)
            && within(self.max_size, MAX_RANGE)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
    }
}

/// A reusable FastCDC splitter; keep one per thread and feed it file after file.
pub struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    window: Vec<u8>,
}

impl Chunker {
    /// # Panics
    /// When `p` is not [`ChunkerParams::valid`]; repository configs are checked on load.
    pub fn new(p: &ChunkerParams) -> Self {
        assert!(p.valid(), "chunker parameters out of range: {p:?}");
        let bits = logarithm2(p.avg_size);
        let level = Normalization::Level1.bits();
        let (gear, gear_ls) = get_gear_with_seed(p.seed);
        Self {
            min: p.min_size as usize,
            avg: p.avg_size as usize,
            max: p.max_size as usize,
            mask_s: MASKS[(bits + level) as usize],
            mask_l: MASKS[(bits - level) as usize],
            gear,
            gear_ls,
            window: Vec::new(),
        }
    }

    /// Split everything `reader` yields, calling `each` with every chunk in order.
    /// Stops at the first error of either the reader (turned into `E` by `read_error`)
    /// or `each`.
    pub fn split<R: Read, E>(
        &mut self,
        reader: R,
        read_error: impl FnOnce(io::Error) -> E,
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.split_at(reader, &[], read_error, |chunk, _| each(chunk))
    }

    /// Like [`Chunker::split`], but no chunk crosses one of the ascending offsets
    /// `cuts`: the chunker starts afresh at each of them, as if each span between two
    /// cuts were a file of its own. `each` also gets the chunk's offset in the input.
    /// Cuts past the end of the input are ignored.
    pub fn split_at<R: Read, E>(
        &mut self,
        mut reader: R,
        cuts: &[u64],
        read_error: impl FnOnce(io::Error) -> E,
        mut each: impl FnMut(&[u8], u64) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.window.len() < 2 * self.max {
            self.window.resize(2 * self.max, 0);
        }
        let (mut start, mut end, mut eof) = (0usize, 0usize, false);
        let (mut offset, mut next_cut) = (0u64, cuts.iter().copied().peekable());
        loop {
            if start == end && eof {
                return Ok(());
            }
            while next_cut.next_if(|c| *c <= offset).is_some() {}
            let buffered = end - start;
            let to_cut = next_cut.peek().map(|c| (c - offset) as usize);
            let span = to_cut.map_or(buffered, |c| c.min(buffered));
            if span > 0 {
                let len = self.cut(&self.window[start..start + span]);
                // A cut inside what is buffered is where FastCDC over the whole input
                // cuts too; at its end it is one only if no more bytes could move it.
                let last = span >= self.max || to_cut.is_some_and(|c| c <= buffered) || eof;
                if len < span || last {
                    each(&self.window[start..start + len], offset)?;
                    start += len;
                    offset += len as u64;
                    continue;
                }
            }
            // Fewer than a chunk's bytes are left undecided: move them to the front
            // (the only copy, about one chunk per window) and read on behind them.
            self.window.copy_within(start..end, 0);
            end -= start;
            start = 0;
            while !eof && end < self.window.len() {
                match reader.read(&mut self.window[end..]) {
                    Ok(0) => eof = true,
                    Ok(n) => end += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(read_error(e)),
                }
            }
        }
    }

    /// Length of the next chunk at the start of `src`.
    fn cut(&self, src: &[u8]) -> usize {
        cut_gear(
            src,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        )
        .1
    }
}

/// Split a reader into owned chunks (tests and small inputs; the backup uses [`Chunker`]).
pub fn chunks<R: Read>(reader: R, p: &ChunkerParams) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    Chunker::new(p).split(
        reader,
        |e| e,
        |c| {
            out.push(c.to_vec());
            Ok(())
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastcdc::v2020::StreamCDC;

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

    /// A reader that hands out at most `step` bytes per call, to exercise refills.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn reference(input: &[u8], p: &ChunkerParams) -> Vec<Vec<u8>> {
        StreamCDC::with_level_and_seed(input, p.min_size, p.avg_size, p.max_size, Normalization::Level1, p.seed)
            .map(|c| c.unwrap().data)
            .collect()
    }

    #[test]
    fn chunks_reassemble_and_respect_bounds() {
        let input = data(5 << 20);
        let p = ChunkerParams::with_seed(1);
        let parts = chunks(&input[..], &p).unwrap();
        assert_eq!(parts.concat(), input);
        for c in &parts[..parts.len() - 1] {
            assert!(c.len() >= p.min_size as usize && c.len() <= p.max_size as usize);
        }
    }

    #[test]
    fn boundaries_match_fastcdc_over_the_whole_input() {
        // Small sizes so that many windows, refills and compactions happen.
        let p = ChunkerParams {
            min_size: 2048,
            avg_size: 8192,
            max_size: 32768,
            seed: 7,
        };
        let mut chunker = Chunker::new(&p);
        for (len, step) in [
            (0, 1),
            (100, 7),
            (2047, 4096),
            (40_000, 333),
            (300_000, 65_536),
            (1 << 20, 1 << 20),
        ] {
            let input = data(len);
            let mut got = Vec::new();
            chunker
                .split(
                    Trickle(&input, step),
                    |e| e,
                    |c| {
                        got.push(c.to_vec());
                        Ok::<_, io::Error>(())
                    },
                )
                .unwrap();
            assert_eq!(got, reference(&input, &p), "len {len} step {step}");
        }
        // Highly repetitive input: every chunk is cut at the maximum size.
        let zeros = vec![0u8; 200_000];
        assert_eq!(chunks(&zeros[..], &p).unwrap(), reference(&zeros, &p));
    }

    #[test]
    fn default_parameters_match_fastcdc() {
        let input = data(20 << 20);
        let p = ChunkerParams::with_seed(0xDEAD_BEEF);
        assert_eq!(chunks(Trickle(&input, 3 << 20), &p).unwrap(), reference(&input, &p));
    }

    #[test]
    fn seed_changes_boundaries() {
        let input = data(6 << 20);
        let lens = |seed| -> Vec<usize> {
            chunks(&input[..], &ChunkerParams::with_seed(seed))
                .unwrap()
                .iter()
                .map(Vec::len)
                .collect()
        };
        assert_ne!(lens(1), lens(2));
    }

    #[test]
    fn reader_errors_stop_the_split() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk gone"))
            }
        }
        let err = chunks(Broken, &ChunkerParams::with_seed(1)).unwrap_err();
        assert_eq!(err.to_string(), "disk gone");
    }

    #[test]
    fn each_span_between_cuts_is_chunked_as_a_file_of_its_own() {
        let p = ChunkerParams {
            min_size: 2048,
            avg_size: 8192,
            max_size: 32768,
            seed: 9,
        };
        let input = data(300_000);
        let cuts = [10u64, 10, 5000, 5001, 120_000, 299_999, 400_000];
        let mut got = Vec::new();
        Chunker::new(&p)
            .split_at(
                Trickle(&input, 4096),
                &cuts,
                |e| e,
                |c, at| {
                    got.push((at, c.to_vec()));
                    Ok::<_, io::Error>(())
                },
            )
            .unwrap();
        let mut want = Vec::new();
        let bounds = [0usize, 10, 5000, 5001, 120_000, 299_999, 300_000];
        for w in bounds.windows(2) {
            let mut at = w[0] as u64;
            for c in reference(&input[w[0]..w[1]], &p) {
                want.push((at, c.clone()));
                at += c.len() as u64;
            }
        }
        assert_eq!(got, want);
    }

    #[test]
    fn out_of_range_parameters_are_not_valid() {
        let mut p = ChunkerParams::with_seed(1);
        assert!(p.valid());
        p.min_size = 32;
        assert!(!p.valid());
        let mut p = ChunkerParams::with_seed(1);
        p.max_size = p.avg_size - 1;
        assert!(!p.valid());
    }
}
