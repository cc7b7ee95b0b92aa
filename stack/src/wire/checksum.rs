//! The Internet checksum (RFC 1071): one's-complement sum of 16-bit big-endian words.
//!
//! Partial sums are `u32` values that callers may chain: `sum(b, sum(a, 0))` equals `sum(a ++ b, 0)`
//! as long as `a` has even length (an odd-length slice is padded with a zero byte at its end, so it
//! may only be the last piece). [`fold`] reduces a partial sum to 16 bits; [`checksum`] returns the
//! inverted value that goes on the wire.

use super::Ipv4Addr;

/// One's-complement partial sum of `data` (as big-endian 16-bit words, an odd tail byte padded with
/// zero) added to `initial`. The result is not folded to 16 bits; use [`fold`] for that.
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let data_sum = sum_be16(data);
    // 2^32 is congruent to 1 modulo 0xffff, so an end-around carry at bit 32 keeps the value.
    let s = initial as u64 + data_sum as u64;
    ((s & 0xffff_ffff) + (s >> 32)) as u32
}

/// Folds the carries of a partial sum into 16 bits. Not inverted.
#[inline]
pub fn fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The final Internet checksum of `data`: the inverted, folded one's-complement sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// [`sum`] of a fixed-size header (`N` a multiple of 4, at most 60 bytes: a TCP header with its
/// options, every pure ACK): its 32-bit words added in 64 bits cannot overflow, so there is no
/// carry chain, no length dispatch and no tail handling.
#[inline(always)]
pub(crate) fn sum_header<const N: usize>(h: &[u8; N], initial: u32) -> u32 {
    const { assert!(N.is_multiple_of(4) && N <= 60) };
    // `initial` (big-endian words) joins the native-order sum before the one fold. At most
    // 2^40 + 15 * 2^32: no overflow.
    let mut acc = be_to_native(initial);
    let mut i = 0;
    while i < N {
        acc += u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]) as u64;
        i += 4;
    }
    let native = fold64(acc);
    u16::from_be_bytes(native.to_ne_bytes()) as u32
}

/// Partial sum of the IPv4 pseudo-header used by TCP and UDP (RFC 9293 section 3.1, RFC 768):
/// source and destination addresses, zero byte, protocol, and the upper-layer length.
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    let words = [
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        protocol as u16,
        (length >> 16) as u16,
        length as u16,
    ];
    // Seven 16-bit words cannot overflow a u32.
    words.iter().map(|&w| w as u32).sum()
}

/// Sum of `data` as big-endian 16-bit words, folded to 16 bits (returned in a u32).
///
/// The bulk is summed as native-endian 64-bit words in one carry chain (`carrying_add` compiles
/// to a run of `adc` with the word loaded from memory: one instruction per 8 bytes, about 0.15
/// instructions per byte with the loop overhead, the per-packet hot spot of receive and send);
/// one's-complement addition is byte-order independent (RFC 1071 section 2(B)), so the folded
/// native-order result only needs a final byte swap.
#[inline]
fn sum_be16(data: &[u8]) -> u32 {
    sum_be16_from(data, 0)
}

