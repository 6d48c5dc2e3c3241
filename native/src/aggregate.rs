//! A run's hits merged with each recipient's stored hits and the summary of
//! their evicted hits: the twin of `aggregate` in
//! `chalicelib/tracking/core.py`; the contract is `docs/spec/tracking-core.md`
//! (bound, summaries, what stays exact), with the shared test vectors of
//! `tests/vectors/` (run by `src/vectors.rs`).
//!
//! The core ([`aggregate`]) works on hit handles (`u32`) through [`HitSet`],
//! so it runs on the parser's compact hits (copied into recipient order, for
//! `process_log`: [`aggregate_parsed`]) and on hits given from Python
//! ([`HitTable`], for `aggregate` with prior state) alike. Recipients come
//! grouped and sorted by the caller ([`group_parsed`], [`HitTable::group`]).
//!
//! Integers are i64 here (Python's are unbounded; the Python face falls back
//! to the reference for hits outside i64); bucket starts are computed in
//! i128 so no i64 time can overflow them.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::ops::Range;

use foldhash::fast::RandomState;

use crate::classify::{self, Context, DefaultContext};
use crate::logs::{Hit, Kind, ParsedLog, Purpose};

pub const OPEN_DEDUP_MS: i64 = 60_000;
pub const BUCKET_MS: i128 = 300_000;
pub const FIRST_HITS_PER_RECIPIENT: usize = 100;
pub const LAST_HITS_PER_RECIPIENT: usize = 100;
pub const MAX_HITS_PER_RECIPIENT: usize = FIRST_HITS_PER_RECIPIENT + LAST_HITS_PER_RECIPIENT;
pub const SUMMARY_MAX_REQUESTERS: usize = 256;
pub const SUMMARY_FILTER_BITS: usize = 32_768;
const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01B3;
/// The reference's INDICATORS, in its order.
pub const INDICATORS: [&str; 22] = [
    "hits",
    "opens_unique",
    "opens_total",
    "clicks_unique",
    "clicks_total",
    "persons_clicking",
    "optouts",
    "mirror_views",
    "opens_unique_human",
    "opens_total_human",
    "clicks_unique_human",
    "clicks_total_human",
    "hits_machine",
    "machine_apple_proxy",
    "machine_scanner_agent",
    "machine_scanner_address",
    "machine_crawler",
    "machine_prefetch",
    "machine_honeypot",
    "machine_burst",
    "machine_too_fast",
    "machine_no_open",
];
const HITS: usize = 0;
const OPENS_UNIQUE: usize = 1;
const OPENS_TOTAL: usize = 2;
const CLICKS_UNIQUE: usize = 3;
const CLICKS_TOTAL: usize = 4;
const PERSONS_CLICKING: usize = 5;
const OPTOUTS: usize = 6;
const MIRROR_VIEWS: usize = 7;
const OPENS_UNIQUE_HUMAN: usize = 8;
const OPENS_TOTAL_HUMAN: usize = 9;
const CLICKS_UNIQUE_HUMAN: usize = 10;
const CLICKS_TOTAL_HUMAN: usize = 11;
const HITS_MACHINE: usize = 12;
/// machine_<reason i> is indicator MACHINE_REASONS + i.
const MACHINE_REASONS: usize = 13;
/// Counters per key, in the order the reference sorts their names.
pub const URL_COUNTERS: [&str; 4] = ["total", "total_human", "unique", "unique_human"];
pub const ACTIVITY_COUNTERS: [&str; 4] = ["clicks", "clicks_human", "opens", "opens_human"];
const TOTAL: usize = 0;
const TOTAL_HUMAN: usize = 1;
const UNIQUE: usize = 2;
const UNIQUE_HUMAN: usize = 3;
const CLICKS: usize = 0;
const CLICKS_HUMAN: usize = 1;
const OPENS: usize = 2;
const OPENS_HUMAN: usize = 3;

/// What the aggregation reads of a hit.
pub trait HitSet {
    /// Whether two hits of one recipient can have the same hit id (stored
    /// hits given from Python can; an object's hits cannot).
    const IDS_MAY_REPEAT: bool;
    fn ts(&self, hit: u32) -> i64;
    /// None for a kind that is none of the four (only hits given from Python).
    fn kind(&self, hit: u32) -> Option<Kind>;
    fn url_id(&self, hit: u32) -> i64;
    /// Interned: equal user agents, equal numbers.
    fn ua(&self, hit: u32) -> u32;
    fn ua_text(&self, ua: u32) -> &str;
    fn ip(&self, hit: u32) -> &[u8];
    /// The request declared a purpose (a prefetch or preview): the reference's truthy `Hit.purpose`.
    fn purpose_declared(&self, hit: u32) -> bool;
    /// Equal hit ids, equal numbers, below `id_count()`.
    fn id(&self, hit: u32) -> u32;
    fn id_count(&self) -> usize;
    /// The order of the hit ids as strings.
    fn id_cmp(&self, a: u32, b: u32) -> Ordering;
    /// The hit id as a string (the summary's filter and range read it).
    fn id_text(&self, hit: u32) -> Cow<'_, str>;
}

/// How many hits a recipient keeps stored: the first ones and the last ones
/// by (ts, hit id); the hits between are evicted into its [`Summary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    pub first: usize,
    pub last: usize,
}

impl Bound {
    /// The reference's: `first` (default: half) of at most `max` hits, the rest last.
    pub fn new(max: usize, first: Option<usize>) -> Self {
        let first = first.map_or(max / 2, |first| first.min(max));
        Bound {
            first,
            last: max - first,
        }
    }

    pub fn total(self) -> usize {
        self.first + self.last
    }
}

impl Default for Bound {
    fn default() -> Self {
        Bound::new(MAX_HITS_PER_RECIPIENT, Some(FIRST_HITS_PER_RECIPIENT))
    }
}

/// FNV-1a, 64 bits (the reference's `fnv1a64`).
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut value = FNV_OFFSET;
    for part in parts {
        for &byte in *part {
            value = (value ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
    }
    value
}

fn requester_hash<H: HitSet>(hits: &H, hit: u32) -> u64 {
    fnv1a64(&[hits.ua_text(hits.ua(hit)).as_bytes(), b"\0", hits.ip(hit)])
}

fn filter_bits(hit_id: &str) -> [usize; 3] {
    let value = fnv1a64(&[hit_id.as_bytes()]);
    let mask = (SUMMARY_FILTER_BITS - 1) as u64;
    [value & mask, (value >> 21) & mask, (value >> 42) & mask].map(|bit| bit as usize)
}

/// What a recipient's evicted hits still contribute: the reference's `Summary` (core.py).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub count: i64,
    pub first: (i64, String),
    pub last: (i64, String),
    pub last_open: Option<i64>,
    pub last_open_human: Option<i64>,
    pub opened: bool,
    pub clicked: bool,
    pub optout: bool,
    pub human: bool,
    pub clicked_human: bool,
    /// Sorted, distinct.
    pub urls: Vec<i64>,
    pub urls_human: Vec<i64>,
    pub requesters: Vec<u64>,
    pub requesters_over: i64,
    pub filter: Vec<u8>,
    /// Evicted hits of each kind: click, open, optout, mirror (the reference's KINDS).
    pub kinds: [i64; 4],
    pub machine: i64,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            count: 0,
            first: (0, String::new()),
            last: (0, String::new()),
            last_open: None,
            last_open_human: None,
            opened: false,
            clicked: false,
            optout: false,
            human: false,
            clicked_human: false,
            urls: Vec::new(),
            urls_human: Vec::new(),
            requesters: Vec::new(),
            requesters_over: 0,
            filter: vec![0; SUMMARY_FILTER_BITS / 8],
            kinds: [0; 4],
            machine: 0,
        }
    }
}

