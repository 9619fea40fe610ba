//! Sealing and opening of blobs and metadata objects.
//!
//! Plaintext of every sealed value is one compression byte followed by the body:
//! `0` = stored as is, `1` = zstd frame, `2` = byte planes (a chunk of a float tensor,
//! its bytes grouped by position in the element, each plane zstd-compressed or raw:
//! [`byteplanes`](super::byteplanes)). Compression is tried and kept only when it
//! saves at least 1/32 of the size, so data that never shrinks costs one fast failed
//! attempt on a 64 KiB probe and is stored raw.

use super::byteplanes::{self, Elements, PlaneError};
use super::crypto::{self, Cipher, CryptoError, MasterKey};
use super::ids::BlobId;

const RAW: u8 = 0;
const ZSTD: u8 = 1;
const PLANES: u8 = 2;
/// Inputs beyond this are never decompressed (a guard against decompression bombs).
pub const MAX_BLOB: usize = 64 * 1024 * 1024;
/// Largest sealed blob: a framed [`MAX_BLOB`] with the longest nonce and the tag.
/// Index entries and pack headers naming a longer blob are refused.
pub const MAX_SEALED: usize = MAX_BLOB + 1 + 24 + crypto::TAG_LEN;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("unknown compression code {0}")]
    Compression(u8),
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error(transparent)]
    Planes(#[from] PlaneError),
    #[error("content does not match its id {expected} (computed {actual})")]
    IdMismatch { expected: BlobId, actual: BlobId },
    #[error("empty plaintext")]
    Empty,
}

/// How hard zstd tries; 0 disables compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression(pub i32);

impl Compression {
    pub const OFF: Compression = Compression(0);
    pub const DEFAULT: Compression = Compression(3);

    /// How the byte planes of float tensors are compressed. The only plane that
    /// compresses is the one of signs and exponents: a few distinct values with little
    /// repetition, so what pays is coding each byte by its frequency (Huffman), not
    /// finding repeats. Every level below the optimal-parsing ones gives
    /// [`Setup::Planes`]; levels of 13 and more are kept (they store it smaller, slowly).
    fn for_planes(self) -> Setup {
        match self.0 {
            1..=12 => Setup::Planes,
            level => Setup::Level(level),
        }
    }
}

/// How a zstd compressor is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// One of zstd's levels (0: no compression).
    Level(i32),
    /// For float planes: zstd's fastest strategy told to look for repeats of 7 bytes or
    /// more, and only every 128 bytes while it finds none, yet to Huffman-code its
    /// literals (zstd stops doing that by default once told to skip). On the exponent
    /// plane of float32 weights this stores 2.94x smaller at about twice the speed of
    /// level 1 (2.55x), which spent its time on accidental 4-byte matches
    /// (docs/benchmarks.md). The frames are ordinary zstd frames.
    Planes,
}

impl Setup {
    fn compressor(self) -> Option<zstd::bulk::Compressor<'static>> {
        use zstd::zstd_safe::{CParameter, ParamSwitch};
        match self {
            Setup::Level(level) => zstd::bulk::Compressor::new(level).ok(),
            Setup::Planes => {
                let mut c = zstd::bulk::Compressor::new(1).ok()?;
                c.set_parameter(CParameter::MinMatch(7)).ok()?;
                c.set_parameter(CParameter::TargetLength(128)).ok()?;
                c.set_parameter(CParameter::LiteralCompressionMode(ParamSwitch::Enable))
                    .ok()?;
                Some(c)
            }
        }
    }

    fn off(self) -> bool {
        self == Setup::Level(0)
    }
}

/// Bytes tried first on large inputs to learn cheaply whether compressing pays.
const PROBE: usize = 64 * 1024;

