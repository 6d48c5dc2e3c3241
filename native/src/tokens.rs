//! Signed tracking tokens: the twin of `chalicelib/tokens.py`.
//!
//! Layout (then unpadded base64url, at most 48 characters):
//!
//! ```text
//! kind (1) | key id (1) | delivery id (8) | log id (varint) | url id (varint) | tag (10)
//! ```
//!
//! The tag is HMAC-SHA256 over `"sendtrail-token-v1\0" + payload + "\0" + params`,
//! truncated to 80 bits. Every check happens in the same order as in Python,
//! so a rejected token gets the same reason: `malformed` for anything that is
//! not a well-formed token of a known kind (including non-canonical base64url
//! and non-minimal varints), `unknown_key` when its key id is not in the ring,
//! `bad_signature` when the tag does not match (or the params are not ASCII).
//!
//! Verification keeps, per key, the SHA-256 states after the key's inner and
//! outer pad blocks ([`KeyedHmac`]), so a token costs the compression of its
//! message and of one outer block (in hardware where the CPU has SHA
//! instructions): what the ingestion loop needs when it re-verifies every
//! record of a log.

use std::fmt;

use sha2::block_api::compress256;
use sha2::{Digest, Sha256};

use crate::base64url;

pub const KIND_CLICK: u8 = 1;
pub const KIND_OPEN: u8 = 2;
pub const KIND_OPTOUT: u8 = 3;
pub const KIND_MIRROR: u8 = 6;
pub const KINDS: [u8; 4] = [KIND_CLICK, KIND_OPEN, KIND_OPTOUT, KIND_MIRROR];

pub const TAG_BYTES: usize = 10;
pub const DELIVERY_ID_BYTES: usize = 8;
pub const MAX_TOKEN_CHARS: usize = 48;
const DOMAIN: &[u8] = b"sendtrail-token-v1\x00";
/// kind, key id, delivery id, and the shortest log id and url id.
const MIN_RAW_BYTES: usize = 2 + DELIVERY_ID_BYTES + 2 + TAG_BYTES;
/// 48 characters of base64url.
const MAX_RAW_BYTES: usize = MAX_TOKEN_CHARS / 4 * 3;
/// `_read_varint` reads at most 5 bytes (35 bits).
const MAX_VARINT_BYTES: usize = 5;

/// HMAC-SHA256 (RFC 2104) keyed once: the SHA-256 states after the key's
/// inner and outer pad blocks.
#[derive(Clone)]
pub struct KeyedHmac {
    inner: [u32; 8],
    outer: [u32; 8],
}

const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

impl KeyedHmac {
    pub fn new(secret: &[u8]) -> Self {
        let mut block = [0u8; 64];
        if secret.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(secret));
        } else {
            block[..secret.len()].copy_from_slice(secret);
        }
        let (mut inner, mut outer) = (SHA256_IV, SHA256_IV);
        compress256(&mut inner, &[block.map(|byte| byte ^ 0x36)]);
        compress256(&mut outer, &[block.map(|byte| byte ^ 0x5c)]);
        KeyedHmac { inner, outer }
    }

    /// The HMAC of `DOMAIN + payload + "\0" + params`.
    pub fn tag(&self, payload: &[u8], params: &[u8]) -> [u8; 32] {
        let length = DOMAIN.len() + payload.len() + 1 + params.len();
        let padded = (length + 9).div_ceil(64) * 64;
        let mut small = [0u8; 128];
        let mut large = Vec::new();
        let message: &mut [u8] = if padded <= small.len() {
            &mut small[..padded]
        } else {
            large.resize(padded, 0);
            &mut large
        };
        let mut at = 0;
        for part in [DOMAIN, payload, b"\x00", params] {
            message[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        message[at] = 0x80;
        let bits = ((64 + length) as u64) * 8; // the inner pad block counts
        message[padded - 8..].copy_from_slice(&bits.to_be_bytes());
        let mut inner = self.inner;
        compress256(&mut inner, message.as_chunks::<64>().0);
        let mut block = [0u8; 64];
        for (bytes, word) in block.chunks_exact_mut(4).zip(inner) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        block[32] = 0x80;
        block[56..].copy_from_slice(&((64u64 + 32) * 8).to_be_bytes());
        let mut outer = self.outer;
        compress256(&mut outer, &[block]);
        let mut digest = [0u8; 32];
        for (bytes, word) in digest.chunks_exact_mut(4).zip(outer) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        digest
    }
}

/// Why a token was rejected; `as_str` is the Python reference's `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Malformed,
    UnknownKey,
    BadSignature,
}

