//! A run item's body: the hits, verdict corrections and counter deltas one
//! workflow run adds to a shard, in bytes. The twin of
//! `chalicelib/tracking/run_items.py`; the contract (layout, canonical order,
//! refusals by reason) is `docs/spec/run-items.md`, pinned for both by the
//! shared vectors of `tests/vectors/run_items.json` (run by `src/vectors.rs`).
//!
//! [`encode`] writes the body the reference writes, byte for byte, and refuses
//! what it refuses with the same reason; [`decode`] refuses a body with the
//! first reason the reference meets reading from the front (the order of the
//! checks below is the reference's, line by line). Its [`RunItem`] borrows the
//! texts from the body: decoding allocates the item's vectors and the sets
//! that find repeats, nothing per hit.
//!
//! Integers are i64 as the tracking core's are (the Python face falls back to
//! the reference for ints past 64 bits), but a counter's delta is i128, so a
//! delta just outside the signed 64-bit range is refused (`out_of_range`) as
//! the reference refuses it.

use std::collections::{HashMap, HashSet};
use std::fmt;

use foldhash::fast::RandomState;

use crate::logs::{self, Kind, Purpose};

pub const VERSION: u8 = 1;
/// ts, log id, URL id: what the core accepts (docs/spec/tracking-core.md).
pub const MAX_VALUE: i64 = (1 << 53) - 1;
/// The largest verdict (a verdict is stored plus one, so at most 2**53).
pub const MAX_VERDICT: i64 = (1 << 53) - 1;
const TS_FOLLOWS: u8 = 0x10;
const RESERVED_FLAGS: u8 = 0xE0;
/// The bytes of a hit id.
const ID_BYTES: usize = 16;

/// Why a run item is refused (the spec's reasons).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    // encode
    BadHit,
    Duplicate,
    // both
    OutOfRange,
    // decode
    BadVersion,
    Truncated,
    BadVarint,
    BadText,
    BadFlags,
    BadIndex,
    NotCanonical,
    TrailingBytes,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::BadHit,
        Reason::Duplicate,
        Reason::OutOfRange,
        Reason::BadVersion,
        Reason::Truncated,
        Reason::BadVarint,
        Reason::BadText,
        Reason::BadFlags,
        Reason::BadIndex,
        Reason::NotCanonical,
        Reason::TrailingBytes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadHit => "bad_hit",
            Reason::Duplicate => "duplicate",
            Reason::OutOfRange => "out_of_range",
            Reason::BadVersion => "bad_version",
            Reason::Truncated => "truncated",
            Reason::BadVarint => "bad_varint",
            Reason::BadText => "bad_text",
            Reason::BadFlags => "bad_flags",
            Reason::BadIndex => "bad_index",
            Reason::NotCanonical => "not_canonical",
            Reason::TrailingBytes => "trailing_bytes",
        }
    }
}

/// A refusal: the spec's reason, and the reference's detail (its message is
/// `reason: detail`, or the reason alone when there is no detail).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub reason: Reason,
    pub detail: String,
}

impl Error {
    fn new(reason: Reason, detail: String) -> Error {
        Error { reason, detail }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            formatter.write_str(self.reason.as_str())
        } else {
            write!(formatter, "{}: {}", self.reason.as_str(), self.detail)
        }
    }
}

impl std::error::Error for Error {}

/// A hit to encode: the core's `Hit`, its fields as given (the aggregation's [`HitFields`]).
pub use crate::aggregate::HitFields as Hit;

/// A counter to encode: (stat, field, delta).
pub type Counter<'a> = (&'a str, &'a str, i128);

/// A decoded hit: its id as a number (the 32 hex digits' value, which keeps
/// their order), its agent and address as indexes in [`RunItem::texts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodedHit {
    pub hit_id: u128,
    pub ts: i64,
    pub kind: Kind,
    pub purpose: Purpose,
    pub log_id: i64,
    pub url_id: i64,
    pub ua: u32,
    pub ip: u32,
    pub verdict: i64,
}

/// A decoded counter: stat and field as indexes in [`RunItem::texts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodedCounter {
    pub stat: u32,
    pub field: u32,
    pub delta: i64,
}

/// A decoded body, in canonical order; the texts are the body's own bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunItem<'a> {
    pub texts: Vec<&'a str>,
    pub hits: Vec<DecodedHit>,
    /// (stored hit's id, its new verdict)
    pub corrections: Vec<(u128, i64)>,
    pub counters: Vec<DecodedCounter>,
}

impl RunItem<'_> {
    pub fn text(&self, index: u32) -> &str {
        self.texts[index as usize]
    }
}

/// The time a hit id carries: its first 12 hex digits read as milliseconds.
fn id_time(hit_id: u128) -> i64 {
    (hit_id >> 80) as i64 // 48 bits
}

/// The flags byte of a kind and purpose, before the ts bit.
fn flags_of(kind: Kind, purpose: Purpose) -> u8 {
    let kind = match kind {
        Kind::Click => 0,
        Kind::Open => 1,
        Kind::Optout => 2,
        Kind::Mirror => 3,
    };
    let purpose = match purpose {
        Purpose::Undeclared => 0,
        Purpose::Prefetch => 1,
        Purpose::Prerender => 2,
        Purpose::Preview => 3,
    };
    kind | purpose << 2
}

#[inline]
fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value > 0x7F {
        out.push((value & 0x7F) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// What is wrong with a hit, by itself (a repeated id is found in canonical order), in the order the
/// reference checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Problem {
    None,
    BadHit,
    Ts,
    LogId,
    UrlId,
    Verdict,
}

/// A hit read for encoding, in the order given: all the body needs of it, compact, so the pass in
/// canonical order (a random walk over the hits as given) reads one cache line a hit.
#[derive(Clone, Copy)]
struct Prepared {
    id: u128,
    ts: i64,
    log_id: i64,
    url_id: i64,
    verdict: i64,
    /// The agent's and address's numbers as the caller's texts name them (not yet the body's).
    ua: u32,
    ip: u32,
    flags: u8,
    problem: Problem,
}

impl Problem {
    /// What the reference finds wrong with `hit` alone, and its id and flags when it is well formed.
    fn of(hit: &Hit<'_>, verdict: i64, delivery_id: &str) -> (Problem, u128, u8) {
        let id = logs::hex_number(hit.hit_id, 32);
        let kind = Kind::parse(hit.kind);
        let purpose = if hit.purpose.is_empty() {
            Some(Purpose::Undeclared)
        } else {
            Purpose::parse(hit.purpose)
        };
        let (Some(id), Some(kind), Some(purpose), true) = (id, kind, purpose, hit.delivery_id == delivery_id) else {
            return (Problem::BadHit, 0, 0);
        };
        (
            Problem::of_values(hit.ts, hit.log_id, hit.url_id, verdict),
            id,
            flags_of(kind, purpose),
        )
    }

    /// What the reference finds wrong with a well-formed hit's values (their ranges), in its order.
    fn of_values(ts: i64, log_id: i64, url_id: i64, verdict: i64) -> Problem {
        let within = |value: i64| (0..=MAX_VALUE).contains(&value);
        if !within(ts) {
            Problem::Ts
        } else if !within(log_id) {
            Problem::LogId
        } else if !within(url_id) {
            Problem::UrlId
        } else if !(-1..=MAX_VERDICT).contains(&verdict) {
            Problem::Verdict
        } else {
            Problem::None
        }
    }

    /// The reference's refusal of a hit for a problem with its values (`bad_hit` is the caller's: it names
    /// the id as given).
    fn error(self, entry: &Prepared) -> Error {
        let (what, value) = match self {
            Problem::None | Problem::BadHit => unreachable!("refused for its values only"),
            Problem::Ts => ("ts", i128::from(entry.ts)),
            Problem::LogId => ("log_id", i128::from(entry.log_id)),
            Problem::UrlId => ("url_id", i128::from(entry.url_id)),
            Problem::Verdict => ("verdict", i128::from(entry.verdict) + 1), // checked as stored, plus one
        };
        Error::new(Reason::OutOfRange, format!("{what} {value}"))
    }
}

/// The reference's `_check`: `value` within 0..=highest, or `out_of_range` naming it.
fn check(value: i128, highest: i64, what: &str) -> Result<(), Error> {
    if (0..=i128::from(highest)).contains(&value) {
        Ok(())
    } else {
        Err(Error::new(Reason::OutOfRange, format!("{what} {value}")))
    }
}

/// Distinct texts numbered as first met (in the order given), then renumbered in the body's
/// first-use order as the canonical pass uses them.
#[derive(Default)]
struct Texts<'a> {
    met: Vec<&'a str>,
    numbers: HashMap<&'a str, u32, RandomState>,
    /// By number met: its index in the body (u32::MAX until used).
    body_index: Vec<u32>,
    /// The body's texts, in first-use order.
    body: Vec<&'a str>,
}

