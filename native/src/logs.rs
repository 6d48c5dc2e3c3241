//! One redirection-log object: verified, deduplicated hits and rejections by
//! reason. The twin of `parse_log` in `chalicelib/tracking/core.py`; the
//! contract is `docs/spec/tracking-core.md` (with the shared test vectors of
//! `tests/vectors/`), and this module follows it step by step.
//!
//! The object is streamed: gzip output ([`crate::gzip`]) is cut into lines as
//! it comes and each line is judged at once, so the text is never held whole.
//! Only results are kept (hits in a compact form, rejected lines' bytes), and
//! they are dropped if the object turns out to be `bad_gzip` or too large.
//!
//! Verification is `chalicelib.tokens.verify`'s ([`crate::tokens`]), for every
//! record: with the keys' HMAC states prepared once and SHA-256 in hardware
//! (SHA-NI, ARMv8 SHA) it costs less than remembering answers would (a cache
//! of the distinct (token, p) pairs was measured slower: its lookups miss the
//! CPU caches). Repeated hit ids are found once at the end, part by part (see
//! `drop_repeated_hit_ids`), rather than by a hash set probed per line.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use memchr::{memchr, memchr_iter};

use crate::gzip::{self, Ending};
use crate::json::{self, Value};
use crate::tokens::{self, Claims, Keys};

pub const GZIP_MAGIC: [u8; 2] = [0x1F, 0x8B];
pub const MAX_OBJECT_BYTES: usize = 256 * 1024 * 1024;
pub const MAX_LINE_BYTES: usize = 16 * 1024;
pub const MAX_UA_BYTES: usize = 512;
pub const MAX_IP_BYTES: usize = 64;
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
pub const FORMAT_VERSION: u64 = 1;

/// Why a line (or the whole object) was rejected, in the reference's REASONS order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    ObjectTooLarge,
    BadGzip,
    LineTooLong,
    NotUtf8,
    NotJson,
    NotObject,
    BadVersion,
    BadField,
    TokenMalformed,
    TokenUnknownKey,
    TokenBadSignature,
    TokenKindMismatch,
    TokenClaimsMismatch,
}

impl Reason {
    pub const ALL: [Reason; 13] = [
        Reason::ObjectTooLarge,
        Reason::BadGzip,
        Reason::LineTooLong,
        Reason::NotUtf8,
        Reason::NotJson,
        Reason::NotObject,
        Reason::BadVersion,
        Reason::BadField,
        Reason::TokenMalformed,
        Reason::TokenUnknownKey,
        Reason::TokenBadSignature,
        Reason::TokenKindMismatch,
        Reason::TokenClaimsMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ObjectTooLarge => "object_too_large",
            Reason::BadGzip => "bad_gzip",
            Reason::LineTooLong => "line_too_long",
            Reason::NotUtf8 => "not_utf8",
            Reason::NotJson => "not_json",
            Reason::NotObject => "not_object",
            Reason::BadVersion => "bad_version",
            Reason::BadField => "bad_field",
            Reason::TokenMalformed => "token_malformed",
            Reason::TokenUnknownKey => "token_unknown_key",
            Reason::TokenBadSignature => "token_bad_signature",
            Reason::TokenKindMismatch => "token_kind_mismatch",
            Reason::TokenClaimsMismatch => "token_claims_mismatch",
        }
    }

    fn of_token(reason: tokens::Reason) -> Reason {
        match reason {
            tokens::Reason::Malformed => Reason::TokenMalformed,
            tokens::Reason::UnknownKey => Reason::TokenUnknownKey,
            tokens::Reason::BadSignature => Reason::TokenBadSignature,
        }
    }
}