impl Reason {
    pub const ALL: [Reason; 3] = [Reason::Malformed, Reason::UnknownKey, Reason::BadSignature];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::UnknownKey => "unknown_key",
            Reason::BadSignature => "bad_signature",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl std::error::Error for Reason {}

/// What a genuine token names (Python's `TokenClaims`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Claims {
    pub kind: u8,
    pub key_id: u8,
    pub delivery_id: [u8; DELIVERY_ID_BYTES],
    pub log_id: u64,
    pub url_id: u64,
}

impl Claims {
    /// The delivery id as Python spells it: 16 lower-case hex characters.
    pub fn delivery_id_hex(&self) -> String {
        hex_lower(&self.delivery_id)
    }

    pub fn kind_name(&self) -> &'static str {
        kind_name(self.kind).unwrap_or("unknown")
    }
}

pub fn kind_name(kind: u8) -> Option<&'static str> {
    match kind {
        KIND_CLICK => Some("click"),
        KIND_OPEN => Some("open"),
        KIND_OPTOUT => Some("optout"),
        KIND_MIRROR => Some("mirror"),
        _ => None,
    }
}

pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0F)] as char);
    }
    out
}

/// A token that passed every structural check (so only its key and tag are
/// left to check): the claims, and the signed payload and tag.
#[derive(Clone, Debug)]
pub struct ParsedToken {
    pub claims: Claims,
    /// The decoded token, kept as decoded (payload, then tag): copying it
    /// apart would read wide what the decoder wrote a byte at a time.
    raw: [u8; MAX_RAW_BYTES],
    payload_len: usize,
}

impl ParsedToken {
    pub fn payload(&self) -> &[u8] {
        &self.raw[..self.payload_len]
    }

    pub fn tag(&self) -> &[u8; TAG_BYTES] {
        self.raw[self.payload_len..self.payload_len + TAG_BYTES]
            .try_into()
            .expect("a tag follows the payload")
    }

    /// Check the tag with the HMAC keyed by the token's key. Non-ASCII
    /// params never verify, as in Python.
    pub fn check_signature(&self, keyed: &KeyedHmac, params: &str) -> Result<Claims, Reason> {
        if !params.is_ascii() {
            return Err(Reason::BadSignature);
        }
        let expected = keyed.tag(self.payload(), params.as_bytes());
        // Constant time, like hmac.compare_digest: every byte is compared.
        let difference = expected[..TAG_BYTES]
            .iter()
            .zip(self.tag())
            .fold(0u8, |difference, (a, b)| difference | (a ^ b));
        if difference != 0 {
            return Err(Reason::BadSignature);
        }
        Ok(self.claims)
    }
}

/// The HMAC keyed with `secret` (any length, as HMAC allows).
pub fn keyed_hmac(secret: &[u8]) -> KeyedHmac {
    KeyedHmac::new(secret)
}

/// The signing key ring: key id -> keyed HMAC state.
#[derive(Clone, Default)]
pub struct Keys {
    slots: Vec<Option<KeyedHmac>>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.is_some())
            .map(|(id, _)| id)
            .collect();
        formatter.debug_struct("Keys").field("ids", &ids).finish() // never the secrets
    }
}

impl Keys {
    pub fn new() -> Self {
        Keys { slots: Vec::new() }
    }

    pub fn with(mut self, key_id: u8, secret: &[u8]) -> Self {
        self.insert(key_id, secret);
        self
    }

    pub fn insert(&mut self, key_id: u8, secret: &[u8]) {
        let index = usize::from(key_id);
        if self.slots.len() <= index {
            self.slots.resize(index + 1, None);
        }
        self.slots[index] = Some(keyed_hmac(secret));
    }

