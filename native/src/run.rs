//! What a workflow run writes, from its aggregation: the twin of the
//! encoding in `chalicelib/tracking/items.py` (`packed_id`,
//! `encode_recipient`'s hit lines, `encode_summary`'s strings),
//! `chalicelib/tracking/log_pages.py` (`encode_pages`),
//! `chalicelib/tracking/workflow.py` (`domain_updates`' `reached`) and
//! `chalicelib/hits/records.py` (`minimise_ip`, IPv4 and the modes that
//! need no address parsing). `python.rs` puts these parts into the items
//! the run record holds; the record is the same whichever backend made it
//! (tests/unit/test_native_run.py).

use std::borrow::Cow;
use std::fmt::Write;

use crate::aggregate::{bit_width, Summary, BUCKET_MS};
use crate::base64url;
use crate::classify::is_human;
use crate::dynamo;
use crate::logs::{self, Kind};

/// The privacy setting `ip_address_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpMode {
    Full,
    Truncated,
    Nothing,
}

impl IpMode {
    pub fn parse(name: &str) -> Option<IpMode> {
        match name {
            "full" => Some(IpMode::Full),
            "truncated" => Some(IpMode::Truncated),
            "none" => Some(IpMode::Nothing),
            _ => None,
        }
    }
}

/// `records.minimise_ip(ip, mode)`, or None for an IPv6 address written
/// other than with hex digits and colons only (an embedded IPv4 part, a
/// scope, anything Python's `ipaddress` may read its own way): the caller
/// asks the reference, once per distinct address.
pub fn minimise_ip(ip: &str, mode: IpMode) -> Option<Cow<'_, str>> {
    let mut scratch = String::new();
    let minimised = minimise_ip_into(ip, mode, &mut scratch)?;
    Some(if std::ptr::eq(minimised, ip) {
        Cow::Borrowed(ip)
    } else {
        Cow::Owned(minimised.to_owned())
    })
}

/// `minimise_ip`, written in `scratch` when it is not `ip` itself or "" (no allocation per hit: a run
/// minimises every hit's address).
pub fn minimise_ip_into<'a>(ip: &'a str, mode: IpMode, scratch: &'a mut String) -> Option<&'a str> {
    if mode == IpMode::Full || ip.is_empty() {
        return Some(ip);
    }
    if mode == IpMode::Nothing {
        return Some("");
    }
    if ip.contains(':') {
        ipv6_network_48_into(ip, scratch)?;
        return Some(scratch.as_str());
    }
    if ip.bytes().filter(|&byte| byte == b'.').count() != 3 {
        return Some("");
    }
    let network = &ip[..ip.rfind('.').expect("three dots")];
    if ip.len() == network.len() + 2 && ip.ends_with(".0") {
        Some(ip) // already truncated (records carry the IP as the setting allowed)
    } else {
        scratch.clear();
        scratch.push_str(network);
        scratch.push_str(".0");
        Some(scratch.as_str())
    }
}

/// `str(ipaddress.IPv6Network(f"{ip}/48", strict=False).network_address)`,
/// or "" where that raises, for an address of hex digits and colons only;
/// None for any other text (the reference decides).
/// Written in `scratch` (no allocation).
fn ipv6_network_48_into(ip: &str, scratch: &mut String) -> Option<()> {
    if ip.len() > 39 || !ip.bytes().all(|byte| byte == b':' || byte.is_ascii_hexdigit()) {
        return None;
    }
    scratch.clear();
    if let Some(value) = ipv6_value(ip) {
        let mut text = [0u8; 39];
        scratch.push_str(ipv6_text_into(value & !((1u128 << 80) - 1), &mut text));
    }
    Some(())
}

/// `ipaddress.IPv6Address._ip_int_from_string` for hex digits and colons:
/// None where it raises.
fn ipv6_value(ip: &str) -> Option<u128> {
    // The parts between colons, in place (no allocation: a run reads every IPv6 hit's address).
    let mut slots = [""; HEXTETS + 1];
    let mut count = 0;
    for part in ip.split(':') {
        *slots.get_mut(count)? = part; // more parts than an address can have
        count += 1;
    }
    ipv6_from_parts(&slots[..count])
}

/// The 16-bit groups of an IPv6 address.
const HEXTETS: usize = 8;

/// `ipv6_value` of the parts of an address between its colons.
fn ipv6_from_parts(parts: &[&str]) -> Option<u128> {
    if parts.len() < 3 || parts.len() > HEXTETS + 1 {
        return None;
    }
    let mut skip = None;
    for (index, part) in parts.iter().enumerate().take(parts.len() - 1).skip(1) {
        if part.is_empty() {
            if skip.is_some() {
                return None; // at most one '::'
            }
            skip = Some(index);
        }
    }
    let (high, low, skipped) = match skip {
        Some(index) => {
            let (mut high, mut low) = (index, parts.len() - index - 1);
            if parts[0].is_empty() {
                high -= 1;
                if high != 0 {
                    return None; // a leading ':' only as '::'
                }
            }
            if parts[parts.len() - 1].is_empty() {
                low -= 1;
                if low != 0 {
                    return None; // a trailing ':' only as '::'
                }
            }
            if high + low >= HEXTETS {
                return None; // '::' stands for at least one hextet
            }
            (high, low, HEXTETS - high - low)
        }
        None => {
            if parts.len() != HEXTETS || parts[0].is_empty() || parts[HEXTETS - 1].is_empty() {
                return None;
            }
            (HEXTETS, 0, 0)
        }
    };
    let hextet = |part: &str| -> Option<u128> {
        if part.is_empty() || part.len() > 4 {
            return None;
        }
        u128::from_str_radix(part, 16).ok()
    };
    let mut value = 0u128;
    for part in &parts[..high] {
        value = value << 16 | hextet(part)?;
    }
    value = value.checked_shl(16 * skipped as u32).unwrap_or(0); // all eight skipped ('::'): nothing before
    for part in &parts[parts.len() - low..] {
        value = value << 16 | hextet(part)?;
    }
    Some(value)
}

