//! Byte planes: the layout that lets float tensors compress.
//!
//! In a float tensor the byte holding sign and exponent varies little from element to
//! element while the low mantissa bytes are close to noise. Compressed as one byte
//! stream the two are mixed and zstd finds little; grouped by position in the element
//! (all first bytes, then all second bytes, ...) the exponent plane shrinks a lot and
//! the noise planes are left raw. This module only moves bytes between the two
//! layouts and frames the result; which plane is compressed, and how, is the caller's
//! (`blob`), given as functions.
//!
//! A chunk may start inside an element (the chunker cuts a large tensor where its
//! content says), so the encoding records the phase: the position, inside its element,
//! of the chunk's first byte. The bytes before the first whole element and after the
//! last are kept raw. Body (format.md section 4.3, compression code 2):
//!
//! ```text
//! body  = width u8 || phase u8 || count u32 || plane * width || lead || tail
//! plane = mode u8 (0 raw, 1 zstd) || length u32 || bytes[length]
//! ```

/// How the elements of a chunk lie: `width` bytes each (2 to 8), the chunk's first
/// byte being byte `phase` of its element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elements {
    pub width: u8,
    pub phase: u8,
}

const PLANE_RAW: u8 = 0;
const PLANE_PACKED: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaneError {
    #[error("byte-plane body is truncated")]
    Truncated,
    #[error("byte-plane element width {0} or phase {1} is not valid")]
    Layout(u8, u8),
    #[error("byte planes would hold more than {0} bytes")]
    TooLarge(usize),
    #[error("byte plane {plane} does not hold {count} bytes")]
    PlaneLength { plane: usize, count: usize },
    #[error("unknown byte-plane mode {0}")]
    Mode(u8),
    #[error("{0} bytes around the planes do not fit the phase")]
    Rest(usize),
}

impl Elements {
    fn valid(self) -> bool {
        (2..=8).contains(&self.width) && self.phase < self.width
    }

    /// Bytes before the first whole element of a chunk of `len` bytes.
    fn lead(self, len: usize) -> usize {
        (usize::from(self.width - self.phase) % usize::from(self.width)).min(len)
    }
}

/// Encode `data` as byte planes, each replaced by `pack(plane)` when that returns a
/// smaller form. `None` when the layout is not valid.
pub fn encode(data: &[u8], el: Elements, pack: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let packed = |plane: &[u8], out: &mut Vec<u8>| match pack(plane) {
        Some(z) => {
            out.extend_from_slice(&z);
            true
        }
        None => false,
    };
    encode_into(&mut out, data, el, packed).then_some(out)
}

thread_local! {
    /// Where a plane is packed before it replaces its raw form, reused from plane to plane.
    static PACKED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`encode`] appending the body to `out`. `pack(plane, packed)` appends a packed form
/// of the plane to the empty `packed` and returns true, or returns false; a plane whose
/// packed form is not smaller is stored raw. False, with `out` unchanged, when the
/// layout is not valid. Each plane is gathered straight into its place in `out`.
pub fn encode_into(
    out: &mut Vec<u8>,
    data: &[u8],
    el: Elements,
    mut pack: impl FnMut(&[u8], &mut Vec<u8>) -> bool,
) -> bool {
    if !el.valid() {
        return false;
    }
    let width = usize::from(el.width);
    let lead = el.lead(data.len());
    let count = (data.len() - lead) / width;
    let Ok(count32) = u32::try_from(count) else {
        return false;
    };
    let (whole, tail) = data[lead..].split_at(count * width);
    out.reserve(2 + 4 + width * 5 + data.len());
    out.extend_from_slice(&[el.width, el.phase]);
    out.extend_from_slice(&count32.to_le_bytes());
    PACKED.with(|cell| {
        let packed = &mut cell.borrow_mut();
        for j in 0..width {
            push_plane(out, whole, width, j, count32, packed, &mut pack);
        }
    });
    out.extend_from_slice(&data[..lead]);
    out.extend_from_slice(tail);
    true
}

/// Append plane `j` of the elements in `whole`: packed when `pack` makes it smaller,
/// raw otherwise.
fn push_plane(
    out: &mut Vec<u8>,
    whole: &[u8],
    width: usize,
    j: usize,
    count: u32,
    packed: &mut Vec<u8>,
    pack: &mut impl FnMut(&[u8], &mut Vec<u8>) -> bool,
) {
    let at = out.len();
    out.push(PLANE_RAW);
    out.extend_from_slice(&count.to_le_bytes());
    let start = out.len();
    out.resize(start + count as usize, 0);
    gather(whole, width, j, &mut out[start..]);
    packed.clear();
    if pack(&out[start..], packed) && packed.len() < count as usize {
        out.truncate(at);
        out.push(PLANE_PACKED);
        out.extend_from_slice(&(packed.len() as u32).to_le_bytes());
        out.extend_from_slice(packed);
    }
}