thread_local! {
    /// One reusable compressor per thread: creating a zstd context per blob costs
    /// more than compressing a small blob.
    static COMPRESSOR: std::cell::RefCell<Option<(Setup, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    /// Where probes are compressed, reused from blob to blob.
    static PROBE_OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Append the zstd frame of `data`, compressed as `setup` says, to `out`; false (and
/// `out` as it was) when zstd fails.
fn compress_onto(data: &[u8], setup: Setup, out: &mut Vec<u8>) -> bool {
    let at = out.len();
    out.reserve(zstd::zstd_safe::compress_bound(data.len()));
    let written = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(s, _)| *s != setup) {
            *slot = Some((setup, setup.compressor()?));
        }
        let mut end = std::io::Cursor::new(&mut *out);
        end.set_position(at as u64);
        slot.as_mut()?.1.compress_to_buffer(data, &mut end).ok()
    });
    if written.is_none() {
        out.truncate(at);
    }
    written.is_some()
}

/// Whether `z` bytes of compressed output save at least 1/32 of `raw_len`.
fn worth_it(z: usize, raw_len: usize) -> bool {
    z + z / 32 < raw_len
}

/// The plaintext (compression byte + body) for `data`.
///
/// Inputs larger than four probes are first judged by compressing one probe from
/// their middle: data that does not shrink there (weights, media, ciphertext) is
/// stored raw without paying for a full compression attempt.
pub fn frame(data: &[u8], level: Compression) -> Vec<u8> {
    frame_as(data, level, None)
}

/// [`frame`] for a chunk whose bytes are `elements` of a float tensor, when known.
pub fn frame_as(data: &[u8], level: Compression, elements: Option<Elements>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_onto(&mut out, data, level, elements);
    out
}

/// Append the compression code and body for `data` to `out`: byte planes for float
/// elements when they come out smaller than the data, otherwise zstd when it pays,
/// otherwise raw. Raw bytes and zstd frames are written where they end up; only a
/// packed plane is copied once, from its scratch buffer.
fn encode_onto(out: &mut Vec<u8>, data: &[u8], level: Compression, elements: Option<Elements>) {
    let start = out.len();
    let raw = |out: &mut Vec<u8>| {
        out.truncate(start);
        out.push(RAW);
        out.extend_from_slice(data);
    };
    if let Some(el) = elements.filter(|_| level.0 != 0) {
        out.push(PLANES);
        let planes = level.for_planes();
        let pack = |plane: &[u8], packed: &mut Vec<u8>| compressed_onto(plane, planes, packed);
        if byteplanes::encode_into(out, data, el, pack) {
            if out.len() - start > data.len() {
                raw(out);
            }
            return;
        }
        out.truncate(start);
    }
    out.push(ZSTD);
    if !compressed_onto(data, Setup::Level(level.0), out) {
        raw(out);
    }
}

/// Append the zstd frame of `data` to `out` when compression is on and pays off;
/// false otherwise (whatever was appended is the caller's to cut off).
fn compressed_onto(data: &[u8], setup: Setup, out: &mut Vec<u8>) -> bool {
    let promising = || {
        data.len() < 4 * PROBE || {
            let mid = data.len() / 2 - PROBE / 2;
            let probe = &data[mid..mid + PROBE];
            PROBE_OUT.with(|cell| {
                let mut z = cell.borrow_mut();
                z.clear();
                compress_onto(probe, setup, &mut z) && worth_it(z.len(), PROBE)
            })
        }
    };
    if setup.off() || data.len() < 64 || !promising() {
        return false;
    }
    let at = out.len();
    compress_onto(data, setup, out) && worth_it(out.len() - at, data.len())
}

/// Reverse of [`frame`].
pub fn unframe(plain: &[u8]) -> Result<Vec<u8>, BlobError> {
    let mut out = Vec::new();
    match unframe_into(plain, &mut out)? {
        Some(raw) => Ok(raw.to_vec()),
        None => Ok(out),
    }
}

/// [`unframe`] that decodes into `out` (emptied first, its memory reused) and lends a
/// value stored raw instead of copying it: `Some(value)` when raw, `None` when the
/// value is in `out`.
fn unframe_into<'a>(plain: &'a [u8], out: &mut Vec<u8>) -> Result<Option<&'a [u8]>, BlobError> {
    let (&code, body) = plain.split_first().ok_or(BlobError::Empty)?;
    match code {
        RAW => return Ok(Some(body)),
        ZSTD => decompress_into(body, MAX_BLOB, out)?,
        PLANES => byteplanes::decode_into(body, MAX_BLOB, decompress, out)?,
        other => return Err(BlobError::Compression(other)),
    }
    Ok(None)
}