impl Summary {
    /// Whether `hit` may be one of the evicted hits (never false for one of them).
    fn may_hold<H: HitSet>(&self, hits: &H, hit: u32) -> bool {
        if key_cmp(hits, hit, &self.first) == Ordering::Less || key_cmp(hits, hit, &self.last) == Ordering::Greater {
            return false;
        }
        filter_bits(&hits.id_text(hit))
            .iter()
            .all(|&bit| self.filter.get(bit >> 3).is_some_and(|byte| byte >> (bit & 7) & 1 == 1))
    }
}

/// The order of a hit's (ts, hit id) against a key.
fn key_cmp<H: HitSet>(hits: &H, hit: u32, key: &(i64, String)) -> Ordering {
    hits.ts(hit)
        .cmp(&key.0)
        .then_with(|| hits.id_text(hit).as_ref().cmp(key.1.as_str()))
}

/// How many of `ordered` come before the evicted block (up to summary.last).
fn block_position<H: HitSet>(hits: &H, ordered: &[u32], summary: &Summary) -> usize {
    ordered.partition_point(|&hit| key_cmp(hits, hit, &summary.last) != Ordering::Greater)
}

/// One recipient's new hits (first occurrences of their hit ids, in input
/// order) and stored hits, as ranges of the input's `new` and `prior`.
#[derive(Clone, Debug)]
pub struct Group {
    /// Deliveries numbered in ascending delivery id order.
    pub delivery: u32,
    pub log_id: i64,
    pub new: Range<usize>,
    pub prior: Range<usize>,
}

pub struct Input<'a> {
    /// Ascending (delivery, log id).
    pub groups: &'a [Group],
    /// By group: the recipient's summary of evicted hits, if any (may be shorter than `groups`).
    pub summaries: &'a [Option<Summary>],
    pub new: &'a [u32],
    pub prior: &'a [u32],
    /// Repeated hit ids already dropped from `new`.
    pub duplicates: u64,
}

/// A changed recipient: `kept` is a range of `Aggregates::kept`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientUpdate {
    pub group: usize,
    pub kept: Range<usize>,
    /// Where its hits new to it sit in [`Aggregates::fresh`] (`added` of them, in the run's order).
    pub fresh: Range<usize>,
    pub added: u64,
    pub over_limit: i64,
    /// The evicted hits' summary, when there are any.
    /// Boxed: most recipients have none, and the updates stay small.
    pub summary: Option<Box<Summary>>,
}