/// `str(ipaddress.IPv6Address(value))` for an address that is not IPv4-mapped:
/// hextets in lower-case hex, the longest run of two or more zero hextets
/// (the first of equal runs) written '::'.
#[cfg(test)]
fn ipv6_text(value: u128) -> String {
    let mut out = [0u8; 39];
    ipv6_text_into(value, &mut out).to_owned()
}

/// `ipv6_text`, written in `out` (at most 39 characters: no allocation, for the lookups of a run's addresses).
fn ipv6_text_into(value: u128, out: &mut [u8; 39]) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hextets: [u16; 8] = std::array::from_fn(|index| (value >> (112 - 16 * index)) as u16);
    let (mut best_start, mut best_len, mut start, mut len) = (0, 0, 0, 0);
    for (index, &hextet) in hextets.iter().enumerate() {
        if hextet == 0 {
            if len == 0 {
                start = index;
            }
            len += 1;
            if len > best_len {
                (best_start, best_len) = (start, len);
            }
        } else {
            len = 0;
        }
    }
    /// Hextets joined by ':' (as `ipv6_text`'s `join`), written at `at`.
    fn join(hextets: &[u16], out: &mut [u8; 39], at: &mut usize) {
        for (index, &hextet) in hextets.iter().enumerate() {
            if index > 0 {
                out[*at] = b':';
                *at += 1;
            }
            let digits = (4 - hextet.leading_zeros() as usize / 4).max(1);
            for shift in (0..digits).rev() {
                out[*at] = HEX[usize::from(hextet >> (4 * shift)) & 0xF];
                *at += 1;
            }
        }
    }
    let mut at = 0;
    if best_len > 1 {
        join(&hextets[..best_start], out, &mut at);
        out[at..at + 2].copy_from_slice(b"::");
        at += 2;
        join(&hextets[best_start + best_len..], out, &mut at);
    } else {
        join(&hextets, out, &mut at);
    }
    std::str::from_utf8(&out[..at]).expect("hex digits and colons are ASCII")
}

/// A dotted-quad IPv4 address as `socket.inet_pton(AF_INET, ...)` reads it:
/// four decimal parts of one to three digits, no leading zero, each at most
/// 255; None for any other text (the reference decides).
pub fn dotted_quad(ip: &str) -> Option<u32> {
    let bytes = ip.as_bytes();
    if bytes.len() < 7 || bytes.len() > 15 {
        return None;
    }
    let (mut value, mut octet, mut digits, mut dots) = (0u32, 0u32, 0, 0);
    for &byte in bytes {
        if byte == b'.' {
            if digits == 0 || dots == 3 {
                return None;
            }
            (value, octet, digits, dots) = (value << 8 | octet, 0, 0, dots + 1);
        } else if byte.is_ascii_digit() {
            if digits == 3 || (digits == 1 && octet == 0) {
                return None; // four digits, or a leading zero
            }
            octet = octet * 10 + u32::from(byte - b'0');
            digits += 1;
            if octet > 255 {
                return None;
            }
        } else {
            return None;
        }
    }
    (digits > 0 && dots == 3).then_some(value << 8 | octet)
}

/// An IPv6 address written as `str(ipaddress.IPv6Address(...))` writes it (lower-case hextets, the
/// longest run of zero hextets as '::': what `minimise_ip` gives), as `socket.inet_pton(AF_INET6, ...)`
/// reads it; None for any other text, however valid (the reference decides).
pub fn canonical_ipv6(ip: &str) -> Option<u128> {
    if ip.len() > 39 || !ip.contains(':') || !ip.bytes().all(|byte| byte == b':' || byte.is_ascii_hexdigit()) {
        return None;
    }
    let value = ipv6_value(ip)?;
    let mut text = [0u8; 39];
    (ipv6_text_into(value, &mut text) == ip).then_some(value)
}

/// The flags of `value` in sorted, disjoint ranges (classify's `_Ranges.lookup`).
pub fn range_flags(value: u128, starts: &[u128], ends: &[u128], flags: &[i64]) -> i64 {
    match starts.partition_point(|&start| start <= value) {
        0 => 0,
        index if value <= ends[index - 1] => flags[index - 1],
        _ => 0,
    }
}

/// `value` as `digits` lower-case hex digits (`logs::hex32` / `hex16`), written in `out`.
pub fn hex_into(value: u128, digits: usize, out: &mut [u8; 32]) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Two digits a byte of the value's big-endian bytes, the last `digits` of its 32: no 128-bit shift a
    // digit (a run spells every hit id it reads, parsed or stored).
    let mut all = [0u8; 32];
    for (pair, byte) in all.chunks_exact_mut(2).zip(value.to_be_bytes()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xF)];
    }
    out[..digits].copy_from_slice(&all[32 - digits..]);
    std::str::from_utf8(&out[..digits]).expect("hex digits are ASCII")
}

/// The 16 bytes of a hit path id at its own time (32 lower-case hex digits,
/// the first 12 the time in ms), or None for any other id and time.
fn timed_id(hit_id: &str, ts: i64) -> Option<[u8; 16]> {
    let value = logs::hex_number(hit_id, 32)?;
    (i64::try_from(value >> 80) == Ok(ts)).then_some(value.to_be_bytes())
}