    pub fn get(&self, key_id: u8) -> Option<&KeyedHmac> {
        self.slots.get(usize::from(key_id)).and_then(Option::as_ref)
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }
}

/// Python's `_read_varint`: at most 5 bytes, the last one without the
/// continuation bit, and no trailing zero byte (one id, one spelling).
fn read_varint(data: &[u8], offset: usize) -> Result<(u64, usize), Reason> {
    let mut value: u64 = 0;
    let end = data.len().min(offset + MAX_VARINT_BYTES);
    for (index, &byte) in data.iter().enumerate().take(end).skip(offset) {
        value |= u64::from(byte & 0x7F) << (7 * (index - offset));
        if byte & 0x80 == 0 {
            if index > offset && byte == 0 {
                return Err(Reason::Malformed);
            }
            return Ok((value, index + 1));
        }
    }
    Err(Reason::Malformed)
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Every check that needs no key: what Python rejects as `malformed`.
pub fn parse(token: &str) -> Result<ParsedToken, Reason> {
    let text = token.as_bytes();
    // Python: `not token or len(token) > 48 or not token.isascii()`. For an
    // ASCII string, bytes and code points are the same count.
    if text.is_empty() || !token.is_ascii() || text.len() > MAX_TOKEN_CHARS {
        return Err(Reason::Malformed);
    }
    let mut raw = [0u8; MAX_RAW_BYTES];
    let length = base64url::decode_canonical(text, &mut raw).ok_or(Reason::Malformed)?;
    if length < MIN_RAW_BYTES {
        return Err(Reason::Malformed);
    }
    let payload_len = length - TAG_BYTES;
    let payload_bytes = &raw[..payload_len];
    let (kind, key_id) = (payload_bytes[0], payload_bytes[1]);
    let offset = 2 + DELIVERY_ID_BYTES;
    let (log_id, offset) = read_varint(payload_bytes, offset)?;
    let (url_id, offset) = read_varint(payload_bytes, offset)?;
    if offset != payload_len || kind_name(kind).is_none() {
        return Err(Reason::Malformed);
    }
    let mut delivery_id = [0u8; DELIVERY_ID_BYTES];
    delivery_id.copy_from_slice(&payload_bytes[2..2 + DELIVERY_ID_BYTES]);
    Ok(ParsedToken {
        claims: Claims {
            kind,
            key_id,
            delivery_id,
            log_id,
            url_id,
        },
        raw,
        payload_len,
    })
}

/// The claims of a genuine token, or why it is not one (Python's `verify`).
pub fn verify(token: &str, keys: &Keys, params: &str) -> Result<Claims, Reason> {
    let parsed = parse(token)?;
    let keyed = keys.get(parsed.claims.key_id).ok_or(Reason::UnknownKey)?;
    parsed.check_signature(keyed, params)
}

/// Why `mint` refused its arguments (Python raises ValueError or UnicodeEncodeError).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MintError {
    UnknownKind,
    NonAsciiParams,
}

