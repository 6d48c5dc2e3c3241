//! Unpadded base64url (RFC 4648 §5), canonical spellings only.
//!
//! The Python reference decodes with `base64.urlsafe_b64decode` (which skips
//! stray characters and ignores the spare bits of the last character) and
//! then insists that re-encoding gives back exactly what was presented. The
//! set of strings that survives that round trip is exactly what
//! [`decode_canonical`] accepts: only alphabet characters, no padding, a
//! length that is not 1 more than a multiple of 4, and zero spare bits in the
//! last character. Checking that directly avoids the second encoding.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const INVALID: u8 = 0xFF;

const fn build_decode_table() -> [u8; 256] {
    let mut table = [INVALID; 256];
    let mut index = 0;
    while index < 64 {
        table[ALPHABET[index] as usize] = index as u8;
        index += 1;
    }
    table
}

static DECODE: [u8; 256] = build_decode_table();

/// How many bytes a canonical encoding of `chars` characters decodes to
/// (None when no canonical encoding has that length).
pub fn decoded_len(chars: usize) -> Option<usize> {
    match chars % 4 {
        1 => None,
        0 => Some(chars / 4 * 3),
        rest => Some(chars / 4 * 3 + rest - 1),
    }
}

/// Decode `text` into `out`, returning the number of bytes written, or None
/// if `text` is not the canonical unpadded base64url spelling of some bytes
/// (or `out` is too small for it).
pub fn decode_canonical(text: &[u8], out: &mut [u8]) -> Option<usize> {
    let length = decoded_len(text.len())?;
    if length > out.len() {
        return None;
    }
    let mut written = 0;
    let mut chunks = text.chunks_exact(4);
    for chunk in &mut chunks {
        let mut group: u32 = 0;
        for &character in chunk {
            let value = DECODE[character as usize];
            if value == INVALID {
                return None;
            }
            group = (group << 6) | u32::from(value);
        }
        out[written] = (group >> 16) as u8;
        out[written + 1] = (group >> 8) as u8;
        out[written + 2] = group as u8;
        written += 3;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut group: u32 = 0;
        for &character in rest {
            let value = DECODE[character as usize];
            if value == INVALID {
                return None;
            }
            group = (group << 6) | u32::from(value);
        }
        // 2 characters carry 12 bits for 1 byte (4 spare), 3 carry 18 for 2 (2 spare).
        let spare_bits = rest.len() * 6 % 8;
        if group & ((1 << spare_bits) - 1) != 0 {
            return None; // not the canonical spelling
        }
        group >>= spare_bits;
        for index in (0..rest.len() - 1).rev() {
            out[written] = (group >> (8 * index)) as u8;
            written += 1;
        }
    }
    debug_assert_eq!(written, length);
    Some(written)
}

/// The unpadded base64url spelling of `data`.
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity((data.len() * 4).div_ceil(3));
    encode_onto(&mut out, data, ALPHABET, false);
    out
}

/// The unpadded base64url spelling of `data`, written at the end of `out`.
pub fn encode_to(out: &mut String, data: &[u8]) {
    encode_onto(out, data, ALPHABET, false);
}

/// The standard base64 alphabet.
const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as Python's `base64.b64encode` writes it
/// (a tracking item's summary filter, `chalicelib/tracking/items.py`; a run
/// item's body in the run record, megabytes a run: three bytes at a time
/// into bytes, checked as text once).
pub fn encode_standard(data: &[u8]) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(data.len().div_ceil(3) * 4);
    let sextet = |group: u32, shift: u32| STANDARD[(group >> shift) as usize & 0x3F];
    let mut chunks = data.chunks_exact(3);
    for chunk in &mut chunks {
        let group = u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]);
        out.extend_from_slice(&[sextet(group, 18), sextet(group, 12), sextet(group, 6), sextet(group, 0)]);
    }
    match *chunks.remainder() {
        [] => {}
        [first] => {
            let group = u32::from(first) << 16;
            out.extend_from_slice(&[sextet(group, 18), sextet(group, 12), b'=', b'=']);
        }
        [first, second] => {
            let group = u32::from(first) << 16 | u32::from(second) << 8;
            out.extend_from_slice(&[sextet(group, 18), sextet(group, 12), sextet(group, 6), b'=']);
        }
        _ => unreachable!("chunks_exact(3) leaves at most two bytes"),
    }
    String::from_utf8(out).expect("the alphabet is ASCII")
}

fn encode_onto(out: &mut String, data: &[u8], alphabet: &[u8; 64], pad: bool) {
    for chunk in data.chunks(3) {
        let group = chunk.iter().enumerate().fold(0u32, |group, (index, &byte)| {
            group | (u32::from(byte) << (16 - 8 * index))
        });
        let mut quad = [b'='; 4];
        for (index, slot) in quad.iter_mut().enumerate().take(chunk.len() + 1) {
            *slot = alphabet[(group >> (18 - 6 * index)) as usize & 0x3F];
        }
        let written = if pad { 4 } else { chunk.len() + 1 };
        out.push_str(std::str::from_utf8(&quad[..written]).expect("the alphabets are ASCII"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Option<Vec<u8>> {
        let mut out = [0u8; 64];
        decode_canonical(text.as_bytes(), &mut out).map(|length| out[..length].to_vec())
    }

    #[test]
    fn round_trips_every_length() {
        for length in 0..40usize {
            let data: Vec<u8> = (0..length).map(|index| (index * 37 + 11) as u8).collect();
            let text = encode(&data);
            assert!(!text.contains('='));
            assert_eq!(decode(&text), Some(data), "{text}");
        }
    }

    #[test]
    fn known_vectors() {
        // RFC 4648 §10, unpadded, url alphabet.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(encode(&[0xFB, 0xFF]), "-_8");
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(encode_standard(plain.as_bytes()), encoded);
        }
        assert_eq!(encode_standard(&[0xFB, 0xFF]), "+/8=");
        // Every remainder and every byte value, as the generic writer spells them.
        for length in (0..70usize).chain([256, 257, 258]) {
            let data: Vec<u8> = (0..length).map(|index| (index * 101 + 7 * length) as u8).collect();
            let mut generic = String::new();
            encode_onto(&mut generic, &data, STANDARD, true);
            assert_eq!(encode_standard(&data), generic, "{length}");
        }
    }

    #[test]
    fn refuses_non_canonical_spellings() {
        assert_eq!(decode("Zh"), None); // spare bits set ("Zg" is canonical)
        assert_eq!(decode("Zm9"), None); // ("Zm8" is canonical)
        assert_eq!(decode("Zm9vY"), None); // 1 more than a multiple of 4
        assert_eq!(decode("Zg=="), None); // padding
        assert_eq!(decode("Zm+v"), None); // standard alphabet
        assert_eq!(decode("Zm/v"), None);
        assert_eq!(decode("Zm v"), None);
        assert_eq!(decode("Zm9v\n"), None);
    }

    #[test]
    fn refuses_output_that_does_not_fit() {
        let mut out = [0u8; 2];
        assert_eq!(decode_canonical(b"Zm9v", &mut out), None);
    }
}