/// Byte `j` of every element of `width` bytes in `whole`, into `plane`. The common
/// widths get a loop of constant stride the compiler can unroll.
fn gather(whole: &[u8], width: usize, j: usize, plane: &mut [u8]) {
    fn by<const W: usize>(whole: &[u8], j: usize, plane: &mut [u8]) {
        let (elements, _) = whole.as_chunks::<W>();
        for (byte, e) in plane.iter_mut().zip(elements) {
            *byte = e[j % W];
        }
    }
    match width {
        2 => by::<2>(whole, j, plane),
        4 => by::<4>(whole, j, plane),
        8 => by::<8>(whole, j, plane),
        _ => {
            for (byte, e) in plane.iter_mut().zip(whole.chunks_exact(width)) {
                *byte = e[j];
            }
        }
    }
}

/// Reverse of [`gather`] for every plane: interleave `planes` (each as long) into whole elements.
/// One pass over the output, each element assembled in a register from its byte of
/// every plane: the compiler turns that into vector shuffles, where writing one plane
/// at a time into every `width`-th byte cannot be (twice as fast on float chunks).
fn join<P: AsRef<[u8]>>(planes: &[P], whole: &mut [u8]) {
    match planes.len() {
        2 => join_by::<2, P>(planes, whole),
        3 => join_by::<3, P>(planes, whole),
        4 => join_by::<4, P>(planes, whole),
        5 => join_by::<5, P>(planes, whole),
        6 => join_by::<6, P>(planes, whole),
        7 => join_by::<7, P>(planes, whole),
        8 => join_by::<8, P>(planes, whole),
        // Widths are checked against `Elements::valid` before any plane is read.
        _ => {}
    }
}

fn join_by<const W: usize, P: AsRef<[u8]>>(planes: &[P], whole: &mut [u8]) {
    let (elements, _) = whole.as_chunks_mut::<W>();
    let n = planes.iter().fold(elements.len(), |n, p| n.min(p.as_ref().len()));
    // Cut every plane to the same length up front, so the loop has no bounds checks.
    let planes: [&[u8]; W] = std::array::from_fn(|j| planes.get(j).map_or(&[][..], |p| &p.as_ref()[..n]));
    for (i, e) in elements[..n].iter_mut().enumerate() {
        let mut v = 0u64;
        for (j, plane) in planes.iter().enumerate() {
            v |= u64::from(plane[i]) << (8 * j);
        }
        e.copy_from_slice(&v.to_le_bytes()[..W]);
    }
}