/// [`fold`]`(`[`sum`]`(data, `[`pseudo_header`]`(src, dst, protocol, data.len())))`, the value a
/// received segment's verification compares with `0xffff`. The pseudo-header's words are
/// added in the data's native order (its bytes read as native 32-bit words, the same lane
/// layout as the data's words), so it costs four additions instead of seven byte-swapped words
/// and a second fold.
#[inline]
pub(crate) fn fold_with_pseudo_header(
    data: &[u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
) -> u16 {
    let len = data.len() as u32;
    let ph = u32::from_ne_bytes(src.octets()) as u64
        + u32::from_ne_bytes(dst.octets()) as u64
        + u32::from_ne_bytes([0, protocol, 0, 0]) as u64
        + u32::from_ne_bytes(len.to_be_bytes()) as u64;
    sum_be16_from(data, ph) as u16
}

/// [`fold`]`(`[`sum`]`(data, initial))` with `initial` added into the data's native-order
/// accumulator (see [`sum_header`]) and a single fold: a data segment's checksum from the
/// connection's cached pseudo-header sum.
#[inline]
pub(crate) fn fold_with_initial(data: &[u8], initial: u32) -> u16 {
    sum_be16_from(data, be_to_native(initial)) as u16
}

/// A partial sum of big-endian words as the equivalent partial sum of native-order words: on a
/// little-endian machine each 16-bit word's bytes are swapped, which is a multiplication by 256
/// modulo 0xffff (256 * 256 = 1 + 0xffff). At most 2^40.
#[inline(always)]
fn be_to_native(initial: u32) -> u64 {
    if cfg!(target_endian = "little") {
        (initial as u64) << 8
    } else {
        initial as u64
    }
}

/// [`sum_be16`] with `initial` (at most 2^40, in the native word order of `data`) added to the
/// accumulator.
fn sum_be16_from(data: &[u8], initial: u64) -> u32 {
    #[inline(always)]
    fn word(c: &[u8], i: usize) -> u64 {
        u64::from_ne_bytes([
            c[i],
            c[i + 1],
            c[i + 2],
            c[i + 3],
            c[i + 4],
            c[i + 5],
            c[i + 6],
            c[i + 7],
        ])
    }
    if let Ok(h) = <&[u8; 20]>::try_from(data) {
        // The IPv4 header and the option-less TCP header (every pure ACK): five 32-bit words
        // summed in 64 bits cannot overflow, so no loop and no carry handling.
        let w = |i: usize| u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]) as u64;
        let native = fold64(initial + w(0) + w(4) + w(8) + w(12) + w(16));
        return u16::from_be_bytes(native.to_ne_bytes()) as u32;
    }
    let mut acc: u64 = initial;
    // Carries out of bit 63, each worth 2^64 (congruent to 1): added back at the end.
    let mut carries: u64 = 0;
    // Thirty-two words per iteration in one carry chain (the first an `add`, then `adc`s); the
    // chain's final carry is counted, so no flag has to survive the loop overhead.
    let mut blocks = data.chunks_exact(256);
    for c in blocks.by_ref() {
        let mut carry = false;
        let mut i = 0;
        while i < 256 {
            (acc, carry) = acc.carrying_add(word(c, i), carry);
            i += 8;
        }
        carries += carry as u64;
    }
    // The rest (under 256 bytes) without a loop: one chain each of 16, 8, 4, 2 and 1 words as
    // the length needs (a 1460-byte segment's 200-byte rest is three chains, not six
    // iterations of a four-word one).
    let mut rest = blocks.remainder();
    if let Some(c) = rest.first_chunk::<128>() {
        let (a, carry) = chain(acc, c);
        (acc, carries, rest) = (a, carries + carry as u64, &rest[128..]);
    }
    if let Some(c) = rest.first_chunk::<64>() {
        let (a, carry) = chain(acc, c);
        (acc, carries, rest) = (a, carries + carry as u64, &rest[64..]);
    }
    if let Some(c) = rest.first_chunk::<32>() {
        let (a, carry) = chain(acc, c);
        (acc, carries, rest) = (a, carries + carry as u64, &rest[32..]);
    }
    if let Some(c) = rest.first_chunk::<16>() {
        let (a, carry) = chain(acc, c);
        (acc, carries, rest) = (a, carries + carry as u64, &rest[16..]);
    }
    if let Some(c) = rest.first_chunk::<8>() {
        let (a, carry) = chain(acc, c);
        (acc, carries, rest) = (a, carries + carry as u64, &rest[8..]);
    }
    acc = add_carry64(acc, carries);
    // Fewer than 8 bytes left, starting at an even offset: native-order pieces of 4, 2 and 1
    // bytes (the odd byte padded with a zero after it), each congruent to its 16-bit words.
    if rest.len() >= 4 {
        acc = add_carry64(
            acc,
            u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as u64,
        );
        rest = &rest[4..];
    }
    if rest.len() >= 2 {
        acc = add_carry64(acc, u16::from_ne_bytes([rest[0], rest[1]]) as u64);
        rest = &rest[2..];
    }
    if let [last] = rest {
        acc = add_carry64(acc, u16::from_ne_bytes([*last, 0]) as u64);
    }
    let native = fold64(acc);
    // Convert the native-order folded sum to big-endian word order.
    u16::from_be_bytes(native.to_ne_bytes()) as u32
}