/// A record's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Click,
    Open,
    Optout,
    Mirror,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Click, Kind::Open, Kind::Optout, Kind::Mirror];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Click => "click",
            Kind::Open => "open",
            Kind::Optout => "optout",
            Kind::Mirror => "mirror",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The reference's RECORD_KINDS_BY_TOKEN_KIND.
    fn produced_by(self, token_kind: u8) -> bool {
        match token_kind {
            tokens::KIND_CLICK => matches!(self, Kind::Click | Kind::Optout | Kind::Mirror),
            tokens::KIND_OPEN => self == Kind::Open,
            tokens::KIND_OPTOUT => self == Kind::Optout,
            tokens::KIND_MIRROR => self == Kind::Mirror,
            _ => false,
        }
    }
}

/// What a request declared it was fetched for (the record's optional
/// `purpose`): the reference's PURPOSES, or nothing declared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Purpose {
    #[default]
    Undeclared,
    Prefetch,
    Prerender,
    Preview,
}

impl Purpose {
    pub const DECLARED: [Purpose; 3] = [Purpose::Prefetch, Purpose::Prerender, Purpose::Preview];

    /// The record's value ("" when undeclared: the reference's `Hit.purpose`).
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Undeclared => "",
            Purpose::Prefetch => "prefetch",
            Purpose::Prerender => "prerender",
            Purpose::Preview => "preview",
        }
    }

    /// A record's `purpose` value: one of the declared ones, or None (a bad field).
    pub fn parse(name: &str) -> Option<Purpose> {
        Purpose::DECLARED.into_iter().find(|purpose| purpose.as_str() == name)
    }
}

/// A verified hit, compactly: hex ids as numbers (they are validated lower-case
/// hex of fixed length, so this is lossless and keeps their order), the user
/// agent interned, the IP in an arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub hit_id: u128,
    pub ts: u64,
    pub delivery_id: u64,
    pub log_id: u64,
    pub url_id: u64,
    pub ua: u32,
    ip_start: u32,
    ip_len: u8,
    pub kind: Kind,
    pub purpose: Purpose,
}

/// A rejected line: its number, reason, bad field (bad_field only) and bytes (CR removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub line: u64,
    pub reason: Reason,
    pub field: Option<&'static str>,
    pub data: Vec<u8>,
}

/// Everything `parse_log` says about one object.
#[derive(Debug, Default)]
pub struct ParsedLog {
    pub lines: u64,
    pub hits: Vec<Hit>,
    pub duplicates: u64,
    /// Rejected lines, in line order (empty when `object` is set).
    pub rejections: Vec<Rejection>,
    /// The object-level rejection (`bad_gzip`, `object_too_large`), if any:
    /// then there are no lines, and the rejection's data is the object itself.
    pub object: Option<Reason>,
    uas: Vec<Box<str>>,
    ips: Vec<u8>,
}

impl ParsedLog {
    pub fn ua(&self, hit: &Hit) -> &str {
        &self.uas[hit.ua as usize]
    }

    /// The distinct user agents; `Hit::ua` indexes this.
    pub fn user_agents(&self) -> &[Box<str>] {
        &self.uas
    }

    pub fn ip(&self, hit: &Hit) -> &str {
        let start = hit.ip_start as usize;
        std::str::from_utf8(&self.ips[start..start + usize::from(hit.ip_len)]).expect("IPs are stored from str")
    }

    /// Where `ip_bytes` finds a hit's IP: (start, length) in [`ParsedLog::ip_at`].
    pub fn ip_span(hit: &Hit) -> (u32, u8) {
        (hit.ip_start, hit.ip_len)
    }

    pub fn ip_at(&self, (start, length): (u32, u8)) -> &[u8] {
        &self.ips[start as usize..start as usize + usize::from(length)]
    }

    pub fn ip_bytes(&self, hit: &Hit) -> &[u8] {
        let start = hit.ip_start as usize;
        &self.ips[start..start + usize::from(hit.ip_len)]
    }

    /// {reason: count} in REASONS order, reasons with a count only.
    pub fn rejected(&self) -> Vec<(Reason, u64)> {
        if let Some(reason) = self.object {
            return vec![(reason, 1)];
        }
        let mut counts = [0u64; Reason::ALL.len()];
        for rejection in &self.rejections {
            counts[rejection.reason as usize] += 1;
        }
        Reason::ALL
            .into_iter()
            .zip(counts)
            .filter(|(_, count)| *count > 0)
            .collect()
    }
}