thread_local! {
    /// One reusable decompressor per thread, as for compression: a fresh zstd context
    /// per blob was a measurable share of a restore.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// One zstd frame, refused if it holds more than `limit` bytes.
fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, BlobError> {
    let mut out = Vec::new();
    decompress_into(body, limit, &mut out)?;
    Ok(out)
}

/// [`decompress`] into `out`, emptied first; the frame is written into its spare
/// capacity, never zero-filled first.
fn decompress_into(body: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), BlobError> {
    // Size the output from the frame header (our frames carry it) rather than
    // reserving the whole limit for every blob.
    let declared = zstd::zstd_safe::get_frame_content_size(body).ok().flatten();
    let capacity = declared.map_or(limit, |n| n.min(limit as u64) as usize);
    out.clear();
    out.reserve_exact(capacity);
    let failed = |e: std::io::Error| BlobError::Decompress(e.to_string());
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new().map_err(failed)?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress_to_buffer(body, out).map_err(failed),
            None => Err(BlobError::Decompress("no decompression context".into())),
        }
    })?;
    // A buffer reused from a larger value has room beyond `limit`.
    if out.len() > limit {
        return Err(BlobError::Decompress(format!("frame holds more than {limit} bytes")));
    }
    Ok(())
}

/// Compress (when it helps) and encrypt one value. Same bytes as sealing
/// [`frame`]'s output, without building that intermediate copy.
pub fn seal(key: &MasterKey, cipher: Cipher, nonce: &[u8], data: &[u8], level: Compression) -> Vec<u8> {
    seal_as(key, cipher, nonce, data, level, None)
}

/// [`seal`] for a chunk whose bytes are `elements` of a float tensor, when known.
pub fn seal_as(
    key: &MasterKey,
    cipher: Cipher,
    nonce: &[u8],
    data: &[u8],
    level: Compression,
    elements: Option<Elements>,
) -> Vec<u8> {
    // Room for the nonce, the compression byte, the largest body (raw, or planes with
    // their headers, or a zstd bound) and the tag, so nothing is moved while it grows.
    let room = nonce.len() + 1 + data.len() + data.len() / 128 + 128 + crypto::TAG_LEN;
    let mut out = Vec::with_capacity(room);
    out.extend_from_slice(nonce);
    encode_onto(&mut out, data, level, elements);
    let mut sealed = crypto::seal_after_nonce(cipher, key.data_key(), nonce.len(), out);
    // A compressed blob waits in a pack being filled: give back the room it did not
    // need (a shrink in place, not a copy).
    sealed.shrink_to_fit();
    sealed
}

/// Whether a value of `raw_len` bytes that [`seal`] turned into `sealed_len` bytes was
/// stored raw, i.e. the compressibility probe (or the full attempt) found it would not
/// shrink: a compressed value is always shorter than its raw framing.
pub fn stored_raw(cipher: Cipher, raw_len: usize, sealed_len: usize) -> bool {
    sealed_len >= raw_len + 1 + cipher.overhead()
}

/// Decrypt and decompress a value sealed by [`seal`].
pub fn open(key: &MasterKey, cipher: Cipher, sealed: &[u8]) -> Result<Vec<u8>, BlobError> {
    unframe(&crypto::open(cipher, key.data_key(), sealed)?)
}

/// Open a content-addressed blob and prove that it is the blob `id` names.
pub fn open_verified(key: &MasterKey, cipher: Cipher, id: &BlobId, sealed: &[u8]) -> Result<Vec<u8>, BlobError> {
    let data = open(key, cipher, sealed)?;
    verify(key, id, &data)?;
    Ok(data)
}