impl<'a> Texts<'a> {
    fn number(&mut self, text: &'a str) -> u32 {
        let next = self.met.len() as u32;
        *self.numbers.entry(text).or_insert_with(|| {
            self.met.push(text);
            next
        })
    }

    /// The index in the body of the text met as `number`, given at its first use.
    fn used(&mut self, number: u32) -> u32 {
        if self.body_index.len() < self.met.len() {
            self.body_index.resize(self.met.len(), u32::MAX);
        }
        let slot = &mut self.body_index[number as usize];
        if *slot == u32::MAX {
            *slot = self.body.len() as u32;
            self.body.push(self.met[number as usize]);
        }
        *slot
    }
}

/// The hits' part of a body: `prepared` in canonical order (`order`, positions in `prepared`), each
/// checked as the reference checks it (`bad_hit(at)`: its refusal of a hit whose problem is `bad_hit`;
/// `id_text(at)`: the id it names in a `duplicate`), its texts numbered in the body as first used
/// (`used`). Also the hits' ids, which no correction may be.
fn hit_part(
    prepared: &[Prepared],
    order: impl ExactSizeIterator<Item = u32>,
    mut used: impl FnMut(u32) -> u32,
    bad_hit: impl Fn(u32) -> Error,
    id_text: impl Fn(u32) -> String,
) -> Result<(Vec<u8>, HashSet<u128, RandomState>), Error> {
    let mut hit_bytes: Vec<u8> = Vec::with_capacity(32 * order.len());
    let mut own: HashSet<u128, RandomState> = HashSet::with_capacity_and_hasher(order.len(), RandomState::default());
    for at in order {
        let entry = &prepared[at as usize];
        match entry.problem {
            Problem::None => {}
            Problem::BadHit => return Err(bad_hit(at)),
            problem => return Err(problem.error(entry)),
        }
        if !own.insert(entry.id) {
            return Err(Error::new(Reason::Duplicate, id_text(at)));
        }
        let timed = id_time(entry.id) != entry.ts;
        hit_bytes.push(entry.flags | if timed { TS_FOLLOWS } else { 0 });
        hit_bytes.extend_from_slice(&entry.id.to_be_bytes());
        if timed {
            varint(&mut hit_bytes, entry.ts as u64); // checked: 0..=2**53 - 1, as are the ids
        }
        varint(&mut hit_bytes, entry.log_id as u64);
        varint(&mut hit_bytes, entry.url_id as u64);
        varint(&mut hit_bytes, u64::from(used(entry.ua)));
        varint(&mut hit_bytes, u64::from(used(entry.ip)));
        varint(&mut hit_bytes, (entry.verdict + 1) as u64); // checked: 0..=2**53
    }
    Ok((hit_bytes, own))
}

/// A body's parts, checked, written after `out`: its texts in first-use order, its `hits` (and the bytes
/// `hit_part` wrote of them), corrections (ids sorted, with their verdicts) and counters (stat's and
/// field's index in the body's texts, non-zero delta, in canonical order).
fn write_body(
    out: &mut Vec<u8>,
    texts: &[&str],
    hits: usize,
    hit_bytes: &[u8],
    corrections: &[(u128, i64)],
    counters: &[(u32, u32, i64)],
) {
    let text_bytes: usize = texts.iter().map(|text| text.len() + 2).sum();
    out.reserve(24 + text_bytes + hit_bytes.len() + 20 * corrections.len() + 16 * counters.len());
    out.push(VERSION);
    varint(out, texts.len() as u64);
    for text in texts {
        varint(out, text.len() as u64);
        out.extend_from_slice(text.as_bytes());
    }
    varint(out, hits as u64);
    out.extend_from_slice(hit_bytes);
    varint(out, corrections.len() as u64);
    for &(id, verdict) in corrections {
        out.extend_from_slice(&id.to_be_bytes());
        varint(out, (verdict + 1) as u64); // checked: 0..=2**53
    }
    varint(out, counters.len() as u64);
    for &(stat, field, delta) in counters {
        varint(out, u64::from(stat));
        varint(out, u64::from(field));
        varint(out, ((delta << 1) ^ (delta >> 63)) as u64);
    }
}