pub fn hex32(value: u128) -> String {
    format!("{value:032x}")
}

pub fn hex16(value: u64) -> String {
    format!("{value:016x}")
}

/// Limits the reference reads from module constants and the interpreter;
/// parameters so tests can move them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_object_bytes: usize,
    /// Python's `sys.get_int_max_str_digits()` (0: no limit).
    pub max_int_digits: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_object_bytes: MAX_OBJECT_BYTES,
            max_int_digits: json::DEFAULT_MAX_INT_DIGITS,
        }
    }
}

/// The reference's `parse_log(data, keys)`.
pub fn parse_log(data: &[u8], keys: &Keys, limits: Limits) -> ParsedLog {
    let mut judge = Judge::new(keys, limits.max_int_digits);
    judge.reserve(data, limits.max_object_bytes);
    let mut lines = Lines::default();
    if data.starts_with(&GZIP_MAGIC) {
        let mut decoded = 0usize;
        let ending = gzip::decode(data, limits.max_object_bytes, |chunk| {
            decoded = decoded.saturating_add(chunk.len());
            if decoded <= limits.max_object_bytes {
                lines.feed(chunk, &mut |number, line| judge.line(number, line));
            }
        });
        match ending {
            Ending::Complete => lines.finish(&mut |number, line| judge.line(number, line)),
            Ending::TooLarge => return rejected_object(Reason::ObjectTooLarge),
            Ending::Bad => return rejected_object(Reason::BadGzip),
        }
    } else if data.len() > limits.max_object_bytes {
        return rejected_object(Reason::ObjectTooLarge);
    } else {
        lines.feed(data, &mut |number, line| judge.line(number, line));
        lines.finish(&mut |number, line| judge.line(number, line));
    }
    let mut out = judge.out;
    drop_repeated_hit_ids(&mut out);
    out
}

/// A hit whose hit id an earlier hit of the object has is a duplicate: not
/// kept, counted. Found without probing a big table per hit: (hit id,
/// position) pairs are spread into small parts by the id's low bits (the
/// random part of a hit id; any bits would give the same answer), and each
/// part, small enough to stay in the CPU's caches, is sorted.
fn drop_repeated_hit_ids(out: &mut ParsedLog) {
    let count = out.hits.len();
    if count < 2 {
        return;
    }
    let bits = (count / 256).max(1).next_power_of_two().trailing_zeros().min(16);
    let mask = (1usize << bits) - 1;
    let part_of = |hit_id: u128| (hit_id as usize) & mask;
    let mut starts = vec![0usize; mask + 2];
    for hit in &out.hits {
        starts[part_of(hit.hit_id) + 1] += 1;
    }
    for part in 1..starts.len() {
        starts[part] += starts[part - 1];
    }
    let mut next = starts.clone();
    // The id as (high, low) words: the same order as the u128, in 24 bytes a
    // pair instead of 32 (a u128 is 16-byte aligned): less to write and fault in.
    let mut pairs = vec![(0u64, 0u64, 0u32); count];
    for (position, hit) in out.hits.iter().enumerate() {
        let slot = &mut next[part_of(hit.hit_id)];
        pairs[*slot] = ((hit.hit_id >> 64) as u64, hit.hit_id as u64, position as u32);
        *slot += 1;
    }
    let mut repeated = vec![false; count];
    let mut found = 0;
    for part in starts.windows(2) {
        let pairs = &mut pairs[part[0]..part[1]];
        pairs.sort_unstable(); // equal ids by position
        for pair in pairs.windows(2) {
            if (pair[0].0, pair[0].1) == (pair[1].0, pair[1].1) {
                repeated[pair[1].2 as usize] = true; // a later line than the first with this id
                found += 1;
            }
        }
    }
    if found > 0 {
        let mut position = 0;
        out.hits.retain(|_| {
            position += 1;
            !repeated[position - 1]
        });
        out.duplicates += found;
    }
}