/// One delivery's non-zero counter deltas, each list sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryDelta {
    pub delivery: u32,
    pub indicators: Vec<(&'static str, i64)>,
    pub urls: Vec<(i64, Vec<(&'static str, i64)>)>,
    pub buckets: Vec<(i128, Vec<(&'static str, i64)>)>,
    /// By interned user agent, sorted by its text.
    pub user_agents: Vec<(u32, Vec<(&'static str, i64)>)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aggregates {
    pub recipients: Vec<RecipientUpdate>,
    pub kept: Vec<u32>,
    /// The verdict of each hit of `kept`.
    pub verdicts: Vec<i64>,
    /// Each recipient's hits new to it, those its item evicts at once too (what the run logs).
    pub fresh: Vec<u32>,
    pub deliveries: Vec<DeliveryDelta>,
    pub duplicates: u64,
    pub over_limit: i64,
}

/// A delivery's running sums.
struct Totals {
    delivery: u32,
    indicators: [i64; INDICATORS.len()],
    urls: HashMap<i64, [i64; 4], RandomState>,
    buckets: HashMap<i128, [i64; 4], RandomState>,
    user_agents: HashMap<u32, [i64; 4], RandomState>,
}

impl Totals {
    fn new(delivery: u32) -> Self {
        Totals {
            delivery,
            indicators: [0; INDICATORS.len()],
            urls: HashMap::default(),
            buckets: HashMap::default(),
            user_agents: HashMap::default(),
        }
    }
}

/// Reusable per-recipient scratch space.
struct Work {
    /// mark[id] == stamp: the id is in the set being asked about.
    mark: Vec<u32>,
    stamp: u32,
    before: Vec<u32>,
    merged: Vec<u32>,
    requesters: Vec<(u32, u32)>,
    urls: Vec<i64>,
    human_urls: Vec<i64>,
    /// Per position of the hits being counted: an open the 1-minute rule counts.
    counted: Vec<bool>,
    /// The same among human opens only.
    counted_human: Vec<bool>,
    verdicts: Vec<i64>,
    before_verdicts: Vec<i64>,
    clicks: Vec<usize>,
}

impl Work {
    fn next_stamp(&mut self) -> u32 {
        self.stamp += 1;
        self.stamp
    }
}

fn hit_order<H: HitSet>(hits: &H, a: u32, b: u32) -> Ordering {
    hits.ts(a).cmp(&hits.ts(b)).then_with(|| hits.id_cmp(a, b))
}

/// The reference's `aggregate`, on grouped input, classifying with `context`.
pub fn aggregate<H: HitSet, C: Context + ?Sized>(hits: &H, input: &Input<'_>, bound: Bound, context: &C) -> Aggregates {
    let mut work = Work {
        mark: vec![0; hits.id_count()],
        stamp: 0,
        before: Vec::new(),
        merged: Vec::new(),
        requesters: Vec::new(),
        urls: Vec::new(),
        human_urls: Vec::new(),
        counted: Vec::new(),
        counted_human: Vec::new(),
        verdicts: Vec::new(),
        before_verdicts: Vec::new(),
        clicks: Vec::new(),
    };
    let mut out = Aggregates {
        duplicates: input.duplicates,
        ..Aggregates::default()
    };
    let mut totals: Vec<Totals> = Vec::new();
    for (index, group) in input.groups.iter().enumerate() {
        let summary = input.summaries.get(index).and_then(Option::as_ref);
        work.before.clear();
        work.before.extend_from_slice(&input.prior[group.prior.clone()]);
        work.before.sort_by(|&a, &b| hit_order(hits, a, b)); // stable, like sorted()
        let known = work.next_stamp();
        for &hit in &work.before {
            work.mark[hits.id(hit) as usize] = known;
        }
        work.merged.clear();
        work.merged.extend_from_slice(&work.before);
        let mut fresh = 0usize;
        let new = &input.new[group.new.clone()];
        if work.before.is_empty() && summary.is_none() {
            work.merged.extend_from_slice(new); // nothing stored: every new hit is fresh
            fresh = new.len();
        } else {
            for &hit in new {
                if work.mark[hits.id(hit) as usize] == known || summary.is_some_and(|s| s.may_hold(hits, hit)) {
                    out.duplicates += 1;
                } else {
                    work.merged.push(hit);
                    fresh += 1;
                }
            }
        }
        if fresh == 0 {
            continue;
        }
        let fresh_start = out.fresh.len();
        out.fresh.extend_from_slice(&work.merged[work.before.len()..]); // before sorting: the run's order
        let fresh_rows = fresh_start..out.fresh.len();
        if !work
            .merged
            .is_sorted_by(|&a, &b| hit_order(hits, a, b) != Ordering::Greater)
        {
            work.merged.sort_by(|&a, &b| hit_order(hits, a, b)); // stable, like sorted()
        }
        let sent_at = context.sent_at(index);
        // Where the evicted block sits: after every hit up to summary.last (the first ones when none yet).
        let split = match summary {
            Some(summary) => block_position(hits, &work.merged, summary),
            None => bound.first.min(work.merged.len()),
        };
        let opened_from = |split: usize| match summary {
            Some(summary) if summary.opened => split,
            _ => usize::MAX,
        };
        classify::verdicts(
            hits,
            &work.merged,
            context,
            sent_at,
            opened_from(split),
            &mut work.verdicts,
            &mut work.clicks,
        );
        let start = out.kept.len();
        let (evicted, new_summary) = if summary.is_none() && work.merged.len() <= bound.total() {
            out.kept.extend_from_slice(&work.merged);
            out.verdicts.extend_from_slice(&work.verdicts);
            (0, None)
        } else {
            let head_end = split.min(bound.first);
            let tail_start = split.max(work.merged.len().saturating_sub(bound.last));
            for range in [0..head_end, tail_start..work.merged.len()] {
                out.kept.extend_from_slice(&work.merged[range.clone()]);
                out.verdicts.extend_from_slice(&work.verdicts[range]);
            }
            let folded = evict(
                hits,
                head_end..tail_start,
                split,
                summary,
                &out.kept[start..],
                &mut work,
            );
            (tail_start - head_end, Some(Box::new(folded)))
        };
        // The stored hits leave with the verdicts they were counted with; classified again when any is unknown.
        let before_split = summary.map_or(0, |summary| block_position(hits, &work.before, summary));
        work.before_verdicts.clear();
        for &hit in &work.before {
            match context.stored(hit) {
                Some(verdict) => work.before_verdicts.push(verdict),
                None => break,
            }
        }
        if work.before_verdicts.len() < work.before.len() {
            classify::verdicts(
                hits,
                &work.before,
                context,
                sent_at,
                opened_from(before_split),
                &mut work.before_verdicts,
                &mut work.clicks,
            );
        }
        out.over_limit += evicted as i64;
        out.recipients.push(RecipientUpdate {
            group: index,
            kept: start..out.kept.len(),
            fresh: fresh_rows,
            added: fresh as u64,
            over_limit: evicted as i64,
            summary: new_summary,
        });
        if totals.last().map(|last| last.delivery) != Some(group.delivery) {
            totals.push(Totals::new(group.delivery));
        }
        let delivery = totals.last_mut().expect("just pushed");
        let (merged, verdicts) = (std::mem::take(&mut work.merged), std::mem::take(&mut work.verdicts));
        contribute(
            hits,
            &merged,
            &verdicts,
            summary.map(|s| (s, split)),
            1,
            delivery,
            &mut work,
        );
        (work.merged, work.verdicts) = (merged, verdicts);
        let (before, verdicts) = (
            std::mem::take(&mut work.before),
            std::mem::take(&mut work.before_verdicts),
        );
        contribute(
            hits,
            &before,
            &verdicts,
            summary.map(|s| (s, before_split)),
            -1,
            delivery,
            &mut work,
        );
        (work.before, work.before_verdicts) = (before, verdicts);
    }
    out.deliveries = totals
        .into_iter()
        .filter_map(|delivery| delta(hits, delivery))
        .collect();
    out
}

/// `summary` with the hits at `evicted` of `work.merged` folded in, as they are counted now (the
/// reference's `_evict`): those before `split` come before the old summary's hits, the others after.
fn evict<H: HitSet>(
    hits: &H,
    evicted: Range<usize>,
    split: usize,
    summary: Option<&Summary>,
    kept: &[u32],
    work: &mut Work,
) -> Summary {
    let mut new = summary.cloned().unwrap_or_default();
    if evicted.is_empty() {
        return new;
    }
    let (stamp, stamp_human) = (work.next_stamp(), work.next_stamp());
    let merged = &work.merged;
    let verdicts = &work.verdicts;
    let block = summary.map(|summary| (split, summary.last_open));
    one_minute_rule(hits, merged, |_| true, block, &mut work.counted, &mut work.mark, stamp);
    let block_human = summary.map(|summary| (split, summary.last_open_human));
    let stamp = stamp_human;
    let human = |position: usize| classify::is_human(verdicts[position]);
    one_minute_rule(
        hits,
        merged,
        human,
        block_human,
        &mut work.counted_human,
        &mut work.mark,
        stamp,
    );
    let (mut last_open, mut last_open_human) = (None, None);
    let mut in_kept: HashSet<u64, RandomState> = kept
        .iter()
        .filter(|&&hit| hits.kind(hit) == Some(Kind::Click))
        .map(|&hit| requester_hash(hits, hit))
        .collect();
    let (old_last_open, old_last_open_human) = summary.map_or((None, None), |s| (s.last_open, s.last_open_human));
    let mut passed_block = false;
    for position in evicted.clone() {
        let hit = merged[position];
        let person = human(position);
        if position >= split && !passed_block {
            passed_block = true;
            last_open = old_last_open.or(last_open);
            last_open_human = old_last_open_human.or(last_open_human);
        }
        let kind = hits.kind(hit);
        let counted = work.counted[position];
        match kind {
            Some(Kind::Open) => {
                new.opened = true;
                if counted {
                    last_open = Some(hits.ts(hit));
                }
                if person && work.counted_human[position] {
                    last_open_human = Some(hits.ts(hit));
                }
            }
            Some(Kind::Click) => {
                new.clicked = true;
                new.clicked_human |= person;
                let pair = requester_hash(hits, hit);
                if let Err(at) = new.requesters.binary_search(&pair) {
                    if new.requesters.len() < SUMMARY_MAX_REQUESTERS {
                        new.requesters.insert(at, pair);
                    } else if in_kept.insert(pair) {
                        new.requesters_over += 1; // once per fold
                    }
                }
            }
            Some(Kind::Optout) => new.optout = true,
            Some(Kind::Mirror) | None => {}
        }
        new.human |= person;
        let url_id = hits.url_id(hit);
        if kind != Some(Kind::Open) || counted {
            insert_sorted(&mut new.urls, url_id);
        }
        if person && (kind != Some(Kind::Open) || work.counted_human[position]) {
            insert_sorted(&mut new.urls_human, url_id);
        }
        for bit in filter_bits(&hits.id_text(hit)) {
            new.filter[bit >> 3] |= 1 << (bit & 7);
        }
        if let Some(kind) = kind {
            new.kinds[kind_index(kind)] += 1;
        }
        new.machine += i64::from(verdicts[position] >= 0 && !person);
    }
    if !passed_block {
        last_open = old_last_open.or(last_open);
        last_open_human = old_last_open_human.or(last_open_human);
    }
    (new.last_open, new.last_open_human) = (last_open, last_open_human);
    new.count += evicted.len() as i64;
    let key = |hit: u32| (hits.ts(hit), hits.id_text(hit).into_owned());
    let (first, last) = (key(merged[evicted.start]), key(merged[evicted.end - 1]));
    if summary.is_some() {
        new.first = new.first.min(first);
        new.last = new.last.max(last);
    } else {
        (new.first, new.last) = (first, last);
    }
    new
}

fn insert_sorted(values: &mut Vec<i64>, value: i64) {
    if let Err(at) = values.binary_search(&value) {
        values.insert(at, value);
    }
}

/// The kind's place in the reference's KINDS (click, open, optout, mirror).
fn kind_index(kind: Kind) -> usize {
    match kind {
        Kind::Click => 0,
        Kind::Open => 1,
        Kind::Optout => 2,
        Kind::Mirror => 3,
    }
}

/// The 1-minute rule over the opens at the positions `include` accepts,
/// into `counted` (one flag per position). At `block` (position, the evicted
/// hits' last counted open) the rule goes on from that open, if any. The
/// reference counts by hit id: where ids can repeat within a recipient
/// (stored hits given from Python), an open is counted when any counted open
/// has its id.
fn one_minute_rule<H: HitSet>(
    hits: &H,
    ordered: &[u32],
    include: impl Fn(usize) -> bool,
    block: Option<(usize, Option<i64>)>,
    counted: &mut Vec<bool>,
    mark: &mut [u32],
    stamp: u32,
) {
    counted.clear();
    let mut last: Option<i64> = None;
    for (position, &hit) in ordered.iter().enumerate() {
        if let Some((at, Some(evicted_last))) = block {
            if position == at {
                last = Some(evicted_last);
            }
        }
        let mut counts = false;
        if include(position) && hits.kind(hit) == Some(Kind::Open) {
            let ts = hits.ts(hit);
            if last.is_none_or(|last| i128::from(ts) - i128::from(last) >= i128::from(OPEN_DEDUP_MS)) {
                counts = true;
                last = Some(ts);
            }
        }
        counted.push(counts);
    }
    if H::IDS_MAY_REPEAT {
        for (&hit, &counts) in ordered.iter().zip(counted.iter()) {
            if counts {
                mark[hits.id(hit) as usize] = stamp;
            }
        }
        for (position, &hit) in ordered.iter().enumerate() {
            counted[position] = mark[hits.id(hit) as usize] == stamp;
        }
    }
}

/// Add `sign` times one recipient's contribution (hits sorted by (ts, hit id), with their verdicts;
/// with the summary of its evicted hits and where they sit among them).
fn contribute<H: HitSet>(
    hits: &H,
    ordered: &[u32],
    verdicts: &[i64],
    block: Option<(&Summary, usize)>,
    sign: i64,
    totals: &mut Totals,
    work: &mut Work,
) {
    if ordered.is_empty() && block.is_none() {
        return;
    }
    let stamp = work.next_stamp();
    let chain = block.map(|(summary, at)| (at, summary.last_open));
    one_minute_rule(hits, ordered, |_| true, chain, &mut work.counted, &mut work.mark, stamp);
    let stamp = work.next_stamp();
    let human = |position: usize| classify::is_human(verdicts[position]);
    let chain = block.map(|(summary, at)| (at, summary.last_open_human));
    one_minute_rule(
        hits,
        ordered,
        human,
        chain,
        &mut work.counted_human,
        &mut work.mark,
        stamp,
    );
    let indicators = &mut totals.indicators;
    indicators[HITS] += sign * ordered.len() as i64;
    indicators[OPENS_UNIQUE] += sign;
    let (mut clicked, mut opted_out, mut any_human, mut clicked_human) = (false, false, false, false);
    work.requesters.clear();
    work.urls.clear();
    work.human_urls.clear();
    for (position, &hit) in ordered.iter().enumerate() {
        let verdict = verdicts[position];
        let person = human(position);
        if verdict >= 0 && !person {
            indicators[HITS_MACHINE] += sign;
            for reason in 0..classify::REASONS.len() {
                if verdict & (1 << reason) != 0 {
                    indicators[MACHINE_REASONS + reason] += sign;
                }
            }
        }
        any_human |= person;
        let ts = i128::from(hits.ts(hit));
        let bucket = ts - ts.rem_euclid(BUCKET_MS);
        let url_id = hits.url_id(hit);
        match hits.kind(hit) {
            Some(Kind::Open) => {
                if person && work.counted_human[position] {
                    indicators[OPENS_TOTAL_HUMAN] += sign;
                    totals.buckets.entry(bucket).or_default()[OPENS_HUMAN] += sign;
                    totals.user_agents.entry(hits.ua(hit)).or_default()[OPENS_HUMAN] += sign;
                    totals.urls.entry(url_id).or_default()[TOTAL_HUMAN] += sign;
                    work.human_urls.push(url_id);
                }
                if !work.counted[position] {
                    continue;
                }
                indicators[OPENS_TOTAL] += sign;
                totals.buckets.entry(bucket).or_default()[OPENS] += sign;
                totals.user_agents.entry(hits.ua(hit)).or_default()[OPENS] += sign;
            }
            kind => {
                match kind {
                    Some(Kind::Click) => {
                        indicators[CLICKS_TOTAL] += sign;
                        clicked = true;
                        totals.buckets.entry(bucket).or_default()[CLICKS] += sign;
                        totals.user_agents.entry(hits.ua(hit)).or_default()[CLICKS] += sign;
                        work.requesters.push((hits.ua(hit), hit));
                        if person {
                            indicators[CLICKS_TOTAL_HUMAN] += sign;
                            clicked_human = true;
                            totals.buckets.entry(bucket).or_default()[CLICKS_HUMAN] += sign;
                            totals.user_agents.entry(hits.ua(hit)).or_default()[CLICKS_HUMAN] += sign;
                        }
                    }
                    Some(Kind::Optout) => opted_out = true,
                    Some(Kind::Mirror) => indicators[MIRROR_VIEWS] += sign,
                    Some(Kind::Open) | None => {}
                }
                if person {
                    totals.urls.entry(url_id).or_default()[TOTAL_HUMAN] += sign;
                    work.human_urls.push(url_id);
                }
            }
        }
        totals.urls.entry(url_id).or_default()[TOTAL] += sign;
        work.urls.push(url_id);
    }
    if let Some((summary, _)) = block {
        clicked |= summary.clicked;
        opted_out |= summary.optout;
        any_human |= summary.human;
        clicked_human |= summary.clicked_human;
        work.urls.extend_from_slice(&summary.urls);
        work.human_urls.extend_from_slice(&summary.urls_human);
    }
    for (urls, counter) in [(&mut work.urls, UNIQUE), (&mut work.human_urls, UNIQUE_HUMAN)] {
        urls.sort_unstable();
        urls.dedup();
        for url_id in urls.iter() {
            totals.urls.entry(*url_id).or_default()[counter] += sign;
        }
    }
    if clicked {
        indicators[CLICKS_UNIQUE] += sign;
    }
    if clicked_human {
        indicators[CLICKS_UNIQUE_HUMAN] += sign;
    }
    if any_human {
        indicators[OPENS_UNIQUE_HUMAN] += sign;
    }
    if opted_out {
        indicators[OPTOUTS] += sign;
    }
    let mut persons = 0;
    if !work.requesters.is_empty() {
        // Distinct (ua, ip) pairs among the clicks.
        work.requesters
            .sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| hits.ip(a.1).cmp(hits.ip(b.1))));
        persons = 1;
        for pair in work.requesters.windows(2) {
            if pair[0].0 != pair[1].0 || hits.ip(pair[0].1) != hits.ip(pair[1].1) {
                persons += 1;
            }
        }
    }
    if let Some((summary, _)) = block {
        if !summary.requesters.is_empty() {
            let stored: HashSet<u64, RandomState> = work
                .requesters
                .iter()
                .map(|&(_, hit)| requester_hash(hits, hit))
                .collect();
            persons += summary.requesters.iter().filter(|pair| !stored.contains(pair)).count() as i64;
        }
        persons += summary.requesters_over;
    }
    indicators[PERSONS_CLICKING] += sign * persons;
}

fn pairs(names: [&'static str; 4], values: [i64; 4]) -> Vec<(&'static str, i64)> {
    names.into_iter().zip(values).filter(|(_, value)| *value != 0).collect()
}

/// The reference's `_delivery_delta`: zero entries dropped, keys sorted; None when nothing moved.
fn delta<H: HitSet>(hits: &H, totals: Totals) -> Option<DeliveryDelta> {
    let indicators: Vec<(&'static str, i64)> = INDICATORS
        .into_iter()
        .zip(totals.indicators)
        .filter(|(_, value)| *value != 0)
        .collect();
    let mut urls: Vec<(i64, Vec<(&'static str, i64)>)> = totals
        .urls
        .into_iter()
        .map(|(url, values)| (url, pairs(URL_COUNTERS, values)))
        .filter(|(_, values)| !values.is_empty())
        .collect();
    urls.sort_unstable_by_key(|(url, _)| *url);
    let mut buckets: Vec<(i128, Vec<(&'static str, i64)>)> = totals
        .buckets
        .into_iter()
        .map(|(start, values)| (start, pairs(ACTIVITY_COUNTERS, values)))
        .filter(|(_, values)| !values.is_empty())
        .collect();
    buckets.sort_unstable_by_key(|(start, _)| *start);
    let mut user_agents: Vec<(u32, Vec<(&'static str, i64)>)> = totals
        .user_agents
        .into_iter()
        .map(|(ua, values)| (ua, pairs(ACTIVITY_COUNTERS, values)))
        .filter(|(_, values)| !values.is_empty())
        .collect();
    user_agents.sort_unstable_by(|a, b| hits.ua_text(a.0).cmp(hits.ua_text(b.0)));
    if indicators.is_empty() && urls.is_empty() && buckets.is_empty() && user_agents.is_empty() {
        return None;
    }
    Some(DeliveryDelta {
        delivery: totals.delivery,
        indicators,
        urls,
        buckets,
        user_agents,
    })
}

// --------------------------------------------------------------------------- parsed hits

/// How many bits `largest` needs: how wide a part of a packed sort key must be to hold values up to it
/// (keys that fit in 64 bits sort faster than 128-bit ones).
pub(crate) fn bit_width(largest: u128) -> u32 {
    u128::BITS - largest.leading_zeros()
}

/// `aggregate(parsed.hits, {})` grouped: recipients (delivery id, log id) in
/// ascending order (fixed-length lower-case hex sorts as its number), each
/// with its hits in line order; deliveries numbered in that order.
pub fn group_parsed(parsed: &ParsedLog) -> (Vec<Group>, Vec<u32>, Vec<u64>) {
    // Deliveries are few: rank them, then sort one packed key per hit,
    // (delivery rank, log id < 2**53, position), each part as wide as the
    // object needs: cheaper than sorting tuples, and in one 64-bit word
    // (faster to sort than two) when the ranks and log ids are small enough.
    let mut deliveries: Vec<u64> = Vec::new();
    let mut ranks: HashMap<u64, u128, RandomState> = HashMap::default();
    let mut largest_log_id = 0;
    for hit in &parsed.hits {
        if let Entry::Vacant(slot) = ranks.entry(hit.delivery_id) {
            slot.insert(0);
            deliveries.push(hit.delivery_id);
        }
        largest_log_id = largest_log_id.max(hit.log_id);
    }
    deliveries.sort_unstable();
    for (rank, delivery_id) in deliveries.iter().enumerate() {
        ranks.insert(*delivery_id, rank as u128);
    }
    let layout = Layout {
        log_shift: 32,
        rank_shift: 32 + bit_width(u128::from(largest_log_id)),
    };
    let mut last: Option<(u64, u128)> = None;
    let mut key_of = |position: usize, hit: &Hit| {
        let rank = match last {
            Some((delivery_id, rank)) if delivery_id == hit.delivery_id => rank,
            _ => {
                let rank = ranks[&hit.delivery_id];
                last = Some((hit.delivery_id, rank));
                rank
            }
        };
        (rank << layout.rank_shift) | (u128::from(hit.log_id) << layout.log_shift) | position as u128
    };
    let hits = parsed.hits.iter().enumerate();
    let (groups, new) = if layout.rank_shift + bit_width(deliveries.len() as u128) <= u64::BITS {
        let mut keys: Vec<u64> = hits.map(|(position, hit)| key_of(position, hit) as u64).collect();
        keys.sort_unstable();
        layout.groups(&keys)
    } else {
        let mut keys: Vec<u128> = hits.map(|(position, hit)| key_of(position, hit)).collect();
        keys.sort_unstable();
        layout.groups(&keys)
    };
    (groups, new, deliveries)
}

/// Where the parts of `group_parsed`'s keys are: position in the low 32 bits,
/// then the log id, then the delivery rank.
#[derive(Clone, Copy)]
struct Layout {
    log_shift: u32,
    rank_shift: u32,
}

impl Layout {
    /// Sorted keys to recipients (groups) and the hits' positions in order.
    fn groups<K: Copy + Into<u128>>(self, keys: &[K]) -> (Vec<Group>, Vec<u32>) {
        let new: Vec<u32> = keys.iter().map(|&key| key.into() as u32).collect();
        let recipient = |at: usize| keys[at].into() >> self.log_shift;
        let mut groups: Vec<Group> = Vec::new();
        let mut start = 0;
        while start < keys.len() {
            let mut end = start + 1;
            while end < keys.len() && recipient(end) == recipient(start) {
                end += 1;
            }
            let key = keys[start].into();
            groups.push(Group {
                delivery: (key >> self.rank_shift) as u32,
                log_id: ((key >> self.log_shift) & ((1 << (self.rank_shift - self.log_shift)) - 1)) as i64,
                new: start..end,
                prior: 0..0,
            });
            start = end;
        }
        (groups, new)
    }
}

/// The reference's `process_log` aggregation step: `aggregate(parsed.hits, {})`.
/// Also returns the delivery ids, by the numbers the groups use.
pub fn aggregate_parsed(parsed: &ParsedLog, bound: Bound) -> (Aggregates, Vec<Group>, Vec<u64>) {
    let (groups, new, deliveries) = group_parsed(parsed);
    // What the aggregation reads of the hits, copied into recipient order in
    // one tight loop (the CPU overlaps its scattered reads), so it then reads
    // them in order; half the bytes of the hits (less memory to fault in).
    let gathered = Gathered {
        parsed,
        hits: new
            .iter()
            .map(|&index| {
                let hit = &parsed.hits[index as usize];
                GatheredHit {
                    ts: hit.ts,
                    url_id: hit.url_id,
                    ua: hit.ua,
                    ip: ParsedLog::ip_span(hit),
                    kind: hit.kind,
                    purpose: hit.purpose,
                    index,
                }
            })
            .collect(),
    };
    let in_order: Vec<u32> = (0..new.len() as u32).collect();
    let input = Input {
        groups: &groups,
        summaries: &[],
        new: &in_order,
        prior: &[],
        duplicates: 0,
    };
    let mut aggregates = aggregate(&gathered, &input, bound, &DefaultContext);
    for hit in &mut aggregates.kept {
        *hit = new[*hit as usize]; // back to positions in the parsed hits
    }
    (aggregates, groups, deliveries)
}

/// An object's hits in recipient order; a hit is its position here.
struct Gathered<'a> {
    parsed: &'a ParsedLog,
    hits: Vec<GatheredHit>,
}

/// The part of a [`crate::logs::Hit`] the aggregation reads, and where the hit is.
#[derive(Clone, Copy)]
struct GatheredHit {
    ts: u64,
    url_id: u64,
    ua: u32,
    ip: (u32, u8),
    kind: Kind,
    purpose: Purpose,
    /// The hit's position in the parsed hits (its hit id, for ties in ts, is read there).
    index: u32,
}

impl HitSet for Gathered<'_> {
    const IDS_MAY_REPEAT: bool = false;
    fn ts(&self, hit: u32) -> i64 {
        self.hits[hit as usize].ts as i64 // at most 2**53 - 1
    }
    fn kind(&self, hit: u32) -> Option<Kind> {
        Some(self.hits[hit as usize].kind)
    }
    fn url_id(&self, hit: u32) -> i64 {
        self.hits[hit as usize].url_id as i64
    }
    fn ua(&self, hit: u32) -> u32 {
        self.hits[hit as usize].ua
    }
    fn ua_text(&self, ua: u32) -> &str {
        &self.parsed.user_agents()[ua as usize]
    }
    fn ip(&self, hit: u32) -> &[u8] {
        self.parsed.ip_at(self.hits[hit as usize].ip)
    }
    fn purpose_declared(&self, hit: u32) -> bool {
        self.hits[hit as usize].purpose != Purpose::Undeclared
    }
    /// An object's hits have distinct hit ids: the position is the id.
    fn id(&self, hit: u32) -> u32 {
        hit
    }
    fn id_count(&self) -> usize {
        self.hits.len()
    }
    fn id_cmp(&self, a: u32, b: u32) -> Ordering {
        // Fixed-length lower-case hex: numeric order is string order.
        let id = |hit: u32| self.parsed.hits[self.hits[hit as usize].index as usize].hit_id;
        id(a).cmp(&id(b))
    }
    fn id_text(&self, hit: u32) -> Cow<'_, str> {
        Cow::Owned(crate::logs::hex32(
            self.parsed.hits[self.hits[hit as usize].index as usize].hit_id,
        ))
    }
}

// --------------------------------------------------------------------------- hits given one by one

/// Distinct texts numbered in the order first seen, kept one after the other
/// in one arena (no allocation per text: a run interns a hundred thousand
/// hit ids, and reads them back in that order).
#[derive(Default)]
struct Interner {
    arena: String,
    ends: Vec<usize>,
    /// A text's hash -> the last text interned with that hash; `earlier` chains the others.
    by_hash: HashMap<u64, u32, RandomState>,
    earlier: Vec<u32>,
    hasher: RandomState,
}

const NO_TEXT: u32 = u32::MAX;

impl Interner {
    fn lookup(&self, hash: u64, text: &str) -> Option<u32> {
        let mut at = *self.by_hash.get(&hash)?;
        while at != NO_TEXT {
            if self.text(at) == text {
                return Some(at);
            }
            at = self.earlier[at as usize];
        }
        None
    }

    fn intern(&mut self, text: &str) -> u32 {
        let hash = self.hasher.hash_one(text);
        if let Some(id) = self.lookup(hash, text) {
            return id;
        }
        let id = self.ends.len() as u32;
        self.arena.push_str(text);
        self.ends.push(self.arena.len());
        let earlier = self.by_hash.insert(hash, id).unwrap_or(NO_TEXT);
        self.earlier.push(earlier);
        id
    }

    /// Room for `count` more texts of about `bytes` each.
    fn reserve(&mut self, count: usize, bytes: usize) {
        self.arena.reserve(count * bytes);
        self.ends.reserve(count);
        self.by_hash.reserve(count);
        self.earlier.reserve(count);
    }

    fn text(&self, id: u32) -> &str {
        let id = id as usize;
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        &self.arena[start..self.ends[id]]
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn texts(&self) -> Vec<&str> {
        (0..self.len() as u32).map(|id| self.text(id)).collect()
    }

    fn find(&self, text: &str) -> Option<u32> {
        self.lookup(self.hasher.hash_one(text), text)
    }
}

#[derive(Clone, Copy)]
struct Row {
    ts: i64,
    url_id: i64,
    log_id: i64,
    kind: Option<Kind>,
    purpose_declared: bool,
    id: u32,
    ua: u32,
    ip: u32,
    delivery: u32,
    purpose: u32,
}

/// Hits given field by field (from Python objects), with their strings interned.
#[derive(Default)]
pub struct HitTable {
    rows: Vec<Row>,
    ids: Interner,
    uas: Interner,
    ips: Interner,
    deliveries: Interner,
    purposes: Interner,
}

/// One hit's fields, as the reference's `Hit` has them (also what [`crate::run_items`] encodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HitFields<'a> {
    pub hit_id: &'a str,
    pub ts: i64,
    pub kind: &'a str,
    pub delivery_id: &'a str,
    pub log_id: i64,
    pub url_id: i64,
    pub ua: &'a str,
    pub ip: &'a str,
    /// "" when undeclared (any other text counts as declared, as in the reference).
    pub purpose: &'a str,
}

/// The strings of a hit the table interns apart from its id ([`HitTable::intern`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strings {
    Ua,
    Ip,
    Delivery,
    Purpose,
}

/// A row's interned strings ([`HitTable::push_interned`]).
#[derive(Clone, Copy, Debug)]
pub struct RowStrings {
    pub ua: u32,
    pub ip: u32,
    pub delivery: u32,
    pub purpose: u32,
}

/// New hits grouped by recipient: see [`HitTable::group`].
pub struct Grouped {
    /// (delivery id, log id, range of `new`), ascending by (delivery id, log id).
    pub recipients: Vec<(u32, i64, Range<usize>)>,
    pub new: Vec<u32>,
    pub duplicates: u64,
}

impl HitTable {
    pub fn push(&mut self, hit: HitFields<'_>) -> u32 {
        let strings = RowStrings {
            ua: self.intern(Strings::Ua, hit.ua),
            ip: self.intern(Strings::Ip, hit.ip),
            delivery: self.intern(Strings::Delivery, hit.delivery_id),
            purpose: self.intern(Strings::Purpose, hit.purpose),
        };
        self.push_interned(&hit, Kind::parse(hit.kind), strings)
    }

    /// `push` of a hit whose user agent, address, delivery id and purpose are interned already
    /// (`intern`; the texts of `hit` are not read): a run's hits repeat them, and the caller knows
    /// which ones it has seen (hashing a user agent per hit would cost more than the rest of the row).
    pub fn push_interned(&mut self, hit: &HitFields<'_>, kind: Option<Kind>, strings: RowStrings) -> u32 {
        let row = Row {
            ts: hit.ts,
            url_id: hit.url_id,
            log_id: hit.log_id,
            kind,
            purpose_declared: !hit.purpose.is_empty(),
            id: self.ids.intern(hit.hit_id),
            ua: strings.ua,
            ip: strings.ip,
            delivery: strings.delivery,
            purpose: strings.purpose,
        };
        self.rows.push(row);
        (self.rows.len() - 1) as u32
    }

    /// The number of `text` among the table's strings of that kind (interned if new).
    pub fn intern(&mut self, strings: Strings, text: &str) -> u32 {
        match strings {
            Strings::Ua => self.uas.intern(text),
            Strings::Ip => self.ips.intern(text),
            Strings::Delivery => self.deliveries.intern(text),
            Strings::Purpose => self.purposes.intern(text),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Room for `rows` more hits, each with an id of its own (32 hex digits: a hit path's).
    pub fn reserve(&mut self, rows: usize) {
        self.rows.reserve(rows);
        self.ids.reserve(rows, 32);
    }

    /// The rows renumbered: row `at` becomes what row `order[at]` was (`order`: every row once).
    pub fn reorder(&mut self, order: &[u32]) {
        assert_eq!(order.len(), self.rows.len(), "every row once");
        self.rows = order.iter().map(|&row| self.rows[row as usize]).collect();
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn delivery_id(&self, delivery: u32) -> &str {
        self.deliveries.text(delivery)
    }

    /// The hit's user agent, address and hit id, as interned numbers.
    pub fn ua_of(&self, hit: u32) -> u32 {
        self.rows[hit as usize].ua
    }

    pub fn ip_of(&self, hit: u32) -> u32 {
        self.rows[hit as usize].ip
    }

    pub fn hit_id_of(&self, hit: u32) -> &str {
        self.ids.text(self.rows[hit as usize].id)
    }

    pub fn ip_text(&self, hit: u32) -> &str {
        self.ips.text(self.rows[hit as usize].ip)
    }

    /// The hit's declared purpose as given ("" when undeclared).
    pub fn purpose_text(&self, hit: u32) -> &str {
        self.purposes.text(self.rows[hit as usize].purpose)
    }

    /// The hit's declared purpose as interned (`purpose_texts` spells it).
    pub fn purpose_of(&self, hit: u32) -> u32 {
        self.rows[hit as usize].purpose
    }

    /// The distinct purposes as given ("" for undeclared), by interned number.
    pub fn purpose_texts(&self) -> Vec<&str> {
        self.purposes.texts()
    }

    /// The distinct user agents and addresses, by interned number.
    pub fn user_agent_texts(&self) -> Vec<&str> {
        self.uas.texts()
    }

    pub fn ip_texts(&self) -> Vec<&str> {
        self.ips.texts()
    }

    /// The interned number of a hit id (as [`HitSet::id`] numbers it), if a hit has it.
    pub fn find_id(&self, text: &str) -> Option<u32> {
        self.ids.find(text)
    }

    /// The interned number of a user agent / address text, if a hit has it.
    pub fn find_user_agent(&self, text: &str) -> Option<u32> {
        self.uas.find(text)
    }

    pub fn find_ip(&self, text: &str) -> Option<u32> {
        self.ips.find(text)
    }

    pub fn recipient(&self, hit: u32) -> (u32, i64) {
        let row = &self.rows[hit as usize];
        (row.delivery, row.log_id)
    }

    /// The reference's first step: `hits` deduplicated by hit id (first
    /// occurrence wins), grouped by recipient, recipients sorted by
    /// (delivery id, log id).
    pub fn group(&self, hits: &[u32]) -> Grouped {
        // Deliveries are few: ranked once by text, then one packed key per hit is sorted, (delivery rank,
        // log id, position): no collection per recipient, and hits stay in their order within one.
        let mut ranked: Vec<u32> = (0..self.deliveries.len() as u32).collect();
        ranked.sort_unstable_by(|&a, &b| self.deliveries.text(a).cmp(self.deliveries.text(b)));
        let mut rank = vec![0u32; ranked.len()];
        for (at, &delivery) in ranked.iter().enumerate() {
            rank[delivery as usize] = at as u32;
        }
        let mut first: Vec<bool> = vec![false; self.ids.len()];
        let mut positions: Vec<u32> = Vec::with_capacity(hits.len()); // of the first hit of each id
        let (mut lowest, mut highest) = (i64::MAX, i64::MIN); // log ids
        for (position, &hit) in hits.iter().enumerate() {
            let row = &self.rows[hit as usize];
            if !std::mem::replace(&mut first[row.id as usize], true) {
                positions.push(position as u32);
                (lowest, highest) = (lowest.min(row.log_id), highest.max(row.log_id));
            }
        }
        let duplicates = (hits.len() - positions.len()) as u64;
        // The log id from the lowest, as wide as the run needs: the keys in 64 bits when they fit (faster
        // to sort than 128).
        let log_bits = bit_width((i128::from(highest) - i128::from(lowest)).max(0) as u128);
        let key = |position: u32| {
            let row = &self.rows[hits[position as usize] as usize];
            let log_id = (i128::from(row.log_id) - i128::from(lowest)) as u128;
            u128::from(rank[row.delivery as usize]) << (32 + log_bits) | log_id << 32 | u128::from(position)
        };
        let (new, recipients) = if 32 + log_bits + bit_width(ranked.len() as u128) <= u64::BITS {
            self.grouped_keys(hits, positions.iter().map(|&position| key(position) as u64).collect())
        } else {
            self.grouped_keys(hits, positions.iter().map(|&position| key(position)).collect())
        };
        Grouped {
            recipients,
            new,
            duplicates,
        }
    }

    /// `group`'s keys sorted: the hits in order, and each recipient's (delivery, log id, range of them).
    #[allow(clippy::type_complexity)] // Grouped's parts
    fn grouped_keys<K: Copy + Ord + Into<u128>>(
        &self,
        hits: &[u32],
        mut keys: Vec<K>,
    ) -> (Vec<u32>, Vec<(u32, i64, Range<usize>)>) {
        keys.sort_unstable();
        let mut new = Vec::with_capacity(keys.len());
        let mut recipients: Vec<(u32, i64, Range<usize>)> = Vec::new();
        for (at, &key) in keys.iter().enumerate() {
            let hit = hits[(key.into() as u32) as usize];
            new.push(hit);
            if at == 0 || keys[at - 1].into() >> 32 != key.into() >> 32 {
                let row = &self.rows[hit as usize];
                recipients.push((row.delivery, row.log_id, at..at));
            }
            recipients.last_mut().expect("one pushed").2.end = at + 1;
        }
        (new, recipients)
    }
}

impl HitSet for HitTable {
    const IDS_MAY_REPEAT: bool = true;
    fn ts(&self, hit: u32) -> i64 {
        self.rows[hit as usize].ts
    }
    fn kind(&self, hit: u32) -> Option<Kind> {
        self.rows[hit as usize].kind
    }
    fn url_id(&self, hit: u32) -> i64 {
        self.rows[hit as usize].url_id
    }
    fn ua(&self, hit: u32) -> u32 {
        self.rows[hit as usize].ua
    }
    fn ua_text(&self, ua: u32) -> &str {
        self.uas.text(ua)
    }
    fn ip(&self, hit: u32) -> &[u8] {
        self.ips.text(self.rows[hit as usize].ip).as_bytes()
    }
    fn purpose_declared(&self, hit: u32) -> bool {
        self.rows[hit as usize].purpose_declared
    }
    fn id(&self, hit: u32) -> u32 {
        self.rows[hit as usize].id
    }
    fn id_count(&self) -> usize {
        self.ids.len()
    }
    fn id_cmp(&self, a: u32, b: u32) -> Ordering {
        let (a, b) = (self.rows[a as usize].id, self.rows[b as usize].id);
        if a == b {
            Ordering::Equal
        } else {
            self.ids.text(a).cmp(self.ids.text(b)) // UTF-8 order is code point order
        }
    }
    fn id_text(&self, hit: u32) -> Cow<'_, str> {
        Cow::Borrowed(self.ids.text(self.rows[hit as usize].id))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const D1: &str = "00112233445566ff";
    const D2: &str = "0a0b0c0d0e0f1011";

    fn hit<'a>(hit_id: &'a str, ts: i64, kind: &'a str, delivery_id: &'a str, log_id: i64) -> HitFields<'a> {
        let url_id = match kind {
            "open" => 1,
            "click" => 4,
            _ => 2,
        };
        HitFields {
            hit_id,
            ts,
            kind,
            delivery_id,
            log_id,
            url_id,
            ua: "ua",
            ip: "ip",
            purpose: "",
        }
    }

    /// A recipient's stored hits and summary.
    pub(crate) struct Prior<'a> {
        pub delivery_id: &'a str,
        pub log_id: i64,
        pub hits: Vec<HitFields<'a>>,
        pub summary: Option<Summary>,
    }

    /// Aggregate `new` over `prior` (hits pushed in the table first), as the Python face does.
    fn run(new: &[HitFields<'_>], prior: &[HitFields<'_>], max: usize) -> (Aggregates, HitTable, Vec<Group>) {
        let mut recipients: Vec<Prior<'_>> = Vec::new();
        for hit in prior {
            match recipients
                .iter_mut()
                .find(|entry| (entry.delivery_id, entry.log_id) == (hit.delivery_id, hit.log_id))
            {
                Some(entry) => entry.hits.push(*hit),
                None => recipients.push(Prior {
                    delivery_id: hit.delivery_id,
                    log_id: hit.log_id,
                    hits: vec![*hit],
                    summary: None,
                }),
            }
        }
        let (aggregates, table, groups, _) = run_with(new, &recipients, Bound::new(max, None));
        (aggregates, table, groups)
    }

    #[test]
    fn groups_by_delivery_text_and_log_id_first_of_each_id_in_order() {
        // Log ids close together (keys in 64 bits) and far apart (128), negative ones, repeated hit ids.
        for far in [false, true] {
            let log_ids: [i64; 5] = if far {
                [3, -7, i64::MAX, i64::MIN, 0]
            } else {
                [3, -7, 12, 5, 0]
            };
            let deliveries = ["b", "a", "ab", "c"];
            let ids: Vec<String> = (0..60).map(|serial| format!("id{}", serial % 45)).collect();
            let new: Vec<HitFields<'_>> = ids
                .iter()
                .enumerate()
                .map(|(at, hit_id)| HitFields {
                    hit_id,
                    ts: at as i64,
                    kind: "open",
                    delivery_id: deliveries[at * 7 % 4],
                    log_id: log_ids[at * 3 % 5],
                    url_id: 0,
                    ua: "",
                    ip: "",
                    purpose: "",
                })
                .collect();
            let mut table = HitTable::default();
            let rows: Vec<u32> = new.iter().map(|hit| table.push(*hit)).collect();
            let grouped = table.group(&rows);
            let mut seen = std::collections::HashSet::new();
            let mut expected: Vec<(&str, i64, u32)> = Vec::new();
            for (&row, hit) in rows.iter().zip(&new) {
                if seen.insert(hit.hit_id) {
                    expected.push((hit.delivery_id, hit.log_id, row));
                }
            }
            expected.sort_by_key(|&(delivery, log_id, _)| (delivery, log_id)); // stable
            assert_eq!(grouped.duplicates, 15);
            assert_eq!(grouped.new, expected.iter().map(|entry| entry.2).collect::<Vec<_>>());
            let mut recipients: Vec<(&str, i64, Range<usize>)> = Vec::new();
            for (at, &(delivery, log_id, _)) in expected.iter().enumerate() {
                match recipients.last_mut() {
                    Some(last) if (last.0, last.1) == (delivery, log_id) => last.2.end = at + 1,
                    _ => recipients.push((delivery, log_id, at..at + 1)),
                }
            }
            let found: Vec<(&str, i64, Range<usize>)> = grouped
                .recipients
                .iter()
                .map(|(delivery, log_id, range)| (table.delivery_id(*delivery), *log_id, range.clone()))
                .collect();
            assert_eq!(found, recipients, "far: {far}");
        }
    }

    /// `run` with summaries and a bound; also the table's delivery number of each delivery number of the groups.
    pub(crate) fn run_with(
        new: &[HitFields<'_>],
        prior: &[Prior<'_>],
        bound: Bound,
    ) -> (Aggregates, HitTable, Vec<Group>, Vec<u32>) {
        let mut table = HitTable::default();
        let new_rows: Vec<u32> = new.iter().map(|hit| table.push(*hit)).collect();
        let prior_rows: Vec<Vec<u32>> = prior
            .iter()
            .map(|entry| entry.hits.iter().map(|hit| table.push(*hit)).collect())
            .collect();
        let grouped = table.group(&new_rows);
        let mut stored = Vec::new();
        let mut groups = Vec::new();
        let mut summaries = Vec::new();
        let mut numbers: Vec<u32> = Vec::new();
        for (delivery, log_id, range) in &grouped.recipients {
            let start = stored.len();
            let key = (table.delivery_id(*delivery), *log_id);
            let entry = prior.iter().position(|entry| (entry.delivery_id, entry.log_id) == key);
            if let Some(at) = entry {
                stored.extend_from_slice(&prior_rows[at]);
            }
            summaries.push(entry.and_then(|at| prior[at].summary.clone()));
            if numbers.last() != Some(delivery) {
                numbers.push(*delivery);
            }
            groups.push(Group {
                delivery: (numbers.len() - 1) as u32,
                log_id: *log_id,
                new: range.clone(),
                prior: start..stored.len(),
            });
        }
        let input = Input {
            groups: &groups,
            summaries: &summaries,
            new: &grouped.new,
            prior: &stored,
            duplicates: grouped.duplicates,
        };
        (
            aggregate(&table, &input, bound, &DefaultContext),
            table,
            groups,
            numbers,
        )
    }

    fn indicators(aggregates: &Aggregates, delivery: usize) -> Vec<(&'static str, i64)> {
        aggregates.deliveries[delivery].indicators.clone()
    }

    #[test]
    fn the_one_minute_rule_counts_opens_after_the_last_counted_one() {
        let ids: Vec<String> = (0..6).map(|index| format!("{index:032x}")).collect();
        let opens: Vec<HitFields<'_>> = [0, 30_000, 59_999, 60_000, 100_000, 125_000]
            .iter()
            .zip(&ids)
            .map(|(&ts, id)| hit(id, ts, "open", D1, 1))
            .collect();
        let (aggregates, _, _) = run(&opens, &[], MAX_HITS_PER_RECIPIENT);
        assert_eq!(
            indicators(&aggregates, 0),
            [
                ("hits", 6),
                ("opens_unique", 1),
                ("opens_total", 3),
                ("opens_unique_human", 1),
                ("opens_total_human", 3)
            ]
        );
        assert_eq!(
            aggregates.deliveries[0].urls,
            [(
                1,
                vec![("total", 3), ("total_human", 3), ("unique", 1), ("unique_human", 1)]
            )]
        );
        assert_eq!(aggregates.recipients[0].added, 6);
    }

    #[test]
    fn recipients_in_order_duplicates_and_the_cap() {
        let new = [
            hit("b", 3, "click", D2, 1),
            hit("a", 1, "click", D1, 2),
            hit("a", 2, "click", D1, 2), // a repeated hit id in the batch
            hit("c", 2, "optout", D1, 1),
            hit("d", 5, "click", D1, 2),
        ];
        let prior = [hit("z", 0, "open", D1, 2)];
        let (aggregates, table, groups) = run(&new, &prior, 2);
        let order: Vec<(&str, i64)> = aggregates
            .recipients
            .iter()
            .map(|update| {
                let group = &groups[update.group];
                (
                    table.delivery_id(table.recipient(aggregates.kept[update.kept.start]).0),
                    group.log_id,
                )
            })
            .collect();
        assert_eq!(order, [(D1, 1), (D1, 2), (D2, 1)]);
        assert_eq!(aggregates.duplicates, 1);
        // D1/2: stored z(0), new a(1) and d(5), cap 2: the first (z) and the last (d) are kept, a is evicted.
        let kept = &aggregates.recipients[1];
        assert_eq!((kept.added, kept.over_limit, kept.kept.len()), (2, 1, 2));
        assert_eq!(kept.summary.as_ref().map(|summary| summary.count), Some(1));
        assert_eq!(aggregates.over_limit, 1);
        assert_eq!(aggregates.deliveries.len(), 2);
    }

    #[test]
    fn stored_hits_seen_again_change_nothing() {
        let stored = [hit("a", 1, "click", D1, 1), hit("b", 2, "open", D1, 1)];
        let (aggregates, _, _) = run(&stored, &stored, MAX_HITS_PER_RECIPIENT);
        assert_eq!(
            (
                aggregates.duplicates,
                aggregates.recipients.len(),
                aggregates.deliveries.len()
            ),
            (2, 0, 0)
        );
    }

    #[test]
    fn the_hashes_are_the_references() {
        // chalicelib/tracking/core.py: fnv1a64(b""), fnv1a64(b"a"), requester_hash("ua", "ip"), _filter_bits("0" * 32)
        assert_eq!(fnv1a64(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(&[b"ua", b"\0", b"ip"]), 0xa864_5ae4_33d3_7880);
        assert_eq!(filter_bits(&"0".repeat(32)), [13733, 27877, 176]);
    }

    #[test]
    fn a_flood_keeps_the_first_and_the_last_hits_and_counts_every_one() {
        let ids: Vec<String> = (0..1_000).map(|index| format!("{index:032x}")).collect();
        let flood: Vec<HitFields<'_>> = ids
            .iter()
            .enumerate()
            .map(|(index, id)| hit(id, index as i64 * 10, "click", D1, 1))
            .collect();
        let (aggregates, _, _) = run(&flood, &[], 10);
        let update = &aggregates.recipients[0];
        assert_eq!((update.kept.len(), update.added, update.over_limit), (10, 1_000, 990));
        let summary = update.summary.as_ref().expect("evicted hits");
        assert_eq!(
            (summary.count, summary.clicked, summary.kinds),
            (990, true, [990, 0, 0, 0])
        );
        assert_eq!(summary.first, (50, ids[5].clone()));
        assert_eq!(summary.last, (9_940, ids[994].clone()));
        assert_eq!(
            &indicators(&aggregates, 0)[..4],
            [
                ("hits", 1_000),
                ("opens_unique", 1),
                ("clicks_unique", 1),
                ("clicks_total", 1_000)
            ]
        );
    }
}