/// The body of a run item of `delivery_id` (the reference's `encode`); counters with a delta of 0 are
/// left out. Refuses `bad_hit`, `duplicate` or `out_of_range` where the reference does: the first
/// refusal of the hits in canonical order, then of the corrections, then of the counters.
pub fn encode(
    delivery_id: &str,
    hits: &[(Hit<'_>, i64)],
    corrections: &[(&str, i64)],
    counters: &[Counter<'_>],
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    encode_into(&mut out, delivery_id, hits, corrections, counters)?;
    Ok(out)
}

/// [`encode`], appending to `out` (left as it was when refused).
pub fn encode_into(
    out: &mut Vec<u8>,
    delivery_id: &str,
    hits: &[(Hit<'_>, i64)],
    corrections: &[(&str, i64)],
    counters: &[Counter<'_>],
) -> Result<(), Error> {
    let mut texts = Texts::default();
    let prepared: Vec<Prepared> = hits
        .iter()
        .map(|(hit, verdict)| {
            let (problem, id, flags) = Problem::of(hit, *verdict, delivery_id);
            Prepared {
                id,
                ts: hit.ts,
                log_id: hit.log_id,
                url_id: hit.url_id,
                verdict: *verdict,
                ua: texts.number(hit.ua),
                ip: texts.number(hit.ip),
                flags,
                problem,
            }
        })
        .collect();
    // Canonical order: by (log id, ts, hit id as given), equal keys in the order given (Python's sort is
    // stable). The ids are compared as text: only ties of (log id, ts) read them.
    let mut order: Vec<(i64, i64, &str, u32)> = hits
        .iter()
        .enumerate()
        .map(|(at, (hit, _))| (hit.log_id, hit.ts, hit.hit_id, at as u32))
        .collect();
    order.sort_unstable();
    // The hits' part of the body, written as they are checked (their texts numbered as first used).
    let hit_id = |at: u32| hits[at as usize].0.hit_id.to_owned();
    let (hit_bytes, own) = hit_part(
        &prepared,
        order.iter().map(|entry| entry.3),
        |number| texts.used(number),
        |at| Error::new(Reason::BadHit, hit_id(at)),
        hit_id,
    )?;

    let mut corrected: Vec<(&str, i64)> = corrections.to_vec();
    corrected.sort_unstable();
    let mut correction_ids: Vec<(u128, i64)> = Vec::with_capacity(corrected.len());
    for (index, &(hit_id, verdict)) in corrected.iter().enumerate() {
        let Some(id) = logs::hex_number(hit_id, 32) else {
            return Err(Error::new(Reason::BadHit, hit_id.to_owned()));
        };
        check(i128::from(verdict) + 1, MAX_VERDICT + 1, "verdict")?;
        if own.contains(&id) || (index > 0 && corrected[index - 1].0 == hit_id) {
            return Err(Error::new(Reason::Duplicate, hit_id.to_owned()));
        }
        correction_ids.push((id, verdict));
    }
    let mut deltas: Vec<Counter<'_>> = counters.to_vec();
    deltas.sort_unstable();
    for (index, &(stat, field, delta)) in deltas.iter().enumerate() {
        if i64::try_from(delta).is_err() {
            return Err(Error::new(Reason::OutOfRange, format!("{stat} {field} {delta}")));
        }
        if index > 0 && (deltas[index - 1].0, deltas[index - 1].1) == (stat, field) {
            return Err(Error::new(Reason::Duplicate, format!("{stat} {field}")));
        }
    }
    let counter_entries: Vec<(u32, u32, i64)> = deltas
        .iter()
        .filter(|&&(_, _, delta)| delta != 0)
        .map(|&(stat, field, delta)| {
            let stat = texts.number(stat);
            let field = texts.number(field);
            (texts.used(stat), texts.used(field), delta as i64) // checked: within i64
        })
        .collect();
    write_body(
        out,
        &texts.body,
        hits.len(),
        &hit_bytes,
        &correction_ids,
        &counter_entries,
    );
    Ok(())
}

/// A hit as a workflow run holds it, for [`encode_known`]: its id as a number, kind and purpose known, its
/// agent and address by the caller's numbers for texts (one number a text: two numbers are never the same
/// text, which the body writes once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownHit {
    pub id: u128,
    pub ts: i64,
    pub kind: Kind,
    pub purpose: Purpose,
    pub log_id: i64,
    pub url_id: i64,
    pub ua: u32,
    pub ip: u32,
    pub verdict: i64,
}

/// [`encode_known`]'s scratch space, reused from body to body: the body's index of each text number.
#[derive(Default)]
pub struct KnownTexts<'a> {
    /// By text number: (the body it was last used in, its index there).
    slots: Vec<(u32, u32)>,
    body: u32,
    texts: Vec<&'a str>,
}

/// [`encode_into`] of hits, corrections and counters (stat's and field's text numbers, delta) that a run
/// holds already decoded: the same body for the same content (each id spelled as its 32 lower-case hex
/// digits, each text number as `text` spells it), the same refusals (never `bad_hit`: an id, kind and
/// purpose are well formed by construction, and the hits are the delivery's). Texts are read once a body
/// (and to order counters), ids never: a run writes a body per shard it touches, hundreds of thousands of
/// hits (`chalicelib/tracking/workflow.py`).
pub fn encode_known<'a>(
    out: &mut Vec<u8>,
    hits: &[KnownHit],
    corrections: &[(u128, i64)],
    counters: &[(u32, u32, i64)],
    text: impl Fn(u32) -> &'a str,
    scratch: &mut KnownTexts<'a>,
) -> Result<(), Error> {
    let prepared: Vec<Prepared> = hits
        .iter()
        .map(|hit| Prepared {
            id: hit.id,
            ts: hit.ts,
            log_id: hit.log_id,
            url_id: hit.url_id,
            verdict: hit.verdict,
            ua: hit.ua,
            ip: hit.ip,
            flags: flags_of(hit.kind, hit.purpose),
            problem: Problem::of_values(hit.ts, hit.log_id, hit.url_id, hit.verdict),
        })
        .collect();
    // Canonical order: fixed-length lower-case hex sorts as its number.
    let mut order: Vec<(i64, i64, u128, u32)> = hits
        .iter()
        .enumerate()
        .map(|(at, hit)| (hit.log_id, hit.ts, hit.id, at as u32))
        .collect();
    order.sort_unstable();
    scratch.body = scratch.body.wrapping_add(1);
    if scratch.body == 0 {
        scratch.slots.iter_mut().for_each(|slot| *slot = (0, 0)); // a stamp wrapped: no slot may look used
        scratch.body = 1;
    }
    scratch.texts.clear();
    let KnownTexts { slots, body, texts } = scratch;
    let mut used = |number: u32| {
        let at = number as usize;
        if slots.len() <= at {
            slots.resize(at + 1, (0, 0));
        }
        if slots[at].0 != *body {
            slots[at] = (*body, texts.len() as u32);
            texts.push(text(number));
        }
        slots[at].1
    };
    let id_text = |at: u32| logs::hex32(prepared[at as usize].id);
    let (hit_bytes, own) = hit_part(
        &prepared,
        order.iter().map(|entry| entry.3),
        &mut used,
        |_| unreachable!("a known hit is well formed"),
        id_text,
    )?;
    let mut corrected = corrections.to_vec();
    corrected.sort_unstable();
    for (index, &(id, verdict)) in corrected.iter().enumerate() {
        check(i128::from(verdict) + 1, MAX_VERDICT + 1, "verdict")?;
        if own.contains(&id) || (index > 0 && corrected[index - 1].0 == id) {
            return Err(Error::new(Reason::Duplicate, logs::hex32(id)));
        }
    }
    // Counters in canonical order: by their texts (deltas are within i64: none out of range).
    let mut deltas = counters.to_vec();
    deltas.sort_unstable_by(|a, b| (text(a.0), text(a.1), a.2).cmp(&(text(b.0), text(b.1), b.2)));
    for pair in deltas.windows(2) {
        if (text(pair[0].0), text(pair[0].1)) == (text(pair[1].0), text(pair[1].1)) {
            return Err(Error::new(
                Reason::Duplicate,
                format!("{} {}", text(pair[1].0), text(pair[1].1)),
            ));
        }
    }
    let counter_entries: Vec<(u32, u32, i64)> = deltas
        .iter()
        .filter(|&&(_, _, delta)| delta != 0)
        .map(|&(stat, field, delta)| (used(stat), used(field), delta))
        .collect();
    write_body(out, texts, hits.len(), &hit_bytes, &corrected, &counter_entries);
    Ok(())
}

/// A body too large that holds one entry: the reference's `split` refuses it (a ValueError).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SplitError {
    Body(Error),
    /// The size of the body of one entry, past the limit.
    OneEntry(usize),
}

/// The reference's `split`: `body` as bodies of at most `limit` bytes each (itself when it fits), its
/// hits, then corrections, then counters taken as one sequence and halved (the first half `total / 2`
/// entries) until each half fits, so the parts decoded in order hold its content in order. Decoded once;
/// each part encoded from the decoded entries (the reference decodes each part it halves again: the same
/// entries). Refuses a body `decode` refuses, and a part of one entry past the limit.
pub fn split(body: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, SplitError> {
    if body.len() <= limit {
        return Ok(vec![body.to_vec()]);
    }
    let item = decode(body).map_err(SplitError::Body)?;
    let hits: Vec<KnownHit> = item
        .hits
        .iter()
        .map(|hit| KnownHit {
            id: hit.hit_id,
            ts: hit.ts,
            kind: hit.kind,
            purpose: hit.purpose,
            log_id: hit.log_id,
            url_id: hit.url_id,
            ua: hit.ua,
            ip: hit.ip,
            verdict: hit.verdict,
        })
        .collect();
    let counters: Vec<(u32, u32, i64)> = item
        .counters
        .iter()
        .map(|counter| (counter.stat, counter.field, counter.delta))
        .collect();
    let (corrections_from, counters_from) = (hits.len(), hits.len() + item.corrections.len());
    let total = counters_from + counters.len();
    let mut scratch = KnownTexts::default();
    // The entries from `start` to `end`, encoded (a decoded body's texts are distinct: a number a text).
    let mut part = |start: usize, end: usize| {
        let slice = |from: usize, to: usize| start.clamp(from, to) - from..end.clamp(from, to) - from;
        let mut out = Vec::new();
        encode_known(
            &mut out,
            &hits[slice(0, corrections_from)],
            &item.corrections[slice(corrections_from, counters_from)],
            &counters[slice(counters_from, total)],
            |number| item.text(number),
            &mut scratch,
        )
        .expect("a decoded body's entries encode");
        out
    };
    let mut parts = Vec::new();
    halve(body.len(), 0, total, limit, &mut part, &mut parts)?;
    Ok(parts)
}

/// The entries from `start` to `end` (their body `size` bytes) into parts of at most `limit` bytes.
fn halve(
    size: usize,
    start: usize,
    end: usize,
    limit: usize,
    part: &mut impl FnMut(usize, usize) -> Vec<u8>,
    parts: &mut Vec<Vec<u8>>,
) -> Result<(), SplitError> {
    if end - start < 2 {
        return Err(SplitError::OneEntry(size));
    }
    let half = start + (end - start) / 2;
    for (from, to) in [(start, half), (half, end)] {
        let body = part(from, to);
        if body.len() <= limit {
            parts.push(body);
        } else {
            halve(body.len(), from, to, limit, part, parts)?;
        }
    }
    Ok(())
}

/// A cursor over a body that refuses with the spec's reasons (the reference's `_Reader`).
struct Reader<'a> {
    body: &'a [u8],
    at: usize,
    texts: Vec<&'a str>,
    /// Texts met so far: the next new index must be this one.
    used: usize,
}

impl<'a> Reader<'a> {
    fn truncated(&self) -> Error {
        Error::new(Reason::Truncated, format!("at byte {}", self.at))
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, Error> {
        match self.body.get(self.at) {
            Some(&byte) => {
                self.at += 1;
                Ok(byte)
            }
            None => Err(self.truncated()),
        }
    }

    #[inline]
    fn take(&mut self, size: u64) -> Result<&'a [u8], Error> {
        let remaining = self.body.len() - self.at;
        if size > remaining as u64 {
            return Err(self.truncated());
        }
        let taken = &self.body[self.at..self.at + size as usize];
        self.at += size as usize;
        Ok(taken)
    }

    fn id(&mut self) -> Result<u128, Error> {
        let bytes = self.take(ID_BYTES as u64)?;
        Ok(u128::from_be_bytes(bytes.try_into().expect("16 bytes")))
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, Error> {
        let first = self.byte()?;
        if first & 0x80 == 0 {
            return Ok(u64::from(first));
        }
        let mut value = u64::from(first & 0x7F);
        for index in 1..10 {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7F) << (7 * index);
            if byte & 0x80 == 0 {
                // Overlong (a last byte of 0), or past 2**64 (the tenth byte holds bit 63 only).
                if byte == 0 || (index == 9 && byte > 1) {
                    break;
                }
                return Ok(value);
            }
        }
        Err(Error::new(Reason::BadVarint, format!("at byte {}", self.at - 1)))
    }

    fn bounded(&mut self, highest: i64, what: &str) -> Result<i64, Error> {
        let value = self.varint()?;
        if value > highest as u64 {
            return Err(Error::new(Reason::OutOfRange, format!("{what} {value}")));
        }
        Ok(value as i64)
    }

    fn text(&mut self) -> Result<u32, Error> {
        let index = self.varint()?;
        if index >= self.texts.len() as u64 {
            return Err(Error::new(Reason::BadIndex, index.to_string()));
        }
        let index = index as usize;
        if index == self.used {
            self.used += 1;
        } else if index > self.used {
            return Err(Error::new(
                Reason::NotCanonical,
                format!("text {index} before text {}", self.used),
            ));
        }
        Ok(index as u32)
    }

    /// Room for `count` entries of at least `size` bytes each, as far as the body can hold them.
    fn capacity(&self, count: u64, size: usize) -> usize {
        count.min(((self.body.len() - self.at) / size) as u64) as usize
    }
}

/// The hits, corrections and counters of a run item's body (the reference's `decode`), or the first
/// refusal reading from the front (docs/spec/run-items.md, "Errors").
pub fn decode(body: &[u8]) -> Result<RunItem<'_>, Error> {
    if body.first() != Some(&VERSION) {
        return Err(Error::new(Reason::BadVersion, String::new()));
    }
    let mut reader = Reader {
        body,
        at: 1,
        texts: Vec::new(),
        used: 0,
    };
    let count = reader.varint()?;
    reader.texts.reserve(reader.capacity(count, 1));
    let mut texts_seen: HashSet<&str, RandomState> =
        HashSet::with_capacity_and_hasher(reader.texts.capacity(), RandomState::default());
    for _ in 0..count {
        let length = reader.varint()?;
        let data = reader.take(length)?;
        let Ok(text) = std::str::from_utf8(data) else {
            return Err(Error::new(Reason::BadText, format!("text {}", reader.texts.len())));
        };
        if !texts_seen.insert(text) {
            return Err(Error::new(
                Reason::NotCanonical,
                format!("text {} repeated", reader.texts.len()),
            ));
        }
        reader.texts.push(text);
    }
    let count = reader.varint()?;
    // A hit takes 22 bytes at least: flags, id, and five one-byte varints.
    let mut hits: Vec<DecodedHit> = Vec::with_capacity(reader.capacity(count, 1 + ID_BYTES + 5));
    let mut seen: HashSet<u128, RandomState> =
        HashSet::with_capacity_and_hasher(hits.capacity(), RandomState::default());
    for _ in 0..count {
        let flags = reader.byte()?;
        if flags & RESERVED_FLAGS != 0 {
            return Err(Error::new(Reason::BadFlags, format!("{flags:#04x}")));
        }
        let hit_id = reader.id()?;
        let mut ts = id_time(hit_id);
        if flags & TS_FOLLOWS != 0 {
            let explicit = reader.bounded(MAX_VALUE, "ts")?;
            if explicit == ts {
                return Err(Error::new(
                    Reason::NotCanonical,
                    format!("{}: ts is the id's", logs::hex32(hit_id)),
                ));
            }
            ts = explicit;
        }
        let log_id = reader.bounded(MAX_VALUE, "log_id")?;
        let url_id = reader.bounded(MAX_VALUE, "url_id")?;
        let ua = reader.text()?;
        let ip = reader.text()?;
        let verdict = reader.bounded(MAX_VERDICT + 1, "verdict")? - 1;
        if let Some(last) = hits.last() {
            if (last.log_id, last.ts, last.hit_id) >= (log_id, ts, hit_id) {
                return Err(Error::new(
                    Reason::NotCanonical,
                    format!("hit {} out of order", logs::hex32(hit_id)),
                ));
            }
        }
        if !seen.insert(hit_id) {
            return Err(Error::new(
                Reason::NotCanonical,
                format!("hit {} repeated", logs::hex32(hit_id)),
            ));
        }
        hits.push(DecodedHit {
            hit_id,
            ts,
            kind: Kind::ALL[usize::from(flags & 3)],
            purpose: match (flags >> 2) & 3 {
                0 => Purpose::Undeclared,
                declared => Purpose::DECLARED[usize::from(declared - 1)],
            },
            log_id,
            url_id,
            ua,
            ip,
            verdict,
        });
    }
    let count = reader.varint()?;
    let mut corrections: Vec<(u128, i64)> = Vec::with_capacity(reader.capacity(count, ID_BYTES + 1));
    for _ in 0..count {
        let hit_id = reader.id()?;
        let verdict = reader.bounded(MAX_VERDICT + 1, "verdict")? - 1;
        if corrections.last().is_some_and(|&(last, _)| last >= hit_id) || seen.contains(&hit_id) {
            return Err(Error::new(
                Reason::NotCanonical,
                format!("correction {}", logs::hex32(hit_id)),
            ));
        }
        corrections.push((hit_id, verdict));
    }
    let count = reader.varint()?;
    let mut counters: Vec<DecodedCounter> = Vec::with_capacity(reader.capacity(count, 3));
    for _ in 0..count {
        let stat = reader.text()?;
        let field = reader.text()?;
        let encoded = reader.varint()?;
        let delta = (encoded >> 1) as i64 ^ -((encoded & 1) as i64);
        let texts = &reader.texts;
        let key = (texts[stat as usize], texts[field as usize]);
        if delta == 0
            || counters
                .last()
                .is_some_and(|last| (texts[last.stat as usize], texts[last.field as usize]) >= key)
        {
            return Err(Error::new(Reason::NotCanonical, format!("counter {} {}", key.0, key.1)));
        }
        counters.push(DecodedCounter { stat, field, delta });
    }
    if reader.at != body.len() {
        return Err(Error::new(
            Reason::TrailingBytes,
            format!("{} bytes", body.len() - reader.at),
        ));
    }
    if reader.used != reader.texts.len() {
        return Err(Error::new(
            Reason::NotCanonical,
            format!("{} texts unused", reader.texts.len() - reader.used),
        ));
    }
    Ok(RunItem {
        texts: reader.texts,
        hits,
        corrections,
        counters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELIVERY: &str = "00112233445566ff";
    /// 2025-03-01T10:00:00Z in ms, the time of the ids below.
    const T0: i64 = 1_740_823_200_000;

    fn id(serial: u64) -> String {
        format!("{T0:012x}{serial:020x}")
    }

    fn hit<'a>(hit_id: &'a str, log_id: i64, ua: &'a str, ip: &'a str) -> Hit<'a> {
        Hit {
            hit_id,
            ts: T0,
            kind: "click",
            delivery_id: DELIVERY,
            log_id,
            url_id: 4,
            ua,
            ip,
            purpose: "",
        }
    }

    fn reason(result: Result<impl fmt::Debug, Error>) -> Reason {
        result.expect_err("refused").reason
    }

    fn message<T: fmt::Debug>(result: Result<T, Error>) -> String {
        result.expect_err("refused").to_string()
    }

    /// A decoded item written again: what `encode` makes of `decode`'s answer.
    fn reencode(item: &RunItem<'_>) -> Result<Vec<u8>, Error> {
        let ids: Vec<String> = item.hits.iter().map(|hit| logs::hex32(hit.hit_id)).collect();
        let hits: Vec<(Hit<'_>, i64)> = item
            .hits
            .iter()
            .zip(&ids)
            .map(|(hit, hit_id)| {
                let fields = Hit {
                    hit_id,
                    ts: hit.ts,
                    kind: hit.kind.as_str(),
                    delivery_id: DELIVERY,
                    log_id: hit.log_id,
                    url_id: hit.url_id,
                    ua: item.text(hit.ua),
                    ip: item.text(hit.ip),
                    purpose: hit.purpose.as_str(),
                };
                (fields, hit.verdict)
            })
            .collect();
        let correction_ids: Vec<String> = item.corrections.iter().map(|&(id, _)| logs::hex32(id)).collect();
        let corrections: Vec<(&str, i64)> = correction_ids
            .iter()
            .zip(&item.corrections)
            .map(|(id, &(_, verdict))| (id.as_str(), verdict))
            .collect();
        let counters: Vec<Counter<'_>> = item
            .counters
            .iter()
            .map(|counter| {
                (
                    item.text(counter.stat),
                    item.text(counter.field),
                    i128::from(counter.delta),
                )
            })
            .collect();
        encode(DELIVERY, &hits, &corrections, &counters)
    }

    /// `encode_known` of hits given as `encode` takes them (texts numbered by first use, ids read), and of
    /// corrections; the scratch space reused from call to call.
    fn encoded_known<'a>(
        hits: &[(Hit<'a>, i64)],
        corrections: &[(&str, i64)],
        counters: &[(&'a str, &'a str, i64)],
        texts: &mut Vec<&'a str>,
        scratch: &mut KnownTexts<'a>,
    ) -> Result<Vec<u8>, Error> {
        let mut number = |text: &'a str| match texts.iter().position(|known| *known == text) {
            Some(at) => at as u32,
            None => {
                texts.push(text);
                (texts.len() - 1) as u32
            }
        };
        let known: Vec<KnownHit> = hits
            .iter()
            .map(|(hit, verdict)| KnownHit {
                id: logs::hex_number(hit.hit_id, 32).expect("a hit path id"),
                ts: hit.ts,
                kind: Kind::parse(hit.kind).expect("a kind"),
                purpose: Purpose::parse(hit.purpose).unwrap_or(Purpose::Undeclared),
                log_id: hit.log_id,
                url_id: hit.url_id,
                ua: number(hit.ua),
                ip: number(hit.ip),
                verdict: *verdict,
            })
            .collect();
        let corrected: Vec<(u128, i64)> = corrections
            .iter()
            .map(|&(hit_id, verdict)| (logs::hex_number(hit_id, 32).expect("an id"), verdict))
            .collect();
        let deltas: Vec<(u32, u32, i64)> = counters
            .iter()
            .map(|&(stat, field, delta)| (number(stat), number(field), delta))
            .collect();
        let texts: &[&'a str] = texts;
        let mut out = vec![9];
        match encode_known(&mut out, &known, &corrected, &deltas, |at| texts[at as usize], scratch) {
            Ok(()) => Ok(out[1..].to_vec()),
            Err(error) => {
                assert_eq!(out, [9], "left as it was");
                Err(error)
            }
        }
    }

    #[test]
    fn known_hits_encode_as_given_ones() {
        let ids: Vec<String> = (0..6).map(id).collect();
        let timed = Hit {
            ts: T0 + 5,
            purpose: "prefetch",
            kind: "open",
            ..hit(&ids[4], 2, "ip and agent", "ua")
        };
        /// An item's hits (with verdicts), corrections and counters.
        type Content<'a> = (Vec<(Hit<'a>, i64)>, Vec<(&'a str, i64)>, Vec<(&'a str, &'a str, i64)>);
        let counted = vec![
            ("url#000004", "total", 2),
            ("indicators", "hits", -3),
            ("ua", "ua", 0),
            ("ua", "b", 1),
        ];
        let contents: Vec<Content<'_>> = vec![
            (vec![], vec![], vec![]),
            (
                vec![
                    (hit(&ids[3], 9, "ua", "203.0.113.0"), 0),
                    (hit(&ids[1], 2, "ua", "ip and agent"), 256),
                    (timed, -1),
                    (hit(&ids[0], 2, "203.0.113.0", ""), 3),
                ],
                vec![(&ids[5], 16), (&ids[2], -1)],
                counted.clone(),
            ),
            (vec![], vec![], counted.clone()),
            (
                vec![(hit(&ids[1], 2, "a", "b"), 0), (hit(&ids[1], 3, "a", "b"), 0)],
                vec![],
                vec![],
            ), // duplicate
            (vec![(hit(&ids[1], 2, "a", "b"), MAX_VERDICT + 1)], vec![], vec![]),
            (
                vec![(
                    Hit {
                        ts: -1,
                        ..hit(&ids[1], 2, "a", "b")
                    },
                    0,
                )],
                vec![],
                vec![],
            ),
            (vec![(hit(&ids[1], MAX_VALUE + 1, "a", "b"), 0)], vec![], vec![]),
            (vec![(hit(&ids[1], 2, "a", "b"), 0)], vec![(&ids[1], 4)], vec![]), // a correction of its own hit
            (vec![], vec![(&ids[2], 4), (&ids[2], 5)], vec![]),
            (vec![], vec![(&ids[2], -2)], vec![]),
            (
                vec![],
                vec![],
                vec![("ua", "b", 1), ("indicators", "hits", 0), ("ua", "b", 0)],
            ), // a counter twice
        ];
        let mut scratch = KnownTexts::default();
        for (hits, corrections, counters) in &contents {
            let mut texts = Vec::new();
            let given: Vec<Counter<'_>> = counters
                .iter()
                .map(|&(stat, field, delta)| (stat, field, i128::from(delta)))
                .collect();
            assert_eq!(
                encoded_known(hits, corrections, counters, &mut texts, &mut scratch),
                encode(DELIVERY, hits, corrections, &given),
                "{hits:?} {corrections:?} {counters:?}"
            );
        }
    }

    /// A decoded item's entries, each as the content it is: (hits, corrections, counters) of one entry.
    type Entry = (
        Vec<(String, DecodedHit, String, String)>,
        Vec<(String, i64)>,
        Vec<(String, String, i64)>,
    );

    fn entries_of(item: &RunItem<'_>) -> Vec<Entry> {
        let hits = item.hits.iter().map(|hit| {
            let texts = (item.text(hit.ua).to_owned(), item.text(hit.ip).to_owned());
            (vec![(logs::hex32(hit.hit_id), *hit, texts.0, texts.1)], vec![], vec![])
        });
        let corrections = item
            .corrections
            .iter()
            .map(|&(id, verdict)| (vec![], vec![(logs::hex32(id), verdict)], vec![]));
        let counters = item.counters.iter().map(|counter| {
            let texts = (item.text(counter.stat).to_owned(), item.text(counter.field).to_owned());
            (vec![], vec![], vec![(texts.0, texts.1, counter.delta)])
        });
        hits.chain(corrections).chain(counters).collect()
    }

    fn encode_entries(entries: &[Entry]) -> Vec<u8> {
        let hits: Vec<(Hit<'_>, i64)> = entries
            .iter()
            .flat_map(|entry| &entry.0)
            .map(|(hit_id, hit, ua, ip)| {
                let fields = Hit {
                    hit_id,
                    ts: hit.ts,
                    kind: hit.kind.as_str(),
                    delivery_id: DELIVERY,
                    log_id: hit.log_id,
                    url_id: hit.url_id,
                    ua,
                    ip,
                    purpose: hit.purpose.as_str(),
                };
                (fields, hit.verdict)
            })
            .collect();
        let corrections: Vec<(&str, i64)> = entries
            .iter()
            .flat_map(|entry| &entry.1)
            .map(|(id, verdict)| (id.as_str(), *verdict))
            .collect();
        let counters: Vec<Counter<'_>> = entries
            .iter()
            .flat_map(|entry| &entry.2)
            .map(|(stat, field, delta)| (stat.as_str(), field.as_str(), i128::from(*delta)))
            .collect();
        encode(DELIVERY, &hits, &corrections, &counters).expect("decoded entries encode")
    }

    /// The reference's `split` as it is written: decode, halve, encode each half, split it again.
    fn split_as_the_reference(body: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, SplitError> {
        if body.len() <= limit {
            return Ok(vec![body.to_vec()]);
        }
        let mut entries = entries_of(&decode(body).map_err(SplitError::Body)?);
        let total = entries.len();
        if total < 2 {
            return Err(SplitError::OneEntry(body.len()));
        }
        let second = entries.split_off(total / 2);
        let mut parts = Vec::new();
        for half in [entries, second] {
            parts.extend(split_as_the_reference(&encode_entries(&half), limit)?);
        }
        Ok(parts)
    }

    #[test]
    fn split_halves_as_the_reference_does() {
        let ids: Vec<String> = (0..40).map(id).collect();
        let agents: Vec<String> = (0..40).map(|at| format!("agent {}", "x".repeat(at))).collect();
        let hits: Vec<(Hit<'_>, i64)> = ids
            .iter()
            .zip(&agents)
            .enumerate()
            .map(|(at, (hit_id, ua))| (hit(hit_id, (at % 7) as i64, ua, "203.0.113.0"), at as i64 - 1))
            .collect();
        let corrections: Vec<(&str, i64)> = (0..5).map(|at| (ids[at].as_str(), 3)).collect();
        let stats: Vec<String> = (0..30).map(|at| format!("url#{at:06}")).collect();
        let counters: Vec<Counter<'_>> = stats.iter().map(|stat| (stat.as_str(), "total", 1)).collect();
        let mut split_in_parts = 0;
        for (hits, corrections, counters) in [
            (&hits[..], &[][..], &counters[..]),
            (&hits[5..], &corrections[..], &counters[..3]),
            (&hits[..1], &[][..], &[][..]),
            (&[][..], &[][..], &counters[..]),
        ] {
            let body = encode(DELIVERY, hits, corrections, counters).expect("valid");
            for limit in [0, 40, 90, 200, 333, 1000, body.len() - 1, body.len(), 100_000] {
                let parts = split(&body, limit);
                assert_eq!(parts, split_as_the_reference(&body, limit), "limit {limit}");
                if let Ok(parts) = parts {
                    assert!(parts.iter().all(|part| part.len() <= limit));
                    assert_eq!(parts.len() == 1, body.len() <= limit);
                    split_in_parts += usize::from(parts.len() > 2);
                }
            }
        }
        assert!(split_in_parts >= 4, "{split_in_parts}");
        let refused = Error::new(Reason::BadVersion, String::new());
        assert_eq!(split(b"\x02", 0), Err(SplitError::Body(refused)));
    }

    fn read_varint(bytes: &[u8]) -> Result<u64, Error> {
        let mut reader = Reader {
            body: bytes,
            at: 0,
            texts: Vec::new(),
            used: 0,
        };
        let value = reader.varint()?;
        assert_eq!(reader.at, bytes.len(), "the whole varint is read");
        Ok(value)
    }

    #[test]
    fn varints_are_leb128_in_the_fewest_bytes() {
        for value in [
            0,
            1,
            0x7F,
            0x80,
            0x3FFF,
            0x4000,
            1 << 53,
            (1 << 63) - 1,
            1 << 63,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            varint(&mut out, value);
            assert_eq!(out.len(), (64 - value.leading_zeros() as usize).max(1).div_ceil(7));
            assert_eq!(read_varint(&out), Ok(value));
        }
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xAC, 0x02]);
        assert_eq!(
            read_varint(&[0xFF; 9].iter().copied().chain([0x01]).collect::<Vec<_>>()),
            Ok(u64::MAX)
        );
        let refused = |bytes: &[u8]| read_varint(bytes).map_err(|error| (error.reason, error.detail));
        let bad = |at: usize| Err((Reason::BadVarint, format!("at byte {at}")));
        assert_eq!(refused(&[0x80, 0x00]), bad(1)); // overlong 0
        assert_eq!(refused(&[0x81, 0x80, 0x00]), bad(2)); // overlong 1
        assert_eq!(refused(&[0xFF; 10]), bad(9)); // 11 bytes and more
        assert_eq!(
            refused(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02]),
            bad(9)
        ); // 2**64
        assert_eq!(
            refused(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7F]),
            bad(9)
        );
        assert_eq!(refused(&[0x80, 0x80]), Err((Reason::Truncated, "at byte 2".to_owned())));
        assert_eq!(refused(&[]), Err((Reason::Truncated, "at byte 0".to_owned())));
    }

    #[test]
    fn an_item_round_trips_in_canonical_order_with_texts_in_first_use_order() {
        let ids: Vec<String> = (0..5).map(id).collect();
        let mut timed = hit(&ids[4], 1, "ua-b", "ip-a");
        timed.ts = 12; // not the id's time: a ts field follows
        timed.kind = "mirror";
        timed.purpose = "preview";
        let hits = vec![
            (hit(&ids[3], 2, "ua-a", "ip-b"), 7),
            (hit(&ids[2], 1, "ua-b", "ip-a"), -1),
            (timed, 1 << 8),
            (hit(&ids[1], 1, "ua-a", "ip-a"), 0),
        ];
        let corrections = [(ids[0].as_str(), 3), ("ffffffffffffffffffffffffffffffff", -1)];
        let counters = [
            ("url#000004", "clicks", 2),
            ("indicators", "opens", 0),
            ("indicators", "hits", -3),
            ("ua-a", "hits", i128::from(i64::MIN)),
        ];
        let body = encode(DELIVERY, &hits, &corrections, &counters).expect("encoded");
        let item = decode(&body).expect("decoded");
        // Hits by (log id, ts, id): the timed hit (ts 12) first, then ids 1 and 2, then log 2.
        let order: Vec<(i64, i64, u128)> = item.hits.iter().map(|hit| (hit.log_id, hit.ts, hit.hit_id)).collect();
        let value = |serial: usize| logs::hex_number(&ids[serial], 32).expect("hex");
        assert_eq!(
            order,
            [
                (1, 12, value(4)),
                (1, T0, value(1)),
                (1, T0, value(2)),
                (2, T0, value(3))
            ]
        );
        assert_eq!(
            (item.hits[0].kind, item.hits[0].purpose, item.hits[0].verdict),
            (Kind::Mirror, Purpose::Preview, 1 << 8)
        );
        assert_eq!(
            item.hits.iter().map(|hit| hit.verdict).collect::<Vec<_>>(),
            [1 << 8, 0, -1, 7]
        );
        // Each hit's agent then address in hit order, then each counter's stat then field.
        assert_eq!(
            item.texts,
            [
                "ua-b",
                "ip-a",
                "ua-a",
                "ip-b",
                "indicators",
                "hits",
                "url#000004",
                "clicks"
            ]
        );
        assert_eq!(item.corrections, [(value(0), 3), (u128::MAX, -1)]);
        let counters: Vec<(&str, &str, i64)> = item
            .counters
            .iter()
            .map(|counter| (item.text(counter.stat), item.text(counter.field), counter.delta))
            .collect();
        assert_eq!(
            counters,
            [
                ("indicators", "hits", -3),
                ("ua-a", "hits", i64::MIN),
                ("url#000004", "clicks", 2)
            ]
        );
        assert_eq!(reencode(&item).as_ref(), Ok(&body));
        // Only the timed hit carries a ts: 6 bytes more than at its id's time.
        let untimed = [(hit(&ids[4], 1, "ua-b", "ip-a"), 0)];
        let mut timed_only = untimed;
        timed_only[0].0.ts = T0 + 1;
        let size = |hits: &[(Hit<'_>, i64)]| encode(DELIVERY, hits, &[], &[]).expect("encoded").len();
        assert_eq!(size(&timed_only) - size(&untimed), 6);
    }

    #[test]
    fn an_empty_item_is_five_bytes() {
        let body = encode(DELIVERY, &[], &[], &[("s", "f", 0)]).expect("encoded");
        assert_eq!(body, [1, 0, 0, 0, 0]);
        assert_eq!(decode(&body), Ok(RunItem::default()));
    }

    #[test]
    fn encode_refuses_as_the_reference_in_canonical_order() {
        let ids: Vec<String> = (0..4).map(id).collect();
        let base = hit(&ids[1], 1, "a", "b");
        let bad = |edit: fn(&mut Hit<'_>)| {
            let mut hit = base;
            edit(&mut hit);
            reason(encode(DELIVERY, &[(hit, 0)], &[], &[]))
        };
        assert_eq!(bad(|hit| hit.delivery_id = "0a0b0c0d0e0f1011"), Reason::BadHit);
        assert_eq!(
            bad(|hit| hit.hit_id = "0195512601000000000000000000000A"),
            Reason::BadHit
        );
        assert_eq!(bad(|hit| hit.hit_id = "019551260100000000000000000000"), Reason::BadHit);
        assert_eq!(bad(|hit| hit.kind = "view"), Reason::BadHit);
        assert_eq!(bad(|hit| hit.purpose = "later"), Reason::BadHit);
        assert_eq!(bad(|hit| hit.ts = -1), Reason::OutOfRange);
        assert_eq!(bad(|hit| hit.log_id = MAX_VALUE + 1), Reason::OutOfRange);
        assert_eq!(bad(|hit| hit.url_id = i64::MIN), Reason::OutOfRange);
        assert_eq!(reason(encode(DELIVERY, &[(base, -2)], &[], &[])), Reason::OutOfRange);
        assert_eq!(
            reason(encode(DELIVERY, &[(base, MAX_VERDICT + 1)], &[], &[])),
            Reason::OutOfRange
        );
        assert_eq!(
            message(encode(DELIVERY, &[(base, i64::MAX)], &[], &[])),
            "out_of_range: verdict 9223372036854775808"
        );
        assert!(encode(DELIVERY, &[(base, MAX_VERDICT)], &[], &[]).is_ok());

        // The first refusal in canonical order: a repeated id met before a bad hit that sorts after it...
        let mut later = hit(&ids[2], 3, "a", "b");
        later.kind = "view";
        let twice = [(later, 0), (base, 0), (hit(&ids[1], 2, "a", "b"), 0)];
        assert_eq!(
            message(encode(DELIVERY, &twice, &[], &[])),
            format!("duplicate: {}", ids[1])
        );
        // ... and, of two equal keys, the one given first checked first (a stable sort).
        let mut first = base;
        first.kind = "view";
        assert_eq!(
            reason(encode(DELIVERY, &[(first, 0), (base, -5)], &[], &[])),
            Reason::BadHit
        );
        assert_eq!(
            reason(encode(DELIVERY, &[(base, -5), (first, 0)], &[], &[])),
            Reason::OutOfRange
        );
        assert_eq!(
            reason(encode(DELIVERY, &[(base, 0), (first, 0)], &[], &[])),
            Reason::BadHit
        );
        assert_eq!(
            reason(encode(DELIVERY, &[(base, 0), (base, 0)], &[], &[])),
            Reason::Duplicate
        );

        // Corrections, by (id, verdict): a bad verdict sorted first is out of range before the repeat.
        assert_eq!(
            reason(encode(DELIVERY, &[], &[(&ids[0], 0), (&ids[0], -5)], &[])),
            Reason::OutOfRange
        );
        assert_eq!(
            reason(encode(DELIVERY, &[], &[(&ids[0], 0), (&ids[0], 1)], &[])),
            Reason::Duplicate
        );
        assert_eq!(reason(encode(DELIVERY, &[], &[("x", 0)], &[])), Reason::BadHit);
        assert_eq!(
            reason(encode(DELIVERY, &[(base, 0)], &[(&ids[1], 1)], &[])),
            Reason::Duplicate
        );
        // Hits are checked before corrections, corrections before counters.
        let all_bad = encode(DELIVERY, &[(first, 0)], &[("x", 0)], &[("s", "f", 1 << 64)]);
        assert_eq!(reason(all_bad), Reason::BadHit);
        assert_eq!(
            reason(encode(DELIVERY, &[], &[("x", 0)], &[("s", "f", 1 << 64)])),
            Reason::BadHit
        );

        // Counters, by (stat, field, delta): the smaller delta first, so past 64 bits is out of range.
        let past = i128::from(i64::MAX) + 1;
        assert_eq!(
            reason(encode(DELIVERY, &[], &[], &[("s", "f", past), ("s", "f", 1)])),
            Reason::OutOfRange
        );
        assert_eq!(
            reason(encode(DELIVERY, &[], &[], &[("s", "f", 1), ("s", "f", 0)])),
            Reason::Duplicate
        );
        assert_eq!(
            message(encode(DELIVERY, &[], &[], &[("s", "f", -past - 1)])),
            format!("out_of_range: s f {}", -past - 1)
        );
        assert!(encode(DELIVERY, &[], &[], &[("s", "f", -past)]).is_ok());
    }

    /// A body put together by hand: texts, then hits, corrections and counters as raw bytes.
    fn raw(texts: &[&[u8]], hits: &[Vec<u8>], corrections: &[Vec<u8>], counters: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![VERSION];
        varint(&mut out, texts.len() as u64);
        for text in texts {
            varint(&mut out, text.len() as u64);
            out.extend_from_slice(text);
        }
        for part in [hits, corrections] {
            varint(&mut out, part.len() as u64);
            part.iter().for_each(|entry| out.extend_from_slice(entry));
        }
        varint(&mut out, counters.len() as u64);
        counters.iter().for_each(|entry| out.extend_from_slice(entry));
        out
    }

    /// flags, the id of `serial`, [ts], then log id, URL id, agent, address and verdict + 1.
    fn raw_hit(serial: u64, fields: [u64; 5], flags: u8, ts: Option<u64>) -> Vec<u8> {
        let mut out = vec![flags | if ts.is_some() { TS_FOLLOWS } else { 0 }];
        out.extend_from_slice(&logs::hex_number(&id(serial), 32).expect("hex").to_be_bytes());
        ts.into_iter().chain(fields).for_each(|value| varint(&mut out, value));
        out
    }

    fn refusal(body: &[u8]) -> String {
        message(decode(body))
    }

    #[test]
    fn decode_refuses_with_the_first_reason_from_the_front() {
        let hit = raw_hit(1, [1, 4, 0, 1, 1], 0, None);
        let ab: &[&[u8]] = &[b"a", b"b"];
        assert!(decode(&raw(ab, std::slice::from_ref(&hit), &[], &[])).is_ok());
        assert_eq!(refusal(b""), "bad_version");
        assert_eq!(refusal(b"\x02\x00\x00\x00\x00"), "bad_version");
        assert_eq!(refusal(b"\x01\x01\x05ab"), "truncated: at byte 3");
        assert_eq!(
            refusal(&raw(ab, std::slice::from_ref(&hit), &[], &[])[..12]),
            "truncated: at byte 8"
        );
        // Trailing bytes are checked before unused texts.
        let mut trailing = raw(&[b"a", b"b", b"c"], std::slice::from_ref(&hit), &[], &[]);
        assert_eq!(refusal(&trailing), "not_canonical: 1 texts unused");
        trailing.push(0);
        assert_eq!(refusal(&trailing), "trailing_bytes: 1 bytes");
        // A repeated text is refused as it is read, before what is wrong after it.
        let repeated = raw(&[b"a", b"a"], &[], &[], &[]);
        assert_eq!(refusal(&repeated), "not_canonical: text 1 repeated");
        assert_eq!(
            refusal(&repeated[..repeated.len() - 1]),
            "not_canonical: text 1 repeated"
        );
        assert_eq!(refusal(&raw(&[b"\xff", b"a", b"a"], &[], &[], &[])), "bad_text: text 0");
        // A hit: flags before its id, a ts at the id's time as read, index before order, order before repeats.
        assert_eq!(
            refusal(&raw(ab, &[raw_hit(1, [1, 4, 0, 1, 1], 0x80, None)], &[], &[])[..8]),
            "bad_flags: 0x80"
        );
        let at_id_time = raw_hit(1, [1, 4, 0, 1, 1], 0, Some(T0 as u64));
        assert_eq!(
            refusal(&raw(ab, std::slice::from_ref(&at_id_time), &[], &[])),
            format!("not_canonical: {}: ts is the id's", id(1))
        );
        assert_eq!(
            refusal(&raw(ab, &[at_id_time], &[], &[])[..30]),
            format!("not_canonical: {}: ts is the id's", id(1))
        );
        let past = raw_hit(1, [1, 4, 0, 1, 1], 0, Some(1 << 53));
        assert_eq!(
            refusal(&raw(ab, &[past], &[], &[])),
            "out_of_range: ts 9007199254740992"
        );
        assert_eq!(
            refusal(&raw(ab, &[raw_hit(1, [1, 1 << 53, 0, 1, 1], 0, None)], &[], &[])),
            "out_of_range: url_id 9007199254740992"
        );
        assert_eq!(
            refusal(&raw(ab, &[raw_hit(1, [1, 4, 0, 1, (1 << 53) + 1], 0, None)], &[], &[])),
            "out_of_range: verdict 9007199254740993"
        );
        assert!(decode(&raw(ab, &[raw_hit(1, [1, 4, 0, 1, 1 << 53], 0, None)], &[], &[])).is_ok());
        assert_eq!(
            refusal(&raw(ab, &[raw_hit(1, [1, 4, 0, 2, 1], 0, None)], &[], &[])),
            "bad_index: 2"
        );
        assert_eq!(
            refusal(&raw(ab, &[raw_hit(1, [1, 4, 1, 0, 1], 0, None)], &[], &[])),
            "not_canonical: text 1 before text 0"
        );
        let backwards = [
            raw_hit(2, [1, 4, 0, 1, 1], 0, None),
            raw_hit(2, [1, 4, 0, 1, 1], 0, None),
        ];
        assert_eq!(
            refusal(&raw(ab, &backwards, &[], &[])),
            format!("not_canonical: hit {} out of order", id(2))
        );
        let again = [
            raw_hit(2, [1, 4, 0, 1, 1], 0, None),
            raw_hit(2, [2, 4, 0, 1, 1], 0, None),
        ];
        assert_eq!(
            refusal(&raw(ab, &again, &[], &[])),
            format!("not_canonical: hit {} repeated", id(2))
        );
        // The order is checked once the whole hit is read: a bad index in it comes first.
        let unread = [
            raw_hit(2, [1, 4, 0, 1, 1], 0, None),
            raw_hit(1, [1, 4, 0, 2, 1], 0, None),
        ];
        assert_eq!(refusal(&raw(ab, &unread, &[], &[])), "bad_index: 2");
        // Corrections: after the verdict, by id, none of the item's hits.
        let correction = |serial: u64, verdict: u64| {
            let mut out = logs::hex_number(&id(serial), 32).expect("hex").to_be_bytes().to_vec();
            varint(&mut out, verdict);
            out
        };
        assert_eq!(
            refusal(&raw(ab, std::slice::from_ref(&hit), &[correction(1, 1)], &[])),
            format!("not_canonical: correction {}", id(1))
        );
        assert_eq!(
            refusal(&raw(&[], &[], &[correction(3, 1), correction(3, 1)], &[])),
            format!("not_canonical: correction {}", id(3))
        );
        assert_eq!(
            refusal(&raw(&[], &[], &[correction(3, 1), correction(2, 1)], &[])),
            format!("not_canonical: correction {}", id(2))
        );
        assert_eq!(
            refusal(&raw(&[], &[], &[correction(3, 1), correction(2, (1 << 53) + 1)], &[])),
            "out_of_range: verdict 9007199254740993"
        );
        // Counters: by (stat, field) as strings, no delta of 0.
        let sf: &[&[u8]] = &[b"s", b"f", b"g"];
        assert_eq!(
            refusal(&raw(&sf[..2], &[], &[], &[b"\x00\x01\x00"])),
            "not_canonical: counter s f"
        );
        assert!(decode(&raw(sf, &[], &[], &[b"\x00\x01\x02", b"\x00\x02\x02"])).is_ok());
        assert_eq!(
            refusal(&raw(&[b"s", b"g", b"f"], &[], &[], &[b"\x00\x01\x02", b"\x00\x02\x02"])),
            "not_canonical: counter s f"
        );
        assert_eq!(
            refusal(&raw(&[b"s", b"f"], &[], &[], &[b"\x00\x01\x02", b"\x00\x01\x04"])),
            "not_canonical: counter s f"
        );
        // Code point order: "é" (U+00E9) after "z"; a text may be used by a hit and a counter.
        let texts: &[&[u8]] = &[b"a", b"b", b"z", "é".as_bytes()];
        let ok = raw(
            texts,
            std::slice::from_ref(&hit),
            &[],
            &[b"\x00\x02\x02", b"\x00\x03\x02"],
        );
        assert!(decode(&ok).is_ok());
        assert_eq!(
            refusal(&raw(
                &[b"a", b"b", "é".as_bytes(), b"z"],
                &[hit],
                &[],
                &[b"\x00\x02\x02", b"\x00\x03\x02"]
            )),
            "not_canonical: counter a z"
        );
    }

    #[test]
    fn a_count_past_the_body_is_truncated_not_reserved() {
        let mut body = vec![VERSION];
        varint(&mut body, u64::MAX);
        assert_eq!(reason(decode(&body)), Reason::Truncated);
        let mut body = vec![VERSION, 0];
        varint(&mut body, u64::MAX);
        assert_eq!(reason(decode(&body)), Reason::Truncated);
        let mut body = vec![VERSION, 1];
        varint(&mut body, u64::MAX); // a text's length
        assert_eq!(refusal(&body), "truncated: at byte 12");
    }

    /// Every body decode accepts is the one encode writes for what it returns: each single-byte
    /// change, deletion and insertion of a valid body is refused or re-encodes to itself.
    #[test]
    fn a_damaged_body_is_refused_or_is_the_one_its_content_encodes_to() {
        let ids: Vec<String> = (0..3).map(id).collect();
        let mut timed = hit(&ids[2], 2, "é", "");
        timed.ts = 300;
        timed.purpose = "prefetch";
        let hits = [
            (hit(&ids[0], 1, "ua", "ip"), 0),
            (hit(&ids[1], 1, "ip", "ua"), -1),
            (timed, 129),
        ];
        let corrections = [("0195512601000000000000000000ffff", 5)];
        let counters = [("indicators", "hits", 3), ("ua", "hits", -200)];
        let body = encode(DELIVERY, &hits, &corrections, &counters).expect("encoded");
        let mut accepted = 0;
        let mut check = |damaged: &[u8]| {
            if let Ok(item) = decode(damaged) {
                accepted += 1;
                assert_eq!(reencode(&item).as_deref(), Ok(damaged), "{damaged:02x?}");
            }
        };
        for at in 0..body.len() {
            for value in 0..=255u8 {
                let mut damaged = body.clone();
                damaged[at] = value;
                check(&damaged);
                damaged.insert(at, value);
                check(&damaged[..]);
            }
            let mut cut = body.clone();
            cut.remove(at);
            check(&cut);
        }
        assert!(accepted > body.len(), "some changes keep a valid body ({accepted})");
    }
}