/// `items.packed_id`: a hit path id at its own time as 22 base64url characters.
pub fn packed_id(hit_id: &str, ts: i64) -> Option<String> {
    let raw = timed_id(hit_id, ts)?;
    let mut packed = String::with_capacity(24);
    base64url::encode_to(&mut packed, &raw);
    packed.truncate(22);
    Some(packed)
}

/// A stored line's first two fields, with no tab after them: the packed id
/// (`packed`, what `packed_id` gives) and an empty field when the id packs
/// (true), else `<hit_id>\t<ts>` (items) or `<ts>\t<hit_id>` (log pages, `ts_first`).
fn write_stamp(
    out: &mut String,
    spelling: Spelling,
    hit_id: &str,
    ts: i64,
    packed: Option<&str>,
    ts_first: bool,
) -> bool {
    if let Some(packed) = packed {
        out.push_str(packed); // base64url: the same in both spellings
        return true;
    }
    if ts_first {
        dynamo::decimal(out, ts);
        spelling.tab(out);
        spelling.text(out, hit_id);
    } else {
        spelling.text(out, hit_id);
        spelling.tab(out);
        dynamo::decimal(out, ts);
    }
    false
}

/// How stored lines are spelled: as the text they are, or already escaped as
/// inside a JSON string (`dynamo::string`), to be written as they are in a
/// run's items (most of a line is tabs, which escaping one by one would cost).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Spelling {
    Text,
    Json,
}

impl Spelling {
    fn tab(self, out: &mut String) {
        out.push_str(match self {
            Spelling::Text => "\t",
            Spelling::Json => "\\t",
        });
    }

    fn text(self, out: &mut String, value: &str) {
        match self {
            Spelling::Text => out.push_str(value),
            Spelling::Json => dynamo::escaped(out, value),
        }
    }
}

/// The packed id (`packed_id`) of every hit of a table, made once, in row
/// order (items and log pages both write it, reading rows in another order).
#[derive(Default)]
pub struct PackedIds {
    text: String,
    packed: Vec<bool>,
}

impl PackedIds {
    /// From each row's (hit id, ts, the id's value when the caller knows the id is its 32 lower-case hex
    /// digits: not read again), in row order.
    pub fn new<'a>(rows: impl ExactSizeIterator<Item = (&'a str, i64, Option<u128>)>) -> PackedIds {
        let mut packed = PackedIds {
            text: String::with_capacity(22 * rows.len()),
            packed: Vec::with_capacity(rows.len()),
        };
        for (hit_id, ts, value) in rows {
            let start = packed.text.len();
            let timed = match value {
                Some(value) => (i64::try_from(value >> 80) == Ok(ts)).then_some(value.to_be_bytes()),
                None => timed_id(hit_id, ts),
            };
            match timed {
                Some(raw) => {
                    base64url::encode_to(&mut packed.text, &raw);
                    packed.text.truncate(start + 22);
                    packed.packed.push(true);
                }
                None => {
                    packed.text.push_str("                      ");
                    packed.packed.push(false);
                }
            }
        }
        packed
    }

    /// The packed id of row `row`, if it packs.
    pub fn get(&self, row: u32) -> Option<&str> {
        let row = row as usize;
        self.packed[row].then(|| &self.text[22 * row..22 * row + 22])
    }
}

/// Lines written one after the other into one text (no allocation per line).
#[derive(Default)]
pub struct Lines {
    text: String,
    ends: Vec<usize>,
}

impl Lines {
    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    fn end_line(&mut self) {
        self.ends.push(self.text.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Each of `texts` escaped as inside a JSON string (`dynamo::escaped`), a line each: strings that
    /// many items hold (user agents, addresses), escaped once.
    pub fn escaped<'a>(texts: impl IntoIterator<Item = &'a str>) -> Lines {
        let mut lines = Lines::default();
        for text in texts {
            dynamo::escaped(&mut lines.text, text);
            lines.end_line();
        }
        lines
    }

    /// Line `index`.
    pub fn get(&self, index: usize) -> &str {
        &self.text[if index == 0 { 0 } else { self.ends[index - 1] }..self.ends[index]]
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        self.ends
            .iter()
            .enumerate()
            .map(|(index, &end)| &self.text[if index == 0 { 0 } else { self.ends[index - 1] }..end])
    }
}

/// One hit of a recipient's tracking item, as `encode_recipient` reads it.
pub struct ItemHit<'a> {
    /// The hit id ("" when `packed` is given: it spells the id, and reading ids costs a run).
    pub hit_id: &'a str,
    pub ts: i64,
    /// `packed_id(hit_id, ts)`, made by the caller (PackedIds).
    pub packed: Option<&'a str>,
    pub kind: &'a str,
    pub url_id: i64,
    /// The user agent and address, only numbered in the item's `uas` and `ips` (the caller may give them
    /// as those lists are written, e.g. escaped once for JSON: `Lines::escaped`).
    pub ua: &'a str,
    pub ip: &'a str,
    pub purpose: &'a str,
    /// The verdict it is stored with (None: no verdicts given).
    pub verdict: Option<i64>,
}

/// A tracking item's `hits`, `uas` and `ips` (hits given in (ts, hit_id) order).
#[derive(Default)]
pub struct ItemHits<'a> {
    pub lines: Lines,
    pub uas: Vec<&'a str>,
    pub ips: Vec<&'a str>,
}

fn index_of<'a>(values: &mut Vec<&'a str>, value: &'a str) -> usize {
    match values.iter().position(|known| *known == value) {
        Some(index) => index,
        None => {
            values.push(value);
            values.len() - 1
        }
    }
}