fn rejected_object(reason: Reason) -> ParsedLog {
    ParsedLog {
        object: Some(reason),
        ..ParsedLog::default()
    }
}

/// Cuts a stream into LF-separated pieces, numbered from 1; a final piece
/// without LF is a line too unless it is empty.
#[derive(Default)]
struct Lines {
    carry: Vec<u8>,
    number: u64,
}

impl Lines {
    fn feed(&mut self, mut chunk: &[u8], each: &mut impl FnMut(u64, &[u8])) {
        if !self.carry.is_empty() {
            let Some(end) = memchr(b'\n', chunk) else {
                self.carry.extend_from_slice(chunk);
                return;
            };
            self.carry.extend_from_slice(&chunk[..end]);
            self.number += 1;
            each(self.number, &self.carry);
            self.carry.clear();
            if self.carry.capacity() > 4 * MAX_LINE_BYTES {
                self.carry = Vec::new(); // a very long line: do not keep its buffer
            }
            chunk = &chunk[end + 1..];
        }
        let mut start = 0;
        for end in memchr_iter(b'\n', chunk) {
            self.number += 1;
            each(self.number, &chunk[start..end]);
            start = end + 1;
        }
        self.carry.extend_from_slice(&chunk[start..]);
    }

    fn finish(&mut self, each: &mut impl FnMut(u64, &[u8])) {
        if !self.carry.is_empty() {
            self.number += 1;
            each(self.number, &self.carry);
            self.carry.clear();
        }
    }
}

type Rejected = (Reason, Option<&'static str>);

struct Judge<'k> {
    keys: &'k Keys,
    max_int_digits: usize,
    ua_ids: HashMap<Box<str>, u32, RandomState>,
    out: ParsedLog,
}

/// The byte-by-byte check [`hex_number`] is tested against.
#[cfg(test)]
fn is_hex(value: &str, length: usize) -> bool {
    value.len() == length && value.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// The number `value` spells when it is `length` lower-case hex digits
/// (`length` a multiple of 8, at most 32), or None: the check and the
/// reading in one pass, eight digits at a time.
#[inline(always)]
pub(crate) fn hex_number(value: &str, length: usize) -> Option<u128> {
    debug_assert!(length.is_multiple_of(8) && length <= 32);
    let bytes = value.as_bytes();
    if bytes.len() != length {
        return None;
    }
    bytes.chunks_exact(8).try_fold(0u128, |number, chunk| {
        let digits = hex8(chunk.try_into().expect("8 bytes"))?;
        Some((number << 32) | u128::from(digits))
    })
}

/// Eight lower-case hex digits (the first the most significant) as a
/// number, or None when a byte is not one, all eight at once in a u64.
#[inline(always)]
fn hex8(chunk: [u8; 8]) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = ONES * 0x80;
    let word = u64::from_be_bytes(chunk);
    if word & HIGHS != 0 {
        return None;
    }
    // The high bit of each byte of this sum is set when the byte is at least
    // `limit` (bytes below 0x80 plus at most 0x50: no carry between bytes).
    let at_least = |limit: u8| word + ONES * u64::from(0x80 - limit);
    let digit = at_least(b'0') & !at_least(b'9' + 1);
    let letter = at_least(b'a') & !at_least(b'f' + 1);
    if (digit | letter) & HIGHS != HIGHS {
        return None;
    }
    // '0'-'9' are 0x30-0x39, 'a'-'f' 0x61-0x66: the low nibble, plus 9 when bit 6 is set.
    let nibbles = (word & (ONES * 0x0F)) + ((word >> 6) & ONES) * 9;
    let pairs = ((nibbles >> 4) | nibbles) & 0x00FF_00FF_00FF_00FF;
    let quads = ((pairs >> 8) | pairs) & 0x0000_FFFF_0000_FFFF;
    Some(((quads >> 16) | quads) as u32)
}

