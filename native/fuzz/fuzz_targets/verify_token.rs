//! Fuzz target: the token verifier.
//!
//! Two kinds of input, chosen by the first byte:
//!
//! - anything: the rest is a token (and, after a newline, params) as text.
//!   The verifier must not panic, must agree (claims or reason) with a
//!   second, deliberately naive implementation below that follows
//!   chalicelib/tokens.py line by line (decode, re-encode and compare; byte
//!   by byte varints), and anything it accepts must be exactly what `mint`
//!   makes for those claims.
//! - a genuine token, tampered: the rest chooses the claims of a token
//!   minted with a ring key, then one edit (replace, insert or delete a
//!   character, or change the params). The genuine token must verify; the
//!   edited one must not, unless the edit changed nothing.
//!
//! A crash is a panic (index out of bounds, overflow: debug assertions and
//! overflow checks are on) or a failed `assert!`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sendtrail_native::tokens::{self, Claims, Keys, Reason};

const RING: [(u8, &[u8]); 3] = [
    (1, b"fuzz-key-one-0123456789abcdef012"),
    (2, b"fuzz-key-two"),
    (200, b""),
];
const URL_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn ring() -> Keys {
    RING.iter()
        .fold(Keys::new(), |keys, (key_id, secret)| keys.with(*key_id, secret))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = ring();
    if mode & 1 == 0 {
        arbitrary_text(&keys, rest);
    } else {
        tampered_genuine(&keys, rest);
    }
});

fn arbitrary_text(keys: &Keys, rest: &[u8]) {
    let text = String::from_utf8_lossy(rest);
    let (token, params) = text.split_once('\n').unwrap_or((&text, ""));
    let verified = tokens::verify(token, keys, params);
    assert_eq!(
        verified,
        naive_verify(token, params),
        "token {token:?} params {params:?}"
    );
    if let Ok(claims) = verified {
        let secret = RING.iter().find(|(key_id, _)| *key_id == claims.key_id).unwrap().1;
        let minted = tokens::mint(
            claims.kind,
            claims.key_id,
            secret,
            claims.delivery_id,
            claims.log_id,
            claims.url_id,
            params,
        )
        .unwrap();
        assert_eq!(minted, token, "an accepted token is the one mint makes");
    }
}

fn tampered_genuine(keys: &Keys, rest: &[u8]) {
    if rest.len() < 24 {
        return;
    }
    let (fields, edit) = rest.split_at(24);
    let kind = tokens::KINDS[usize::from(fields[0]) % tokens::KINDS.len()];
    let (key_id, secret) = RING[usize::from(fields[1]) % RING.len()];
    let mut delivery_id = [0u8; 8];
    delivery_id.copy_from_slice(&fields[2..10]);
    let log_id = u64::from_le_bytes(fields[10..18].try_into().unwrap()) >> (29 + u32::from(fields[22] % 35));
    let url_id = u64::from(u32::from_le_bytes(fields[18..22].try_into().unwrap())) >> (fields[23] % 32);
    let params: String = edit
        .iter()
        .skip(3)
        .map(|&byte| char::from(byte & 0x7F))
        .filter(char::is_ascii_graphic)
        .take(64)
        .collect();
    let token = tokens::mint(kind, key_id, secret, delivery_id, log_id, url_id, &params).unwrap();
    let claims = tokens::verify(&token, keys, &params).expect("a genuine token verifies");
    assert_eq!(
        (claims.kind, claims.key_id, claims.log_id, claims.url_id),
        (kind, key_id, log_id, url_id)
    );

    let [operation, position, value, ..] = *edit else {
        return;
    };
    let mut forged = token.clone().into_bytes();
    let mut forged_params = params.clone();
    let at = usize::from(position) % (forged.len() + 1);
    match operation % 4 {
        0 if at < forged.len() => forged[at] = value,
        1 => forged.insert(at, value),
        2 if at < forged.len() => {
            forged.remove(at);
        }
        3 => forged_params.insert(usize::from(position) % (forged_params.len() + 1), char::from(value)),
        _ => return,
    }
    let forged = String::from_utf8_lossy(&forged).into_owned();
    let verified = tokens::verify(&forged, keys, &forged_params);
    assert_eq!(verified, naive_verify(&forged, &forged_params));
    if forged != token || forged_params != params {
        assert!(
            verified.is_err(),
            "edited token {forged:?} (params {forged_params:?}) verified"
        );
    }
}

// --- the naive twin, straight from chalicelib/tokens.py -------------------