/// `encode_recipient`'s lines: `<pack_hit>\t<kind>\t<url_id>\t<ua index>\t<ip index>[\t<verdict>][\t<purpose>]`,
/// into `encoded` (cleared first: one is reused for every recipient).
pub fn item_hits<'a>(encoded: &mut ItemHits<'a>, spelling: Spelling, hits: impl Iterator<Item = ItemHit<'a>>) {
    encoded.lines.clear();
    encoded.uas.clear();
    encoded.ips.clear();
    for hit in hits {
        let ua_index = index_of(&mut encoded.uas, hit.ua);
        let ip_index = index_of(&mut encoded.ips, hit.ip);
        let line = &mut encoded.lines.text;
        if write_stamp(line, spelling, hit.hit_id, hit.ts, hit.packed, false) {
            spelling.tab(line);
        }
        spelling.tab(line);
        spelling.text(line, hit.kind);
        for value in [hit.url_id, ua_index as i64, ip_index as i64] {
            spelling.tab(line);
            dynamo::decimal(line, value);
        }
        if hit.verdict.is_some() || !hit.purpose.is_empty() {
            spelling.tab(line);
            dynamo::decimal(line, hit.verdict.unwrap_or(crate::classify::UNCLASSIFIED));
        }
        if !hit.purpose.is_empty() {
            spelling.tab(line);
            spelling.text(line, hit.purpose);
        }
        encoded.lines.end_line();
    }
}

/// `encode_summary`'s `flags`: the summary's flags by name, comma-separated.
pub fn summary_flags(summary: &Summary) -> String {
    [
        ("opened", summary.opened),
        ("clicked", summary.clicked),
        ("optout", summary.optout),
        ("human", summary.human),
        ("clicked_human", summary.clicked_human),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| *name)
    .collect::<Vec<_>>()
    .join(",")
}

/// `encode_summary`'s `requesters`: 16 hex digits per hash, ascending.
pub fn summary_requesters(requesters: &[u64]) -> String {
    let mut sorted = requesters.to_vec();
    sorted.sort_unstable();
    sorted
        .iter()
        .fold(String::with_capacity(16 * sorted.len()), |mut out, value| {
            let _ = write!(out, "{value:016x}");
            out
        })
}

/// `domain_updates`' `reached`: (opened, clicked, opened by a person,
/// clicked by a person) of a recipient's hits (kind, verdict) and summary.
pub fn reached(hits: impl Iterator<Item = (Option<Kind>, i64)>, summary: Option<&Summary>) -> [i64; 4] {
    let mut any = false;
    let mut clicked = summary.is_some_and(|summary| summary.clicked);
    let mut human = summary.is_some_and(|summary| summary.human);
    let mut clicked_human = summary.is_some_and(|summary| summary.clicked_human);
    for (kind, verdict) in hits {
        any = true;
        let click = kind == Some(Kind::Click);
        clicked |= click;
        if is_human(verdict) {
            human = true;
            clicked_human |= click;
        }
    }
    [
        i64::from(any || summary.is_some()),
        i64::from(clicked),
        i64::from(human),
        i64::from(clicked_human),
    ]
}

/// A new hit of a delivery's log pages (log_pages.encode_pages' input).
#[derive(Clone, Copy)]
pub struct PageHit<'a> {
    pub ts: i64,
    /// The hit id ("" when `packed` is given: it spells the id, and reading ids costs a run).
    pub hit_id: &'a str,
    /// `packed_id(hit_id, ts)`, made by the caller (PackedIds).
    pub packed: Option<&'a str>,
    pub kind: &'a str,
    pub log_id: i64,
    pub url_id: i64,
    pub ua: &'a str,
    pub recipient: &'a str,
    /// The caller's numbers of `ua` and `recipient`: equal exactly when the texts are (interned), so a page
    /// finds its strings by number, not by hashing and comparing long texts.
    pub ua_key: u32,
    pub recipient_key: u32,
}

/// A page hit's id, spelled out from its packed form when it was given so (a hit path id: 32 hex digits).
fn page_hit_id<'a>(hit: &PageHit<'a>) -> Cow<'a, str> {
    match hit.packed {
        Some(packed) if hit.hit_id.is_empty() => {
            let mut raw = [0u8; 16];
            let decoded = base64url::decode_canonical(packed.as_bytes(), &mut raw);
            debug_assert_eq!(decoded, Some(16), "a packed id is 16 bytes");
            Cow::Owned(logs::hex32(u128::from_be_bytes(raw)))
        }
        _ => Cow::Borrowed(hit.hit_id),
    }
}

/// The value of a page hit's id given only packed (`page_hit_id` spells it as 32 hex digits).
fn packed_value(hit: &PageHit<'_>) -> Option<u128> {
    match hit.packed {
        Some(packed) if hit.hit_id.is_empty() => {
            let mut raw = [0u8; 16];
            let decoded = base64url::decode_canonical(packed.as_bytes(), &mut raw);
            debug_assert_eq!(decoded, Some(16), "a packed id is 16 bytes");
            Some(u128::from_be_bytes(raw))
        }
        _ => None,
    }
}

/// Python's `len` of a page hit's id (32 hex digits when it is given packed).
fn page_hit_id_length(hit: &PageHit<'_>) -> usize {
    if hit.packed.is_some() && hit.hit_id.is_empty() {
        32
    } else {
        characters(hit.hit_id)
    }
}

/// Python's `len` of a text (its characters): its bytes when it is ASCII, as hit ids are.
fn characters(text: &str) -> usize {
    if text.is_ascii() {
        text.len()
    } else {
        text.chars().count()
    }
}