/// The byte-by-byte reading [`hex_number`] is tested against: the number a
/// checked lower-case hex string spells ('0'-'9' are 0x30-0x39,
/// 'a'-'f' 0x61-0x66: the low nibble, plus 9 for letters).
#[cfg(test)]
fn hex_value(checked: &str) -> u128 {
    checked.bytes().fold(0u128, |value, digit| {
        (value << 4) | u128::from((digit & 0x0F) + 9 * (digit >> 6))
    })
}

fn string<'v, 'a>(value: &'v Option<Value<'a>>) -> Option<&'v str> {
    match value {
        Some(Value::Str(text)) => Some(text),
        _ => None,
    }
}

fn integer(value: &Option<Value<'_>>) -> Option<u64> {
    match value {
        Some(Value::Int(Some(number))) if *number <= MAX_SAFE_INTEGER => Some(*number),
        _ => None,
    }
}

/// At most MAX_UA_BYTES bytes, cut at a character boundary.
pub fn cut_user_agent(ua: &str) -> &str {
    if ua.len() <= MAX_UA_BYTES {
        return ua;
    }
    let mut end = MAX_UA_BYTES;
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    &ua[..end]
}

impl<'k> Judge<'k> {
    fn new(keys: &'k Keys, max_int_digits: usize) -> Self {
        Judge {
            keys,
            max_int_digits,
            ua_ids: HashMap::default(),
            out: ParsedLog::default(),
        }
    }

    /// Room for the hits an object of this size may hold, reserved (not
    /// touched, so it costs no memory until used): no copying as they come.
    fn reserve(&mut self, data: &[u8], max_object_bytes: usize) {
        const SHORTEST_RECORD: usize = 150; // a record with a token, ids and hit id is longer
        let text = if data.starts_with(&GZIP_MAGIC) {
            data.len().saturating_mul(4)
        } else {
            data.len()
        };
        let hits = text.min(max_object_bytes) / SHORTEST_RECORD;
        self.out.hits.reserve(hits);
        self.out.ips.reserve(hits * 16);
    }

    fn line(&mut self, number: u64, piece: &[u8]) {
        let line = piece.strip_suffix(b"\r").unwrap_or(piece);
        if line.iter().all(|byte| matches!(byte, b' ' | b'\t' | b'\r')) {
            return; // blank
        }
        self.out.lines += 1;
        if let Err((reason, field)) = self.judge(line) {
            self.out.rejections.push(Rejection {
                line: number,
                reason,
                field,
                data: line.to_vec(),
            });
        }
    }