/// `acc` plus the native-endian 64-bit words of `c` in one carry chain; returns the sum and the
/// chain's final carry (worth 2^64, congruent to 1).
#[inline(always)]
fn chain<const N: usize>(mut acc: u64, c: &[u8; N]) -> (u64, bool) {
    let mut carry = false;
    let mut i = 0;
    while i < N {
        let w = u64::from_ne_bytes([
            c[i],
            c[i + 1],
            c[i + 2],
            c[i + 3],
            c[i + 4],
            c[i + 5],
            c[i + 6],
            c[i + 7],
        ]);
        (acc, carry) = acc.carrying_add(w, carry);
        i += 8;
    }
    (acc, carry)
}

/// One's-complement addition in 64 bits (end-around carry).
#[inline]
fn add_carry64(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    // When a carry occurred, s <= b - 1 < u64::MAX, so adding it back cannot overflow.
    s + carry as u64
}

/// Folds a 64-bit one's-complement sum to 16 bits (2^16 is congruent to 1 modulo 0xffff).
#[inline]
fn fold64(v: u64) -> u16 {
    let v = (v & 0xffff_ffff) + (v >> 32);
    let v = (v & 0xffff_ffff) + (v >> 32);
    fold(v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straightforward reference: 16-bit big-endian words into a u64, folded at the end.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut s: u64 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            s += u16::from_be_bytes([data[i], data[i + 1]]) as u64;
            i += 2;
        }
        if i < data.len() {
            s += (data[i] as u64) << 8;
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 after folding.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
        // Byte-swapped input gives the byte-swapped sum (RFC 1071 section 2(B)).
        let swapped = [0x01, 0x00, 0x03, 0xf2, 0xf5, 0xf4, 0xf7, 0xf6];
        assert_eq!(fold(sum(&swapped, 0)), 0xf2dd);
    }

    #[test]
    fn known_ipv4_header_checksum() {
        // A classic example IPv4 header (checksum field b861 included): its sum folds to ffff.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(fold(sum(&hdr, 0)), 0xffff);
        assert_eq!(checksum(&hdr), 0);
        let mut zeroed = hdr;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(checksum(&zeroed), 0xb861);
    }

    #[test]
    fn edge_cases() {
        assert_eq!(sum(&[], 0), 0);
        assert_eq!(checksum(&[]), 0xffff);
        assert_eq!(fold(sum(&[0xab], 0)), 0xab00);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0x0001_ffff), 0x0001);
        assert_eq!(fold(0), 0);
        // All-ones words stay at ffff (one's complement "negative zero"); an odd tail is padded.
        assert_eq!(fold(sum(&[0xff; 1000], 0)), 0xffff);
        assert_eq!(fold(sum(&[0xff; 1001], 0)), 0xff00);
        // A large buffer crosses the internal block boundary.
        let big: Vec<u8> = (0..200_003u32).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(fold(sum(&big, 0)), reference_sum(&big));
        // The initial value may be any u32 without overflow.
        assert_eq!(fold(sum(&[0xff, 0xff], u32::MAX)), 0xffff);
    }

    #[test]
    fn pseudo_header_matches_bytes() {
        let src = Ipv4Addr::new(192, 168, 1, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 254);
        let bytes = [192, 168, 1, 1, 10, 0, 0, 254, 0, 6, 0x05, 0xdc];
        assert_eq!(fold(pseudo_header(src, dst, 6, 1500)), fold(sum(&bytes, 0)));
        // A length above 16 bits is summed as two words.
        let big = [0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 0x00, 0x01, 0x00, 0x02];
        assert_eq!(
            fold(pseudo_header(
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                17,
                0x0001_0002
            )),
            fold(sum(&big, 0))
        );
    }

    proptest! {
        #[test]
        fn matches_reference(data in proptest::collection::vec(any::<u8>(), 0..2000), off in 0usize..8) {
            // Unaligned slices: start at an arbitrary offset into the vector.
            let off = off.min(data.len());
            let slice = &data[off..];
            prop_assert_eq!(fold(sum(slice, 0)), reference_sum(slice));
        }

        #[test]
        fn twenty_bytes_match_reference(data in proptest::collection::vec(any::<u8>(), 20..=20)) {
            // The fixed-size path (IPv4 headers, option-less TCP headers).
            prop_assert_eq!(fold(sum(&data, 0)), reference_sum(&data));
        }

        #[test]
        fn fixed_size_headers_match_sum(data in proptest::collection::vec(any::<u8>(), 60..=60), init in any::<u32>()) {
            // `sum_header` (pure ACKs with and without timestamps) against the general `sum`.
            prop_assert_eq!(fold(sum_header::<20>(data[..20].try_into().unwrap(), init)), fold(sum(&data[..20], init)));
            prop_assert_eq!(fold(sum_header::<32>(data[..32].try_into().unwrap(), init)), fold(sum(&data[..32], init)));
            prop_assert_eq!(fold(sum_header::<60>(data[..60].try_into().unwrap(), init)), fold(sum(&data, init)));
            prop_assert_eq!(fold(sum_header::<32>(data[..32].try_into().unwrap(), 0)), reference_sum(&data[..32]));
        }

        #[test]
        fn pseudo_header_in_native_order_matches_sum(
            data in proptest::collection::vec(any::<u8>(), 0..1600),
            src in any::<u32>(), dst in any::<u32>(), protocol in any::<u8>(),
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let ph = pseudo_header(src, dst, protocol, data.len() as u32);
            prop_assert_eq!(fold_with_pseudo_header(&data, src, dst, protocol), fold(sum(&data, ph)));
            // The 20-byte path too.
            let h = &data[..data.len().min(20)];
            let ph = pseudo_header(src, dst, protocol, h.len() as u32);
            prop_assert_eq!(fold_with_pseudo_header(h, src, dst, protocol), fold(sum(h, ph)));
        }

        #[test]
        fn initial_in_native_order_matches_sum(
            data in proptest::collection::vec(any::<u8>(), 0..1600), init in any::<u32>(),
        ) {
            prop_assert_eq!(fold_with_initial(&data, init), fold(sum(&data, init)));
            let h = &data[..data.len().min(20)];
            prop_assert_eq!(fold_with_initial(h, init), fold(sum(h, init)));
        }

        #[test]
        fn chaining_even_pieces(data in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..300, init in any::<u32>()) {
            let cut = (cut * 2).min(data.len() & !1);
            let whole = fold(sum(&data, init));
            let chained = fold(sum(&data[cut..], sum(&data[..cut], init)));
            prop_assert_eq!(whole, chained);
        }

        #[test]
        fn checksum_verifies(mut data in proptest::collection::vec(any::<u8>(), 2..500)) {
            // Store the checksum of the data in its first word: the whole then sums to ffff.
            if data.len() % 2 == 1 {
                data.push(0);
            }
            data[0] = 0;
            data[1] = 0;
            let c = checksum(&data);
            data[..2].copy_from_slice(&c.to_be_bytes());
            prop_assert_eq!(checksum(&data), 0);
        }
    }
}