/// One log page item (without `delivery_id` and `last_run`).
pub struct Page<'a> {
    pub stat: String,
    pub lines: Lines,
    /// The page's user agents, by their `ua_key` (the caller holds the texts, escaped once).
    pub ua_keys: Vec<u32>,
    pub recipients: Vec<&'a str>,
    recipient_keys: Vec<u32>,
}

pub const MAX_PAGE_BYTES: usize = 256 * 1024;

/// `log_pages.encode_pages`: one run's new hits of one delivery as pages per
/// kind and 5-minute window, hits by (ts, hit_id), parts of at most
/// MAX_PAGE_BYTES as the reference counts them.
pub fn encode_pages<'a>(mut hits: Vec<PageHit<'a>>, run: i64, spelling: Spelling) -> Vec<Page<'a>> {
    let window = |ts: i64| ts - ts.rem_euclid(BUCKET_MS as i64);
    // By (kind, window, ts, hit_id), the reference's order: the window follows ts, and the few kinds are
    // ranked once, so most comparisons are of one integer (kind rank, then ts with its sign bit flipped).
    let mut kinds: Vec<&str> = Vec::new();
    for hit in &hits {
        if !kinds.contains(&hit.kind) {
            kinds.push(hit.kind);
        }
    }
    kinds.sort_unstable();
    // One plain integer per hit, (kind rank, ts from the earliest, position), sorted as such (in 64 bits
    // when they fit: faster to sort); then only the runs of one kind and ts (few, short) by hit id.
    assert!(u32::try_from(hits.len()).is_ok(), "positions in 32 bits");
    let (earliest, latest) = hits.iter().fold((i64::MAX, i64::MIN), |(earliest, latest), hit| {
        (earliest.min(hit.ts), latest.max(hit.ts))
    });
    let ts_bits = bit_width((i128::from(latest) - i128::from(earliest)).max(0) as u128);
    let key = |index: usize, hit: &PageHit<'_>| {
        let rank = kinds.iter().position(|kind| *kind == hit.kind).expect("ranked") as u128;
        let ts = (i128::from(hit.ts) - i128::from(earliest)) as u128;
        rank << (32 + ts_bits) | ts << 32 | index as u128
    };
    let keyed = hits.iter().enumerate();
    let order: Vec<u32> = if 32 + ts_bits + bit_width(kinds.len() as u128) <= u64::BITS {
        by_key_then_id(keyed.map(|(index, hit)| key(index, hit) as u64).collect(), &hits)
    } else {
        by_key_then_id(keyed.map(|(index, hit)| key(index, hit)).collect(), &hits)
    };
    hits = order.iter().map(|&index| hits[index as usize]).collect();
    let mut pages = Vec::new();
    let (mut ua_slots, mut recipient_slots) = (Slots::default(), Slots::default());
    let mut start = 0;
    while start < hits.len() {
        let (kind, at) = (hits[start].kind, window(hits[start].ts));
        let mut end = start;
        while end < hits.len() && hits[end].kind == kind && window(hits[end].ts) == at {
            end += 1;
        }
        let page = |part: usize| Page {
            stat: format!("log#{kind}#{at:015}#{run:012}#{part:04}"),
            lines: Lines::default(),
            ua_keys: Vec::new(),
            recipients: Vec::new(),
            recipient_keys: Vec::new(),
        };
        let mut current = page(0);
        let (mut part, mut size) = (0, 0);
        for hit in &hits[start..end] {
            let new_ua = ua_slots.get(hit.ua_key).is_none();
            let new_recipient = recipient_slots.get(hit.recipient_key).is_none();
            let mut cost = 64
                + page_hit_id_length(hit)
                + if new_ua { hit.ua.len() } else { 0 }
                + if new_recipient { hit.recipient.len() } else { 0 };
            if !current.lines.is_empty() && size + cost > MAX_PAGE_BYTES {
                part += 1;
                let full = std::mem::replace(&mut current, page(part));
                ua_slots.forget(&full.ua_keys);
                recipient_slots.forget(&full.recipient_keys);
                pages.push(full);
                (size, cost) = (0, 64 + page_hit_id_length(hit) + hit.ua.len() + hit.recipient.len());
            }
            let ua = ua_slots.get(hit.ua_key).unwrap_or_else(|| {
                current.ua_keys.push(hit.ua_key);
                ua_slots.set(hit.ua_key, current.ua_keys.len() - 1)
            });
            let recipient = recipient_slots.get(hit.recipient_key).unwrap_or_else(|| {
                current.recipients.push(hit.recipient);
                current.recipient_keys.push(hit.recipient_key);
                recipient_slots.set(hit.recipient_key, current.recipients.len() - 1)
            });
            let line = &mut current.lines.text;
            if write_stamp(line, spelling, hit.hit_id, hit.ts, hit.packed, true) {
                spelling.tab(line);
            }
            for value in [hit.log_id, hit.url_id, ua as i64, recipient as i64] {
                spelling.tab(line);
                dynamo::decimal(line, value);
            }
            current.lines.end_line();
            size += cost;
        }
        ua_slots.forget(&current.ua_keys);
        recipient_slots.forget(&current.recipient_keys);
        pages.push(current);
        start = end;
    }
    pages
}