/// [`open_verified`] in a buffer the caller owns and gives up (a span read from a
/// pack): decrypted where it lies, a blob stored raw lent from that buffer rather than
/// copied, any other decoded into `scratch` (emptied first, its memory reused from
/// blob to blob). Nothing is returned before it is authenticated and matches `id`.
pub fn open_verified_in_place<'a>(
    key: &MasterKey,
    cipher: Cipher,
    id: &BlobId,
    sealed: &'a mut [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], BlobError> {
    let plain = crypto::open_in_place(cipher, key.data_key(), sealed)?;
    let data = match unframe_into(plain, scratch)? {
        Some(raw) => raw,
        None => scratch,
    };
    verify(key, id, data)?;
    Ok(data)
}

fn verify(key: &MasterKey, id: &BlobId, data: &[u8]) -> Result<(), BlobError> {
    let actual = key.blob_id(data);
    if &actual != id {
        return Err(BlobError::IdMismatch { expected: *id, actual });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_bytes([3; 32])
    }

    #[test]
    fn zstd_frames_with_and_without_a_declared_size_unframe() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let declared = zstd::bulk::compress(&data, 3).unwrap();
        let streamed = zstd::stream::encode_all(&data[..], 3).unwrap();
        for body in [declared, streamed] {
            let mut plain = vec![ZSTD];
            plain.extend_from_slice(&body);
            assert_eq!(unframe(&plain).unwrap(), data);
        }
    }

    #[test]
    fn the_sealed_length_tells_whether_a_value_was_stored_raw() {
        let c = Cipher::XChaCha20Poly1305;
        let text = vec![b'a'; 10_000];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let sealed = |d: &[u8], l| seal(&key(), c, &[0; 24], d, l).len();
        assert!(!stored_raw(c, text.len(), sealed(&text, Compression(3))));
        assert!(stored_raw(c, text.len(), sealed(&text, Compression::OFF)));
        assert!(stored_raw(c, noise.len(), sealed(&noise, Compression(3))));
    }

    #[test]
    fn compressible_data_shrinks_and_round_trips() {
        let data = vec![b'a'; 10_000];
        let sealed = seal(&key(), Cipher::XChaCha20Poly1305, &[0; 24], &data, Compression::DEFAULT);
        assert!(sealed.len() < 1000);
        assert_eq!(open(&key(), Cipher::XChaCha20Poly1305, &sealed).unwrap(), data);
    }

    #[test]
    fn incompressible_data_is_stored_raw() {
        let mut x = 0x2545F4914F6CDD1Du64;
        let data: Vec<u8> = (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let f = frame(&data, Compression::DEFAULT);
        assert_eq!(f[0], RAW);
        assert_eq!(unframe(&f).unwrap(), data);
    }

    /// Float32 values like trained weights (about N(0, 0.02)): one exponent plane that
    /// compresses, three noise planes.
    fn weights(n: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..n)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let sum: f32 = (0..4).map(|k| ((x >> (16 * k)) & 0xFFFF) as f32 / 65536.0).sum();
                ((sum - 2.0) * 0.035).to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn float_planes_are_huffman_coded_below_the_optimal_parsing_levels() {
        let data = weights(100_000);
        let el = Some(Elements { width: 4, phase: 0 });
        let at = |level| frame_as(&data, Compression(level), el);
        assert_eq!(at(1)[0], PLANES);
        // Any level of its own would give other bytes: the rule is what makes them equal.
        let exponents: Vec<u8> = data.iter().skip(3).step_by(4).copied().collect();
        let z = |setup| {
            let mut out = Vec::new();
            assert!(compress_onto(&exponents, setup, &mut out));
            out
        };
        let planes = z(Setup::Planes);
        for level in [1, 3] {
            let standard = z(Setup::Level(level));
            assert!(
                planes.len() < standard.len(),
                "level {level}: {} >= {}",
                planes.len(),
                standard.len()
            );
        }
        assert_eq!(zstd::bulk::decompress(&planes, exponents.len()).unwrap(), exponents);
        assert_eq!(at(3), at(1));
        assert_eq!(at(12), at(1));
        assert_ne!(at(19), at(1));
        assert_eq!(unframe(&at(1)).unwrap(), data);
        assert_eq!(unframe(&at(19)).unwrap(), data);
        assert_eq!(Compression::OFF.for_planes(), Setup::Level(0));
    }

    #[test]
    fn sealing_builds_the_same_bytes_as_sealing_the_frame() {
        let text = b"a line of text, a line of text, a line of text".repeat(3000);
        let floats = weights(70_000);
        let noise: Vec<u8> = floats.iter().map(|b| b.wrapping_mul(151) ^ 0x5a).collect();
        let el = Some(Elements { width: 4, phase: 1 });
        for c in [Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm] {
            let nonce = vec![7; c.nonce_len()];
            for (data, elements) in [
                (&text, None),
                (&floats, el),
                (&noise, None),
                (&noise, el),
                (&floats, None),
            ] {
                for level in [Compression::OFF, Compression(1), Compression::DEFAULT] {
                    let framed = frame_as(&data[1..], level, elements);
                    let expected = crypto::seal(c, key().data_key(), &nonce, &framed);
                    assert_eq!(seal_as(&key(), c, &nonce, &data[1..], level, elements), expected);
                }
            }
        }
    }

    #[test]
    fn opening_in_place_matches_open_verified_for_every_framing() {
        let k = key();
        let text = b"a line of text, a line of text, a line of text".repeat(300);
        let floats = weights(20_000);
        let el = Some(Elements { width: 4, phase: 2 });
        for c in [Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm] {
            let nonce = vec![5; c.nonce_len()];
            let cases = [
                (&text, None, Compression::OFF, RAW),
                (&text, None, Compression::DEFAULT, ZSTD),
                (&floats, el, Compression::DEFAULT, PLANES),
            ];
            for (data, elements, level, code) in cases {
                let sealed = seal_as(&k, c, &nonce, data, level, elements);
                let mut buf = sealed.clone();
                let plain = crypto::open_in_place(c, k.data_key(), &mut buf).unwrap();
                assert_eq!(plain[0], code, "{} code {code}", c.name());
                let id = k.blob_id(data);
                let mut buf = sealed.clone();
                let within = buf.as_ptr_range();
                // A scratch buffer left over from a longer value must not show through.
                let mut scratch = vec![0xEE; data.len() * 2];
                let opened = open_verified_in_place(&k, c, &id, &mut buf, &mut scratch).unwrap();
                assert_eq!(opened, &data[..]);
                assert_eq!(
                    within.contains(&opened.as_ptr()),
                    code == RAW,
                    "only raw values are lent"
                );
                assert_eq!(open_verified(&k, c, &id, &sealed).unwrap(), &data[..]);
                let mut buf = sealed.clone();
                assert!(matches!(
                    open_verified_in_place(&k, c, &k.blob_id(b"other"), &mut buf, &mut scratch),
                    Err(BlobError::IdMismatch { .. })
                ));
                let mut flipped = sealed.clone();
                flipped[sealed.len() / 2] ^= 1;
                assert!(matches!(
                    open_verified_in_place(&k, c, &id, &mut flipped, &mut scratch),
                    Err(BlobError::Crypto(CryptoError::Auth))
                ));
            }
        }
    }

    #[test]
    fn a_reused_buffer_with_room_beyond_the_limit_still_enforces_it() {
        let data = vec![7u8; 5000];
        // A streamed frame does not declare its size, so only the limit bounds it.
        let body = zstd::stream::encode_all(&data[..], 3).unwrap();
        let mut out = Vec::with_capacity(20_000);
        assert!(matches!(
            decompress_into(&body, 4000, &mut out),
            Err(BlobError::Decompress(_))
        ));
        decompress_into(&body, 5000, &mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn open_verified_refuses_wrong_id() {
        let k = key();
        let sealed = seal(&k, Cipher::Aes256Gcm, &[0; 12], b"abc", Compression::OFF);
        let wrong = k.blob_id(b"abd");
        assert!(matches!(
            open_verified(&k, Cipher::Aes256Gcm, &wrong, &sealed),
            Err(BlobError::IdMismatch { .. })
        ));
        assert_eq!(
            open_verified(&k, Cipher::Aes256Gcm, &k.blob_id(b"abc"), &sealed).unwrap(),
            b"abc"
        );
    }
}