fn naive_verify(token: &str, params: &str) -> Result<Claims, Reason> {
    if token.is_empty() || token.chars().count() > 48 || !token.is_ascii() {
        return Err(Reason::Malformed);
    }
    let raw = naive_decode(token).ok_or(Reason::Malformed)?;
    if naive_encode(&raw) != token {
        return Err(Reason::Malformed);
    }
    if raw.len() < 2 + 8 + 2 + 10 {
        return Err(Reason::Malformed);
    }
    let (payload, tag) = raw.split_at(raw.len() - 10);
    let (kind, key_id) = (payload[0], payload[1]);
    let (log_id, offset) = naive_read_varint(payload, 10)?;
    let (url_id, offset) = naive_read_varint(payload, offset)?;
    if offset != payload.len() || !tokens::KINDS.contains(&kind) {
        return Err(Reason::Malformed);
    }
    let Some((_, secret)) = RING.iter().find(|(id, _)| *id == key_id) else {
        return Err(Reason::UnknownKey);
    };
    if !params.is_ascii() {
        return Err(Reason::BadSignature);
    }
    let mut message = b"sendtrail-token-v1\x00".to_vec();
    message.extend_from_slice(payload);
    message.push(0);
    message.extend_from_slice(params.as_bytes());
    if naive_hmac_sha256(secret, &message)[..10] != *tag {
        return Err(Reason::BadSignature);
    }
    let mut delivery_id = [0u8; 8];
    delivery_id.copy_from_slice(&payload[2..10]);
    Ok(Claims {
        kind,
        key_id,
        delivery_id,
        log_id,
        url_id,
    })
}

/// Python's lenient decode: 6 bits per alphabet character, whole bytes only;
/// None where binascii raises (1 character more than a multiple of 4).
fn naive_decode(token: &str) -> Option<Vec<u8>> {
    let values: Vec<u32> = token
        .bytes()
        .filter_map(|character| {
            URL_ALPHABET
                .iter()
                .position(|&letter| letter == character)
                .map(|at| at as u32)
        })
        .collect();
    if values.len() % 4 == 1 {
        return None;
    }
    let mut bits: Vec<u8> = Vec::new();
    for value in values {
        for shift in (0..6).rev() {
            bits.push(((value >> shift) & 1) as u8);
        }
    }
    Some(
        bits.chunks_exact(8)
            .map(|byte| byte.iter().fold(0u8, |acc, &bit| (acc << 1) | bit))
            .collect(),
    )
}

fn naive_encode(raw: &[u8]) -> String {
    let mut bits: Vec<u8> = raw
        .iter()
        .flat_map(|&byte| (0..8).rev().map(move |shift| (byte >> shift) & 1))
        .collect();
    while !bits.len().is_multiple_of(6) {
        bits.push(0);
    }
    bits.chunks_exact(6)
        .map(|chunk| URL_ALPHABET[usize::from(chunk.iter().fold(0u8, |acc, &bit| (acc << 1) | bit))] as char)
        .collect()
}

fn naive_read_varint(data: &[u8], offset: usize) -> Result<(u64, usize), Reason> {
    let (mut value, mut shift) = (0u64, 0u32);
    let mut index = offset;
    while index < data.len().min(offset + 5) {
        let byte = data[index];
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            if index > offset && byte == 0 {
                return Err(Reason::Malformed);
            }
            return Ok((value, index + 1));
        }
        shift += 7;
        index += 1;
    }
    Err(Reason::Malformed)
}

/// HMAC-SHA256 (RFC 2104) over a from-the-spec SHA-256 (FIPS 180-4), so the
/// twin shares no cryptographic code with the verifier.
fn naive_hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&naive_sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block
        .iter()
        .map(|byte| byte ^ 0x36)
        .chain(message.iter().copied())
        .collect();
    let inner_digest = naive_sha256(&inner);
    let outer: Vec<u8> = block.iter().map(|byte| byte ^ 0x5c).chain(inner_digest).collect();
    naive_sha256(&outer)
}

fn naive_sha256(message: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut state: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ];
    let mut padded = message.to_vec();
    padded.push(0x80);
    while padded.len() % 64 != 56 {
        padded.push(0);
    }
    padded.extend_from_slice(&((message.len() as u64) * 8).to_be_bytes());
    for chunk in padded.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (index, word) in chunk.chunks_exact(4).enumerate() {
            w[index] = u32::from_be_bytes(word.try_into().unwrap());
        }
        for index in 16..64 {
            let s0 = w[index - 15].rotate_right(7) ^ w[index - 15].rotate_right(18) ^ (w[index - 15] >> 3);
            let s1 = w[index - 2].rotate_right(17) ^ w[index - 2].rotate_right(19) ^ (w[index - 2] >> 10);
            w[index] = w[index - 16]
                .wrapping_add(s0)
                .wrapping_add(w[index - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = state;
        for index in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let choice = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(choice)
                .wrapping_add(K[index])
                .wrapping_add(w[index]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let majority = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(majority);
            (h, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        for (slot, value) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *slot = slot.wrapping_add(value);
        }
    }
    let mut digest = [0u8; 32];
    for (index, word) in state.iter().enumerate() {
        digest[4 * index..4 * index + 4].copy_from_slice(&word.to_be_bytes());
    }
    digest
}