    // Allowed: one hit's parsed fields, stored where they land on the hot path (a struct would be
    // built and taken apart again for every line).
    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        hit_id: u128,
        ts: u64,
        kind: Kind,
        delivery_id: u64,
        log_id: u64,
        url_id: u64,
        ua: &str,
        ip: &str,
        purpose: Purpose,
    ) {
        let ua = cut_user_agent(ua);
        let ua_id = match self.ua_ids.get(ua) {
            Some(&id) => id,
            None => {
                let id = self.out.uas.len() as u32;
                self.out.uas.push(ua.into());
                self.ua_ids.insert(ua.into(), id);
                id
            }
        };
        let ip_start = self.out.ips.len() as u32;
        self.out.ips.extend_from_slice(ip.as_bytes());
        // Pushed here, not returned: a Hit handed back through the caller
        // was written in pieces and read back whole (a store-forwarding stall).
        self.out.hits.push(Hit {
            hit_id,
            ts,
            delivery_id,
            log_id,
            url_id,
            ua: ua_id,
            ip_start,
            ip_len: ip.len() as u8, // at most MAX_IP_BYTES
            kind,
            purpose,
        });
    }

    /// The reference's `_verified_hit`: the hit (stored), or the first reason that applies.
    fn judge(&mut self, line: &[u8]) -> Result<(), Rejected> {
        if line.len() > MAX_LINE_BYTES {
            return Err((Reason::LineTooLong, None));
        }
        let text = std::str::from_utf8(line).map_err(|_| (Reason::NotUtf8, None))?;
        let mut fields: json::Fields<'_> = Default::default();
        if json::parse_canonical(text, &mut fields).is_none() {
            match json::parse_into(text, self.max_int_digits, &mut fields) {
                Err(json::NotJson) => return Err((Reason::NotJson, None)),
                Ok(false) => return Err((Reason::NotObject, None)),
                Ok(true) => {}
            }
        }
        if integer(&fields[json::V]) != Some(FORMAT_VERSION) {
            return Err((Reason::BadVersion, None));
        }
        let bad = |name: &'static str| (Reason::BadField, Some(name));
        let hit_id = string(&fields[1])
            .and_then(|value| hex_number(value, 32))
            .ok_or(bad("hit_id"))?;
        let ts = integer(&fields[2]).ok_or(bad("ts"))?;
        let kind = string(&fields[3]).and_then(Kind::parse).ok_or(bad("kind"))?;
        let delivery = string(&fields[4])
            .and_then(|value| hex_number(value, 16))
            .ok_or(bad("delivery_id"))? as u64; // 16 digits
        let log_id = integer(&fields[5]).ok_or(bad("log_id"))?;
        let url_id = integer(&fields[6]).ok_or(bad("url_id"))?;
        let token = string(&fields[7]).ok_or(bad("token"))?;
        let params = string(&fields[8]).ok_or(bad("p"))?;
        let ua = string(&fields[9]).ok_or(bad("ua"))?;
        let ip = string(&fields[10])
            .filter(|value| value.len() <= MAX_IP_BYTES)
            .ok_or(bad("ip"))?;
        let purpose = match &fields[json::PURPOSE] {
            None => Purpose::Undeclared, // optional: records from before it, and undeclared hits
            Some(Value::Str(text)) => Purpose::parse(text).ok_or(bad("purpose"))?,
            Some(_) => return Err(bad("purpose")),
        };
        let claims = self
            .verify(token, params)
            .map_err(|reason| (Reason::of_token(reason), None))?;
        if !kind.produced_by(claims.kind) {
            return Err((Reason::TokenKindMismatch, None));
        }
        if (claims.delivery_id, claims.log_id, claims.url_id) != (delivery.to_be_bytes(), log_id, url_id) {
            return Err((Reason::TokenClaimsMismatch, None));
        }
        self.store(hit_id, ts, kind, delivery, log_id, url_id, ua, ip, purpose);
        Ok(())
    }

    fn verify(&self, token: &str, params: &str) -> Result<Claims, tokens::Reason> {
        tokens::verify(token, self.keys, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const DELIVERY: [u8; 8] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xff];

    fn keys() -> Keys {
        Keys::new().with(1, SECRET)
    }

    /// A record as the hit path writes it, with a genuine token.
    fn record(kind: &str, token_kind: u8, ts: u64, serial: u64, log_id: u64, url_id: u64) -> String {
        let token = tokens::mint(token_kind, 1, SECRET, DELIVERY, log_id, url_id, "").unwrap();
        format!(
            concat!(
                r#"{{"v":1,"hit_id":"{:012x}{:020x}","ts":{},"kind":"{}","delivery_id":"00112233445566ff","#,
                r#""log_id":{},"url_id":{},"token":"{}","p":"","ua":"Mozilla/5.0 é","ip":"203.0.113.0","#,
                r#""request_id":"r"}}"#
            ),
            ts, serial, ts, kind, log_id, url_id, token
        )
    }

    fn open(ts: u64, serial: u64) -> String {
        record("open", tokens::KIND_OPEN, ts, serial, 7, 1)
    }

    fn gzip(text: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(text).unwrap();
        encoder.finish().unwrap()
    }

    fn reasons(parsed: &ParsedLog) -> Vec<(u64, &'static str, Option<&'static str>)> {
        parsed
            .rejections
            .iter()
            .map(|rejection| (rejection.line, rejection.reason.as_str(), rejection.field))
            .collect()
    }

    #[test]
    fn lines_blank_lines_crlf_and_a_missing_final_newline() {
        let text = format!("{}\r\n \t\r\n\n{}\n{}", open(1, 1), open(2, 2), open(3, 3));
        for data in [text.clone().into_bytes(), gzip(text.as_bytes())] {
            let parsed = parse_log(&data, &keys(), Limits::default());
            assert_eq!((parsed.lines, parsed.hits.len(), parsed.duplicates), (3, 3, 0));
            assert_eq!(parsed.hits.iter().map(|hit| hit.ts).collect::<Vec<_>>(), [1, 2, 3]);
            assert_eq!(parsed.ua(&parsed.hits[0]), "Mozilla/5.0 é");
            assert_eq!(parsed.ip(&parsed.hits[0]), "203.0.113.0");
        }
    }

    #[test]
    fn reasons_in_precedence_with_line_numbers_and_bytes() {
        let long = format!(r#"{{"v":1,"ua":"{}"}}"#, "x".repeat(MAX_LINE_BYTES));
        let text = [
            long.as_str(),
            "{\"v\":\"\u{1}\"}",
            "[1]",
            r#"{"v":2}"#,
            r#"{"v":1,"hit_id":"00"}"#,
            &open(1, 1).replace("\"ts\":1", "\"ts\":-1"),
            &open(1, 1).replace("\"token\":\"", "\"token\":\"!"),
            &record("open", tokens::KIND_CLICK, 1, 2, 7, 1),
            &open(1, 3).replace("\"log_id\":7", "\"log_id\":8"),
            "\r",
        ]
        .join("\n");
        let mut data = text.into_bytes();
        data.extend_from_slice(b"\n\xff\r\n");
        let parsed = parse_log(&data, &keys(), Limits::default());
        assert_eq!(
            reasons(&parsed),
            [
                (1, "line_too_long", None),
                (2, "not_json", None),
                (3, "not_object", None),
                (4, "bad_version", None),
                (5, "bad_field", Some("hit_id")),
                (6, "bad_field", Some("ts")),
                (7, "token_malformed", None),
                (8, "token_kind_mismatch", None),
                (9, "token_claims_mismatch", None),
                (11, "not_utf8", None),
            ]
        );
        assert_eq!(parsed.rejections[9].data, b"\xff");
        assert_eq!(parsed.lines, 10);
        assert_eq!(parsed.rejected()[0], (Reason::LineTooLong, 1));
    }

    #[test]
    fn repeated_hit_ids_are_duplicates_and_the_first_is_kept() {
        let text = [
            open(5, 1),
            open(1, 2),
            open(5, 1),
            open(1, 2).replace("Mozilla", "Other"),
            open(9, 3),
        ]
        .join("\n");
        let parsed = parse_log(text.as_bytes(), &keys(), Limits::default());
        assert_eq!((parsed.lines, parsed.hits.len(), parsed.duplicates), (5, 3, 2));
        assert_eq!(parsed.hits.iter().map(|hit| hit.ts).collect::<Vec<_>>(), [5, 1, 9]);
        assert_eq!(parsed.ua(&parsed.hits[1]), "Mozilla/5.0 é");
    }

    #[test]
    fn a_declared_purpose_is_kept_and_is_optional() {
        let with = |serial: u64, value: &str| {
            open(1, serial).replace(r#""request_id":"r""#, &format!(r#""request_id":"r","purpose":{value}"#))
        };
        let text = [
            open(1, 1),
            with(2, r#""prefetch""#),
            with(3, r#""preview""#),
            with(4, r#""""#),
            with(5, "null"),
            with(6, r#""Prefetch""#),
        ]
        .join("\n");
        let parsed = parse_log(text.as_bytes(), &keys(), Limits::default());
        assert_eq!(
            parsed.hits.iter().map(|hit| hit.purpose).collect::<Vec<_>>(),
            [Purpose::Undeclared, Purpose::Prefetch, Purpose::Preview]
        );
        let bad = (Reason::BadField.as_str(), Some("purpose"));
        assert_eq!(
            reasons(&parsed),
            [(4, bad.0, bad.1), (5, bad.0, bad.1), (6, bad.0, bad.1)]
        );
        assert_eq!(Purpose::parse("prerender").map(Purpose::as_str), Some("prerender"));
        assert_eq!(Purpose::parse(""), None);
    }

    #[test]
    fn user_agents_are_cut_at_a_character_boundary() {
        let agent = format!("{}é{}", "a".repeat(511), "b".repeat(50));
        assert_eq!(cut_user_agent(&agent), "a".repeat(511));
        assert_eq!(cut_user_agent(&"é".repeat(300)), "é".repeat(256));
        assert_eq!(cut_user_agent("short"), "short");
    }

    #[test]
    fn object_level_rejections() {
        let text = open(1, 1);
        let limits = Limits {
            max_object_bytes: text.len() - 1,
            ..Limits::default()
        };
        for data in [text.clone().into_bytes(), gzip(text.as_bytes())] {
            assert_eq!(parse_log(&data, &keys(), limits).object, Some(Reason::ObjectTooLarge));
        }
        let mut broken = gzip(text.as_bytes());
        broken.push(0x1F);
        let parsed = parse_log(&broken, &keys(), Limits::default());
        assert_eq!(
            (parsed.object, parsed.lines, parsed.hits.len()),
            (Some(Reason::BadGzip), 0, 0)
        );
        assert_eq!(parsed.rejected(), [(Reason::BadGzip, 1)]);
    }

    /// The one-pass reading agrees with checking then reading, byte by byte.
    #[test]
    fn hex_numbers_are_is_hex_then_hex_value() {
        let reference = |text: &str, length: usize| is_hex(text, length).then(|| hex_value(text));
        let base = "019ab697e80050d7b24891917b121dc5";
        let mut bytes = [0u8; 8];
        for length in [8, 16, 32] {
            for start in [0, 3, 32 - length].into_iter().filter(|start| start + length <= 32) {
                let text = &base[start..start + length];
                assert_eq!(hex_number(text, length), reference(text, length), "{text}");
                if length < 32 {
                    assert_eq!(hex_number(text, length + 8), None);
                }
                if length > 8 {
                    assert_eq!(hex_number(text, length - 8), None);
                }
            }
        }
        for text in [
            "",
            "0123456789abcde",
            "0123456789abcdef0",
            "ffffffffffffffff",
            "0000000000000000",
        ] {
            assert_eq!(hex_number(text, 16), reference(text, 16), "{text}");
        }
        for position in 0..8 {
            for byte in 0..=255u8 {
                bytes.copy_from_slice(b"9a0f5b6e");
                bytes[position] = byte;
                let expected = bytes
                    .iter()
                    .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
                    .then(|| {
                        bytes.iter().fold(0u32, |value, &digit| {
                            (value << 4) | (digit as char).to_digit(16).unwrap()
                        })
                    });
                assert_eq!(hex8(bytes), expected, "{byte} at {position}");
            }
        }
        for value in [0u64, 1, u64::MAX, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210] {
            assert_eq!(hex_number(&hex16(value), 16), Some(u128::from(value)));
        }
    }

    #[test]
    fn hex_values() {
        for text in [
            "0123456789abcdef",
            "ffffffffffffffff",
            "0000000000000000",
            "a0b1c2d3e4f50617",
        ] {
            assert_eq!(hex_value(text), u128::from(u64::from_str_radix(text, 16).unwrap()));
            assert_eq!(hex16(hex_value(text) as u64), text);
        }
        let long = "019ab697e80050d7b24891917b121dc5";
        assert_eq!(hex_value(long), u128::from_str_radix(long, 16).unwrap());
        assert_eq!(hex32(hex_value(long)), long);
    }
}