/// Reverse of [`encode`], refusing planes of more than `limit` bytes in all.
/// `unpack(bytes, n)` must return exactly what `pack` was given, or an error, and never
/// more than `n` bytes. Every length is checked before use.
pub fn decode<E: From<PlaneError>>(
    body: &[u8],
    limit: usize,
    unpack: impl Fn(&[u8], usize) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, E> {
    let mut out = Vec::new();
    decode_into(body, limit, unpack, &mut out)?;
    Ok(out)
}

/// [`decode`] into `out`, emptied first: a buffer reused from chunk to chunk keeps its
/// memory instead of a fresh allocation (and its page faults) for every chunk.
pub fn decode_into<E: From<PlaneError>>(
    body: &[u8],
    limit: usize,
    unpack: impl Fn(&[u8], usize) -> Result<Vec<u8>, E>,
    out: &mut Vec<u8>,
) -> Result<(), E> {
    let mut r = Reader(body);
    let el = Elements {
        width: r.u8()?,
        phase: r.u8()?,
    };
    if !el.valid() {
        return Err(PlaneError::Layout(el.width, el.phase).into());
    }
    let width = usize::from(el.width);
    let count = r.u32()? as usize;
    if count.checked_mul(width).is_none_or(|n| n > limit) {
        return Err(PlaneError::TooLarge(limit).into());
    }
    let mut planes = Vec::with_capacity(width);
    for plane in 0..width {
        let mode = r.u8()?;
        let len = r.u32()? as usize;
        let stored = r.take(len)?;
        let bytes = match mode {
            PLANE_RAW => std::borrow::Cow::Borrowed(stored),
            PLANE_PACKED => std::borrow::Cow::Owned(unpack(stored, count)?),
            other => return Err(PlaneError::Mode(other).into()),
        };
        if bytes.len() != count {
            return Err(PlaneError::PlaneLength { plane, count }.into());
        }
        planes.push(bytes);
    }
    let rest = r.0;
    let lead = el.lead(rest.len());
    if (count > 0 && lead < el.lead(width)) || rest.len() - lead >= width {
        return Err(PlaneError::Rest(rest.len()).into());
    }
    out.clear();
    out.resize(rest.len() + count * width, 0);
    out[..lead].copy_from_slice(&rest[..lead]);
    join(&planes, &mut out[lead..lead + count * width]);
    out[lead + count * width..].copy_from_slice(&rest[lead..]);
    Ok(())
}

/// A cursor over the body that never reads past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PlaneError> {
        if n > self.0.len() {
            return Err(PlaneError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, PlaneError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, PlaneError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(b: &[u8], _: usize) -> Result<Vec<u8>, PlaneError> {
        Ok(b.to_vec())
    }

    #[test]
    fn planes_group_bytes_by_position_after_the_lead() {
        // width 4, phase 3: one lead byte, two whole elements, two tail bytes.
        let data = [9, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11];
        let body = encode(&data, Elements { width: 4, phase: 3 }, |_| None).unwrap();
        let planes = [
            0, 2, 0, 0, 0, 1, 5, 0, 2, 0, 0, 0, 2, 6, 0, 2, 0, 0, 0, 3, 7, 0, 2, 0, 0, 0, 4, 8,
        ];
        assert_eq!(&body[..6], &[4, 3, 2, 0, 0, 0]);
        assert_eq!(&body[6..34], &planes);
        assert_eq!(&body[34..], &[9, 10, 11]);
        assert_eq!(decode(&body, 1 << 20, identity).unwrap(), data);
    }

    #[test]
    fn chunks_shorter_than_a_few_elements_round_trip_at_every_width_and_phase() {
        for width in 2..=8u8 {
            for phase in 0..width {
                for len in 0..3 * usize::from(width) {
                    let data: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
                    let body = encode(&data, Elements { width, phase }, |_| None).unwrap();
                    assert_eq!(body[0], width);
                    assert_eq!(decode(&body, 1 << 20, identity).unwrap(), data, "{width}/{phase}/{len}");
                }
            }
        }
    }

    #[test]
    fn every_width_round_trips_with_packed_and_raw_planes() {
        let data: Vec<u8> = (0..1000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for width in 2..=8u8 {
            for phase in [0, width - 1] {
                let el = Elements { width, phase };
                // Every plane "packs" to its first byte, so each decodes to that byte
                // repeated: every whole element comes back as the first one.
                let body = encode(&data, el, |p| Some(p[..1].to_vec())).unwrap();
                let lead = el.lead(data.len());
                let count = (data.len() - lead) / usize::from(width);
                assert_eq!(&body[6..11], &[PLANE_PACKED, 1, 0, 0, 0], "width {width}");
                let unpack = |b: &[u8], n: usize| -> Result<Vec<u8>, PlaneError> { Ok(vec![b[0]; n]) };
                let back = decode(&body, 1 << 20, unpack).unwrap();
                let expected: Vec<u8> = data
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| {
                        let whole = i >= lead && i < lead + count * usize::from(width);
                        if whole {
                            data[lead + (i - lead) % usize::from(width)]
                        } else {
                            b
                        }
                    })
                    .collect();
                assert_eq!(back, expected, "width {width} phase {phase}");
                let raw = encode(&data, el, |_| None).unwrap();
                assert_eq!(
                    decode(&raw, 1 << 20, identity).unwrap(),
                    data,
                    "width {width} phase {phase}"
                );
            }
        }
    }

    #[test]
    fn inconsistent_bodies_are_refused() {
        let body = encode(&[0u8; 40], Elements { width: 2, phase: 0 }, |_| None).unwrap();
        let mut bad_width = body.clone();
        bad_width[0] = 9;
        assert_eq!(decode(&bad_width, 1 << 20, identity), Err(PlaneError::Layout(9, 0)));
        let mut long_count = body.clone();
        long_count[2] = 21;
        assert_eq!(
            decode(&long_count, 1 << 20, identity),
            Err(PlaneError::PlaneLength { plane: 0, count: 21 })
        );
        let mut huge = body.clone();
        huge[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge, 1 << 20, identity), Err(PlaneError::TooLarge(1 << 20)));
        assert_eq!(
            decode(&body[..body.len() - 1], 1 << 20, identity),
            Err(PlaneError::Truncated)
        );
        let mut extra = body.clone();
        extra.extend_from_slice(&[1, 2]);
        assert_eq!(decode(&extra, 1 << 20, identity), Err(PlaneError::Rest(2)));
    }
}