/// A token for one tracked thing (Python's `mint`). Used by the tests, the
/// fuzz targets and the benchmark's input generator; production mints in Python.
pub fn mint(
    kind: u8,
    key_id: u8,
    secret: &[u8],
    delivery_id: [u8; DELIVERY_ID_BYTES],
    log_id: u64,
    url_id: u64,
    params: &str,
) -> Result<String, MintError> {
    if kind_name(kind).is_none() {
        return Err(MintError::UnknownKind);
    }
    if !params.is_ascii() {
        return Err(MintError::NonAsciiParams);
    }
    let mut raw = Vec::with_capacity(MAX_RAW_BYTES + 20);
    raw.extend_from_slice(&[kind, key_id]);
    raw.extend_from_slice(&delivery_id);
    write_varint(&mut raw, log_id);
    write_varint(&mut raw, url_id);
    let digest = keyed_hmac(secret).tag(&raw, params.as_bytes());
    raw.extend_from_slice(&digest[..TAG_BYTES]);
    Ok(base64url::encode(&raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_1: &[u8] = &[b'k'; 32];
    const KEY_2: &[u8] = &[b'q'; 32];
    const DELIVERY: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    const URL_ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    fn keys() -> Keys {
        Keys::new().with(1, KEY_1)
    }

    fn click(log_id: u64, url_id: u64, params: &str) -> String {
        mint(KIND_CLICK, 1, KEY_1, DELIVERY, log_id, url_id, params).unwrap()
    }

    fn raw_of(token: &str) -> Vec<u8> {
        let mut out = [0u8; 64];
        let length = base64url::decode_canonical(token.as_bytes(), &mut out).unwrap();
        out[..length].to_vec()
    }

    /// Re-sign a hand-built payload, so structural checks can be reached past the tag.
    fn signed(payload: &[u8], secret: &[u8], params: &str) -> String {
        let mut raw = payload.to_vec();
        raw.extend_from_slice(&keyed_hmac(secret).tag(payload, params.as_bytes())[..TAG_BYTES]);
        base64url::encode(&raw)
    }

    /// The keyed shortcut is HMAC-SHA256 exactly (checked against the hmac
    /// crate) for every key length class and message lengths around the
    /// block boundaries.
    #[test]
    fn keyed_hmac_is_hmac_sha256() {
        use hmac::{Hmac, KeyInit, Mac};
        for secret in [&b""[..], b"k", &[7u8; 63], &[7u8; 64], &[7u8; 65], &[9u8; 200]] {
            let keyed = keyed_hmac(secret);
            for length in (0..140).chain([200, 1000, 4096]) {
                let params: Vec<u8> = (0..length).map(|index| b'a' + (index % 26) as u8).collect();
                let payload = &DELIVERY[..(length % 9)];
                let mut reference = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
                reference.update(DOMAIN);
                reference.update(payload);
                reference.update(b"\x00");
                reference.update(&params);
                assert_eq!(keyed.tag(payload, &params)[..], reference.finalize().into_bytes()[..]);
            }
        }
    }

    /// A vector minted by chalicelib/tokens.py: key b"k" * 32, delivery
    /// 0123456789abcdef, log 42, url 5, click, no params. Pins the layout,
    /// the domain string and the tag to the Python reference byte for byte.
    #[test]
    fn matches_a_token_minted_by_the_python_reference() {
        let python = "AQEBI0VniavN7yoF6a4tRqO6fCfk_g";
        assert_eq!(click(42, 5, ""), python);
        let claims = verify(python, &keys(), "").unwrap();
        assert_eq!(
            claims,
            Claims {
                kind: KIND_CLICK,
                key_id: 1,
                delivery_id: DELIVERY,
                log_id: 42,
                url_id: 5
            }
        );
        assert_eq!(claims.delivery_id_hex(), "0123456789abcdef");
        // The same ids with signed params (p = {"member_id":"m-42"}).
        let with_params = "AQEBI0VniavN7yoF-DX1XG5SWQLHBA";
        assert_eq!(click(42, 5, "eyJtZW1iZXJfaWQiOiJtLTQyIn0"), with_params);
        assert_eq!(verify(with_params, &keys(), "").unwrap_err(), Reason::BadSignature);
    }

    #[test]
    fn round_trip_for_every_kind_and_edge_ids() {
        for kind in KINDS {
            for (log_id, url_id) in [
                (0, 0),
                (1, 1),
                (127, 128),
                (16_383, 16_384),
                ((1 << 32) - 1, (1 << 21) - 1),
                ((1 << 35) - 1, 4),
            ] {
                let token = mint(kind, 7, KEY_2, DELIVERY, log_id, url_id, "").unwrap();
                assert!(token.len() <= MAX_TOKEN_CHARS);
                let claims = verify(&token, &Keys::new().with(7, KEY_2), "").unwrap();
                assert_eq!(
                    (claims.kind, claims.key_id, claims.log_id, claims.url_id),
                    (kind, 7, log_id, url_id)
                );
            }
        }
    }

    #[test]
    fn click_token_with_the_largest_ids_fits_in_40_characters() {
        assert!(click((1 << 32) - 1, (1 << 21) - 1, "").len() <= 40);
    }

    #[test]
    fn ids_past_35_bits_do_not_verify() {
        // Python mints them (its varint is unbounded) but reads at most 5 bytes.
        let token = click(1 << 35, 4, "");
        assert_eq!(verify(&token, &keys(), ""), Err(Reason::Malformed));
    }

    #[test]
    fn every_single_byte_tampering_is_rejected() {
        let token = click(42, 5, "");
        let raw = raw_of(&token);
        for position in 0..raw.len() {
            for value in 0..=255u8 {
                if value == raw[position] {
                    continue;
                }
                let mut forged = raw.clone();
                forged[position] = value;
                assert!(
                    verify(&base64url::encode(&forged), &keys(), "").is_err(),
                    "{position} {value}"
                );
            }
        }
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let token = click(42, 5, "");
        for position in 0..token.len() {
            for character in URL_ALPHABET.chars().chain("=.~+/ é".chars()) {
                if token[position..].starts_with(character) {
                    continue;
                }
                let forged = format!("{}{}{}", &token[..position], character, &token[position + 1..]);
                assert!(verify(&forged, &keys(), "").is_err(), "{forged}");
            }
        }
    }

    #[test]
    fn garbage_is_malformed() {
        let long = "a".repeat(49);
        let accented = "é".repeat(10);
        for forged in ["", "x", long.as_str(), accented.as_str(), "abc=", "YWJj"] {
            assert_eq!(verify(forged, &keys(), "").unwrap_err(), Reason::Malformed, "{forged}");
        }
    }

    #[test]
    fn padding_and_stray_characters_do_not_verify() {
        let token = click(42, 5, "");
        for variant in [
            format!("{token}="),
            format!("{token}=="),
            format!("{}\n{}", &token[..5], &token[5..]),
            format!(" {token}"),
        ] {
            assert_eq!(
                verify(&variant, &keys(), "").unwrap_err(),
                Reason::Malformed,
                "{variant}"
            );
        }
    }

    #[test]
    fn signed_parameters_cannot_change() {
        let params = "eyJtZW1iZXJfaWQiOiJtLTQyIn0";
        let token = click(42, 5, params);
        assert_eq!(verify(&token, &keys(), params).unwrap().url_id, 5);
        for presented in ["", "eyJtZW1iZXJfaWQiOiJtLTQzIn0", "eyJtZW1iZXJfaWQiOiJtLTQyIn0A", "é"] {
            assert_eq!(
                verify(&token, &keys(), presented).unwrap_err(),
                Reason::BadSignature,
                "{presented}"
            );
        }
    }

    #[test]
    fn unknown_key_comes_before_non_ascii_params() {
        let token = mint(KIND_OPEN, 9, KEY_1, DELIVERY, 1, 1, "").unwrap();
        assert_eq!(verify(&token, &keys(), "é").unwrap_err(), Reason::UnknownKey);
        assert_eq!(
            verify(&token, &Keys::new().with(9, KEY_1), "é").unwrap_err(),
            Reason::BadSignature
        );
    }

    #[test]
    fn unknown_key_and_wrong_secret() {
        let token = mint(KIND_CLICK, 7, KEY_1, DELIVERY, 42, 5, "").unwrap();
        assert_eq!(verify(&token, &keys(), "").unwrap_err(), Reason::UnknownKey);
        assert_eq!(
            verify(&token, &Keys::new().with(7, KEY_2), "").unwrap_err(),
            Reason::BadSignature
        );
        assert_eq!(verify(&token, &Keys::new(), "").unwrap_err(), Reason::UnknownKey);
    }

    #[test]
    fn key_rotation_keeps_old_keys_verifying_until_removed() {
        let old = mint(KIND_OPEN, 1, KEY_1, DELIVERY, 1, 1, "").unwrap();
        let new = mint(KIND_OPEN, 2, KEY_2, DELIVERY, 1, 1, "").unwrap();
        let both = Keys::new().with(1, KEY_1).with(2, KEY_2);
        assert_eq!(verify(&old, &both, "").unwrap().key_id, 1);
        assert_eq!(verify(&new, &both, "").unwrap().key_id, 2);
        let rotated = Keys::new().with(2, KEY_2);
        assert_eq!(verify(&old, &rotated, "").unwrap_err(), Reason::UnknownKey);
    }

    #[test]
    fn empty_and_long_secrets_are_hmac_keys_like_any_other() {
        for secret in [&b""[..], &[0x5a; 200][..]] {
            let token = mint(KIND_MIRROR, 3, secret, DELIVERY, 5, 3, "").unwrap();
            assert!(verify(&token, &Keys::new().with(3, secret), "").is_ok());
        }
    }

    #[test]
    fn non_minimal_varints_are_malformed_even_when_signed() {
        let mut payload = vec![KIND_CLICK, 1];
        payload.extend_from_slice(&DELIVERY);
        let minimal = [payload.clone(), vec![42, 5]].concat();
        assert!(verify(&signed(&minimal, KEY_1, ""), &keys(), "").is_ok());
        // 42 spelled in two bytes, 5 spelled in two bytes, 0 spelled in two bytes.
        for ids in [vec![0xAA, 0x00, 5], vec![42, 0x85, 0x00], vec![0x80, 0x00, 5]] {
            let forged = [payload.clone(), ids.clone()].concat();
            assert_eq!(
                verify(&signed(&forged, KEY_1, ""), &keys(), "").unwrap_err(),
                Reason::Malformed,
                "{ids:?}"
            );
        }
    }

    #[test]
    fn varints_stop_at_five_bytes_and_at_the_tag() {
        let mut payload = vec![KIND_CLICK, 1];
        payload.extend_from_slice(&DELIVERY);
        let five = [payload.clone(), vec![0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 5]].concat();
        let claims = verify(&signed(&five, KEY_1, ""), &keys(), "").unwrap();
        assert_eq!(claims.log_id, (1 << 35) - 1);
        let six = [payload.clone(), vec![0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 5]].concat();
        assert_eq!(
            verify(&signed(&six, KEY_1, ""), &keys(), "").unwrap_err(),
            Reason::Malformed
        );
        // The url id's continuation bit may not run into the tag.
        let open_ended = [payload.clone(), vec![42, 0x85]].concat();
        assert_eq!(
            verify(&signed(&open_ended, KEY_1, ""), &keys(), "").unwrap_err(),
            Reason::Malformed
        );
        // Bytes left over between the url id and the tag.
        let trailing = [payload.clone(), vec![42, 5, 0]].concat();
        assert_eq!(
            verify(&signed(&trailing, KEY_1, ""), &keys(), "").unwrap_err(),
            Reason::Malformed
        );
    }

    #[test]
    fn unknown_kinds_are_malformed_even_when_signed() {
        for kind in [0u8, 4, 5, 7, 255] {
            let mut payload = vec![kind, 1];
            payload.extend_from_slice(&DELIVERY);
            payload.extend_from_slice(&[42, 5]);
            assert_eq!(
                verify(&signed(&payload, KEY_1, ""), &keys(), "").unwrap_err(),
                Reason::Malformed
            );
        }
        assert_eq!(mint(4, 1, KEY_1, DELIVERY, 1, 1, ""), Err(MintError::UnknownKind));
    }

    #[test]
    fn length_limits() {
        // 22 raw bytes is the shortest token (30 characters); 36 the longest (48).
        let mut payload = vec![KIND_CLICK, 1];
        payload.extend_from_slice(&DELIVERY);
        payload.push(42);
        let short = signed(&payload, KEY_1, ""); // 21 bytes: no url id
        assert_eq!(verify(&short, &keys(), "").unwrap_err(), Reason::Malformed);
        let longest = mint(KIND_CLICK, 1, KEY_1, DELIVERY, (1 << 35) - 1, (1 << 35) - 1, "").unwrap();
        assert_eq!(longest.len(), 40);
        let too_long = format!("{longest}AAAAAAAAA");
        assert_eq!(verify(&too_long, &keys(), "").unwrap_err(), Reason::Malformed);
    }

    #[test]
    fn mint_refuses_non_ascii_params() {
        assert_eq!(
            mint(KIND_CLICK, 1, KEY_1, DELIVERY, 1, 4, "é"),
            Err(MintError::NonAsciiParams)
        );
    }

    #[test]
    fn keys_debug_never_shows_secrets() {
        let shown = format!("{:?}", Keys::new().with(3, b"super-secret-key-material"));
        assert!(shown.contains('3') && !shown.contains("secret-key"));
    }
}