/// The positions of `hits` (in the low 32 bits of `keys`) by their keys, hits of one key (the bits above)
/// by hit id, stably: hits of one id stay in their order, as in the reference's sort.
fn by_key_then_id<K: Copy + Ord + Into<u128>>(mut keys: Vec<K>, hits: &[PageHit<'_>]) -> Vec<u32> {
    keys.sort_unstable();
    let hit_of = |key: K| &hits[(key.into() as u32) as usize];
    let mut start = 0;
    while start < keys.len() {
        let (run, mut end) = (keys[start].into() >> 32, start + 1);
        while end < keys.len() && keys[end].into() >> 32 == run {
            end += 1;
        }
        if end - start > 1 {
            keys[start..end].sort_by(|&a, &b| {
                let (first, second) = (hit_of(a), hit_of(b));
                match (packed_value(first), packed_value(second)) {
                    // 32 lower-case hex digits each: their order is the values'.
                    (Some(first), Some(second)) => first.cmp(&second),
                    _ => page_hit_id(first).cmp(&page_hit_id(second)),
                }
            });
        }
        start = end;
    }
    keys.into_iter().map(|key| key.into() as u32).collect()
}

/// Where each string sits in the page being written, by its key (the reference's dicts, without hashing):
/// a page holds thousands of hits and few distinct strings.
#[derive(Default)]
struct Slots(Vec<u32>);

impl Slots {
    const ABSENT: u32 = u32::MAX;

    fn get(&self, key: u32) -> Option<usize> {
        self.0
            .get(key as usize)
            .filter(|&&slot| slot != Self::ABSENT)
            .map(|&slot| slot as usize)
    }

    fn set(&mut self, key: u32, slot: usize) -> usize {
        if self.0.len() <= key as usize {
            self.0.resize(key as usize + 1, Self::ABSENT);
        }
        self.0[key as usize] = slot as u32;
        slot
    }

    /// The page's keys forgotten, for the next page (the others are absent already).
    fn forget(&mut self, keys: &[u32]) {
        for &key in keys {
            self.0[key as usize] = Self::ABSENT;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_as_the_reference() {
        let truncated = |ip| minimise_ip(ip, IpMode::Truncated).map(Cow::into_owned);
        assert_eq!(truncated("203.0.113.77").as_deref(), Some("203.0.113.0"));
        assert_eq!(truncated("203.0.113.0").as_deref(), Some("203.0.113.0"));
        assert_eq!(truncated("10.1.2").as_deref(), Some(""));
        assert_eq!(truncated("a.b.c.d").as_deref(), Some("a.b.c.0")); // the reference does not parse IPv4 either
        assert_eq!(truncated("").as_deref(), Some(""));
        assert_eq!(truncated("2001:db8::1").as_deref(), Some("2001:db8::"));
        assert_eq!(
            truncated("2001:DB8:85A3:08D3:1319:8a2e:0370:7348").as_deref(),
            Some("2001:db8:85a3::")
        );
        assert_eq!(truncated("0:0:1::").as_deref(), Some("0:0:1::"));
        assert_eq!(truncated("::").as_deref(), Some("::"));
        assert_eq!(truncated("1:2:3:4:5:6:7::").as_deref(), Some("1:2:3::"));
        assert_eq!(truncated("0:1::").as_deref(), Some("0:1::"));
        for invalid in [
            "1::2::3",
            "12345::",
            ":1::",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7:8::",
            "1:2",
            "::g",
        ] {
            assert_eq!(
                truncated(invalid).as_deref(),
                if invalid == "::g" { None } else { Some("") },
                "{invalid}"
            );
        }
        assert_eq!(truncated("::ffff:203.0.113.9"), None);
        assert_eq!(truncated("fe80::1%eth0"), None);
        assert_eq!(minimise_ip("2001:db8::1", IpMode::Full).as_deref(), Some("2001:db8::1"));
        assert_eq!(minimise_ip("203.0.113.7", IpMode::Nothing).as_deref(), Some(""));
    }

    /// Every text made of 1 to `pieces` pieces of `alphabet`.
    fn every_text(alphabet: &[&str], pieces: usize) -> Vec<String> {
        let mut texts = vec![String::new()];
        let mut all = Vec::new();
        for _ in 0..pieces {
            texts = texts
                .iter()
                .flat_map(|text| alphabet.iter().map(move |piece| format!("{text}{piece}")))
                .collect();
            all.extend(texts.iter().cloned());
        }
        all
    }

    /// `ipv6_value` as it was written first (its parts collected): what the reading in place must equal.
    fn ipv6_value_collected(ip: &str) -> Option<u128> {
        ipv6_from_parts(&ip.split(':').collect::<Vec<_>>())
    }

    #[test]
    fn reads_ipv6_in_place_as_collected() {
        let mut all = every_text(&["0", "1", "f", "F", ":", "::", "g", "."], 7);
        for hextets in 1..=10 {
            for hextet in ["0", "1", "ffff", "12345", ""] {
                let full = vec![hextet; hextets].join(":");
                all.extend([
                    full.clone(),
                    format!("::{full}"),
                    format!("{full}::"),
                    format!("1::{full}"),
                ]);
            }
        }
        let mut read = 0;
        for text in &all {
            assert_eq!(ipv6_value(text), ipv6_value_collected(text), "{text:?}");
            read += usize::from(ipv6_value(text).is_some());
        }
        assert!(read > 1000, "{read}");
    }

    /// `dotted_quad` as it was written first (by parts): what the byte reading must equal.
    fn dotted_quad_by_parts(ip: &str) -> Option<u32> {
        let mut value = 0u32;
        let mut parts = 0;
        for part in ip.split('.') {
            let digits = part.as_bytes();
            if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            if digits.len() > 1 && digits[0] == b'0' {
                return None;
            }
            let octet: u32 = part.parse().ok()?;
            if octet > 255 {
                return None;
            }
            value = value << 8 | octet;
            parts += 1;
        }
        (parts == 4).then_some(value)
    }

    #[test]
    fn reads_dotted_quads_byte_by_byte_as_by_parts() {
        // Every text of up to 6 characters of an alphabet, and longer ones around the edges.
        let mut all = every_text(&["0", "1", "2", "5", "9", ".", "a"], 7);
        for octets in [
            "0", "00", "01", "10", "99", "100", "199", "249", "255", "256", "259", "300", "999", "1000", "",
        ] {
            for quad in [
                format!("{octets}.{octets}.{octets}.{octets}"),
                format!("1.2.3.{octets}"),
                format!("{octets}.2.3.4"),
                format!("1.{octets}.3.4"),
                format!("255.255.255.{octets}"),
                format!("1.2.3.4.{octets}"),
                format!("1.2.{octets}"),
            ] {
                all.push(quad);
            }
        }
        let mut read = 0;
        for text in &all {
            assert_eq!(dotted_quad(text), dotted_quad_by_parts(text), "{text:?}");
            read += usize::from(dotted_quad(text).is_some());
        }
        assert!(read > 500, "{read}");
    }

    #[test]
    fn reads_dotted_quads_as_inet_pton_and_looks_them_up() {
        assert_eq!(dotted_quad("203.0.113.7"), Some(0xCB00_7107));
        assert_eq!(dotted_quad("0.0.0.0"), Some(0));
        assert_eq!(dotted_quad("255.255.255.255"), Some(u32::MAX));
        for other in [
            "",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.256",
            "1.2.3.",
            "1..3.4",
            " 1.2.3.4",
            "1.2.3.4a",
            "1234.1.1.1",
            "::1",
            "+1.2.3.4",
        ] {
            assert_eq!(dotted_quad(other), None, "{other}");
        }
        let (starts, ends, flags) = ([10, 20], [15, 20], [1, 2]);
        for canonical in [
            "2001:db8::",
            "::",
            "::1",
            "1:2:3:4:5:6:7:8",
            "fe80::1:0:0:0",
            "1:0:0:2::",
        ] {
            let value = canonical_ipv6(canonical).expect(canonical);
            assert_eq!(ipv6_text(value), canonical);
        }
        assert_eq!(canonical_ipv6("2001:db8::1"), Some(0x2001_0db8_u128 << 96 | 1));
        for other in [
            "2001:DB8::",
            "2001:0db8::",
            "1:0:0:2:0:0:0:0",
            "::1:0:0:0:0:0",
            "1::2::3",
            "::ffff:1.2.3.4",
            "fe80::1%eth0",
            "1:2:3:4:5:6:7::",
            "203.0.113.7",
            "",
        ] {
            assert_eq!(canonical_ipv6(other), None, "{other}");
        }
        let found: Vec<i64> = [9, 10, 15, 16, 20, 21]
            .map(|value| range_flags(value, &starts, &ends, &flags))
            .to_vec();
        assert_eq!(found, [0, 1, 1, 0, 2, 0]);
    }

    #[test]
    fn hex_is_the_parsers_spelling() {
        let mut out = [0u8; 32];
        for value in [0u128, 1, 0xabc, u128::from(u64::MAX), u128::MAX] {
            assert_eq!(hex_into(value, 32, &mut out), crate::logs::hex32(value));
            for digits in [1, 5, 16, 31] {
                let low = value & ((1u128 << (4 * digits)) - 1);
                assert_eq!(hex_into(value, digits, &mut out), format!("{low:0digits$x}"));
            }
            assert_eq!(
                hex_into(value & u128::from(u64::MAX), 16, &mut out),
                crate::logs::hex16(value as u64)
            );
        }
    }

    #[test]
    fn packs_hit_path_ids_at_their_own_time() {
        let ts = 0x0190_0000_0001_i64;
        let hit_id = format!("{ts:012x}{}", "ab".repeat(10));
        let packed = packed_id(&hit_id, ts).expect("a hit path id");
        assert_eq!(packed.len(), 22);
        assert_eq!(packed_id(&hit_id, ts + 1), None);
        assert_eq!(packed_id(&hit_id.to_uppercase(), ts), None);
        assert_eq!(packed_id("h1", 1), None);
    }

    #[test]
    fn item_lines_carry_verdicts_and_purposes() {
        let hit = |hit_id, purpose, verdict| ItemHit {
            hit_id,
            ts: 5,
            packed: None,
            kind: "open",
            url_id: 1,
            ua: "ua",
            ip: "ip",
            purpose,
            verdict,
        };
        let mut encoded = ItemHits::default();
        item_hits(&mut encoded, Spelling::Text, [hit("h0", "", None)].into_iter()); // one is reused: cleared first
        let packed = format!("{:012x}{}", 5, "0".repeat(20));
        let stamp = packed_id(&packed, 5);
        let hits = [
            hit("h1", "", None),
            hit("h2", "prefetch", None),
            hit("h3", "", Some(16)),
            ItemHit {
                packed: stamp.as_deref(),
                ..hit(&packed, "", Some(0))
            },
        ];
        item_hits(&mut encoded, Spelling::Text, hits.into_iter());
        assert_eq!(
            encoded.lines.iter().collect::<Vec<_>>(),
            [
                "h1\t5\topen\t1\t0\t0",
                "h2\t5\topen\t1\t0\t0\t-1\tprefetch",
                "h3\t5\topen\t1\t0\t0\t16",
                "AAAAAAAFAAAAAAAAAAAAAA\t\topen\t1\t0\t0\t0",
            ]
        );
        let text: Vec<String> = encoded.lines.iter().map(str::to_owned).collect();
        item_hits(
            &mut encoded,
            Spelling::Json,
            [hit("h\"\t1", "pre\\fetch", None)].into_iter(),
        );
        assert_eq!(
            encoded.lines.iter().collect::<Vec<_>>(),
            ["h\\\"\\t1\\t5\\topen\\t1\\t0\\t0\\t-1\\tpre\\\\fetch"]
        );
        for (line, escaped) in text.iter().zip(["h1\\t5\\topen\\t1\\t0\\t0"]) {
            let mut quoted = String::new();
            dynamo::string(&mut quoted, line);
            assert_eq!(quoted, format!("\"{escaped}\""));
        }
        assert_eq!((encoded.uas, encoded.ips), (vec!["ua"], vec!["ip"]));
    }

    #[test]
    fn pages_split_by_kind_window_and_size() {
        let ua = "u".repeat(100_000);
        let hit = |ts, hit_id, kind, ua| PageHit {
            ts,
            hit_id,
            packed: None,
            kind,
            log_id: 1,
            url_id: 2,
            ua,
            recipient: "r",
            ua_key: ua.len() as u32, // the texts below differ by length
            recipient_key: 0,
        };
        let pages = encode_pages(
            vec![
                hit(300_001, "b", "open", "x"),
                hit(1, "a", "open", &ua[..]),
                hit(2, "c", "click", "x"),
                hit(3, "d", "open", &ua[..99_999]),
                hit(4, "e", "open", &ua[..99_998]),
            ],
            7,
            Spelling::Text,
        );
        let stats: Vec<&str> = pages.iter().map(|page| page.stat.as_str()).collect();
        assert_eq!(
            stats,
            [
                "log#click#000000000000000#000000000007#0000",
                "log#open#000000000000000#000000000007#0000",
                "log#open#000000000000000#000000000007#0001",
                "log#open#000000000300000#000000000007#0000",
            ]
        );
        let lines = |page: &Page<'_>| page.lines.iter().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(lines(&pages[1]), ["1\ta\t1\t2\t0\t0", "3\td\t1\t2\t1\t0"]);

        // Hit path ids given packed, without their text: the same order (ties of ts by id) and sizes.
        let ids: Vec<String> = (0..6u128)
            .map(|serial| logs::hex32((7 << 80) | (serial * 0x0123_4567_89ab)))
            .collect();
        let stamps: Vec<String> = ids.iter().map(|id| packed_id(id, 7).expect("packs")).collect();
        let spelled = |with_ids: bool| {
            let hits: Vec<PageHit<'_>> = [3, 0, 5, 1, 4, 2]
                .iter()
                .map(|&index: &usize| PageHit {
                    packed: Some(stamps[index].as_str()),
                    hit_id: if with_ids { &ids[index] } else { "" },
                    ..hit(7, "", "open", &ua[..60_000 - index])
                })
                .collect();
            encode_pages(hits, 7, Spelling::Text)
                .iter()
                .map(|page| (page.stat.clone(), lines(page)))
                .collect::<Vec<_>>()
        };
        assert_eq!(spelled(false), spelled(true));
        assert_eq!(spelled(true).len(), 2);
        assert_eq!(lines(&pages[2]), ["4\te\t1\t2\t0\t0"]);
    }

    #[test]
    fn pages_order_ties_of_kind_and_ts_by_hit_id_packed_or_not() {
        // Ids of several ts, some given packed (text ""), some as text (packed or not): every page's lines
        // in (kind, ts, hit id) order, hits of one id in their order (as the reference's stable sort).
        let ids: Vec<String> = (0..40u128)
            .map(|serial| logs::hex32((5 << 80) | ((serial * 0x9e37_79b9_7f4a) % 0xffff_ffff_ffff)))
            .collect();
        let stamps: Vec<String> = ids.iter().map(|id| packed_id(id, 5).expect("packs")).collect();
        let mut hits = Vec::new();
        for (index, id) in ids.iter().enumerate() {
            let (ts, kind) = if index % 7 == 3 {
                (5, "click")
            } else {
                (5 + (index % 3) as i64 * 1000, "open")
            };
            let (hit_id, packed) = match index % 3 {
                0 => ("", Some(stamps[index].as_str())),
                1 => (id.as_str(), Some(stamps[index].as_str())),
                _ => (id.as_str(), None),
            };
            let url_id = index as i64;
            hits.push(PageHit {
                ts,
                hit_id,
                packed,
                kind,
                log_id: 1,
                url_id,
                ua: "u",
                recipient: "r",
                ua_key: 0,
                recipient_key: 0,
            });
            if index % 5 == 0 {
                hits.push(PageHit {
                    url_id: url_id + 100,
                    ..*hits.last().expect("pushed")
                }); // the id again
            }
        }
        hits.push(PageHit {
            hit_id: "not hex",
            packed: None,
            ..hits[1]
        });
        // Of ts apart by more than 32 bits, once: keys in 128 bits, not 64.
        let wide: Vec<PageHit<'_>> = hits
            .iter()
            .chain(&[
                PageHit {
                    ts: i64::MAX / 2,
                    ..hits[0]
                },
                PageHit {
                    ts: i64::MIN / 2,
                    ..hits[2]
                },
            ])
            .copied()
            .collect();
        for hits in [hits, wide] {
            let mut expected: Vec<(&str, i64, String, i64)> = hits
                .iter()
                .map(|hit| (hit.kind, hit.ts, page_hit_id(hit).into_owned(), hit.url_id))
                .collect();
            expected.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2))); // stable
            let pages = encode_pages(hits, 7, Spelling::Text);
            let want: Vec<i64> = expected.iter().map(|hit| hit.3).collect();
            let got: Vec<i64> = pages
                .iter()
                .flat_map(|page| page.lines.iter().map(str::to_owned).collect::<Vec<_>>())
                .map(|line| {
                    let fields: Vec<&str> = line.split('\t').collect();
                    fields[fields.len() - 3].parse().expect("url id")
                })
                .collect();
            assert_eq!(got, want);
        }
    }
}
