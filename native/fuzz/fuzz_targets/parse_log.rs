//! Fuzz target: the log parser and the aggregation behind `process_log`.
//!
//! The first byte chooses how the rest is used:
//!
//! - even: the rest is a log object as it is (plain, or gzip when it starts
//!   with the magic bytes: framing, deflate and trailer all fuzzed);
//! - odd: the rest is plain text that is also gzipped (one or two members, NUL
//!   padding) and parsed both ways: the answers must be the same.
//!
//! Every line is also read by the fast path for the hit path's own spelling
//! of a record and by the general JSON parser: where the fast path reads it,
//! both must give the same fields.
//!
//! Whatever the input, nothing panics (debug assertions and overflow checks
//! are on) and the results keep the contract's invariants: an object-level
//! rejection has no lines, hits or line rejections; otherwise lines equal
//! hits + duplicates + rejected lines; rejections are in line order with
//! numbers from 1; hit ids are distinct; user agents are at most 512 bytes
//! and IPs at most 64; and the aggregation accounts for every hit (stored +
//! evicted into the summary == hits, for any bound), its `hits` indicators
//! sum to every hit, and no delivery delta holds a zero.

#![no_main]

use std::collections::HashSet;
use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use libfuzzer_sys::fuzz_target;
use sendtrail_native::logs::{self, Limits, ParsedLog};
use sendtrail_native::tokens::Keys;
use sendtrail_native::{aggregate, json};

const RING: [(u8, &[u8]); 3] = [
    (1, b"fuzz-key-one-0123456789abcdef012"),
    (2, b"fuzz-key-two"),
    (200, b""),
];

fn ring() -> Keys {
    RING.iter()
        .fold(Keys::new(), |keys, (key_id, secret)| keys.with(*key_id, secret))
}

fn gzip(text: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::new(level));
    encoder.write_all(text).unwrap();
    encoder.finish().unwrap()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = ring();
    // A small object limit, so the too-large path is reached too.
    let limits = Limits {
        max_object_bytes: if mode & 2 == 0 { logs::MAX_OBJECT_BYTES } else { 3000 },
        ..Limits::default()
    };
    let parsed = logs::parse_log(rest, &keys, limits);
    check(&parsed);
    for line in rest.split(|&byte| byte == b'\n') {
        if let Ok(text) = std::str::from_utf8(line) {
            canonical_agrees(text);
        }
    }
    if mode & 1 == 1 && !rest.starts_with(&logs::GZIP_MAGIC) {
        let split = usize::from(mode >> 2) * rest.len() / 64;
        let mut zipped = gzip(&rest[..split], u32::from(mode >> 4) % 10);
        zipped.extend_from_slice(&[0, 0][..usize::from(mode >> 7)]);
        zipped.extend_from_slice(&gzip(&rest[split..], 6));
        let unzipped = logs::parse_log(&zipped, &keys, limits);
        assert_eq!(unzipped.lines, parsed.lines);
        assert_eq!(unzipped.hits, parsed.hits);
        assert_eq!(unzipped.rejections, parsed.rejections);
        assert_eq!(unzipped.duplicates, parsed.duplicates);
        assert_eq!(unzipped.object, parsed.object);
    }
});

/// The fast reading of the hit path's own spelling gives what the general
/// parser gives, whenever it reads a line at all.
fn canonical_agrees(text: &str) {
    let mut fast: json::Fields<'_> = Default::default();
    if json::parse_canonical(text, &mut fast).is_some() {
        let mut general: json::Fields<'_> = Default::default();
        assert_eq!(
            json::parse_into(text, json::DEFAULT_MAX_INT_DIGITS, &mut general),
            Ok(true)
        );
        assert_eq!(fast, general, "{text:?}");
    } else {
        assert!(fast.iter().all(Option::is_none));
    }
}

fn check(parsed: &ParsedLog) {
    if parsed.object.is_some() {
        assert_eq!((parsed.lines, parsed.hits.len(), parsed.rejections.len()), (0, 0, 0));
        return;
    }
    assert_eq!(
        parsed.lines,
        parsed.hits.len() as u64 + parsed.duplicates + parsed.rejections.len() as u64
    );
    let rejected: u64 = parsed.rejected().iter().map(|(_, count)| count).sum();
    assert_eq!(rejected, parsed.rejections.len() as u64);
    let mut last = 0;
    for rejection in &parsed.rejections {
        assert!(rejection.line > last, "line numbers go up");
        last = rejection.line;
        assert!(!rejection.data.contains(&b'\n'));
        assert_eq!(rejection.field.is_some(), rejection.reason == logs::Reason::BadField);
    }
    let mut ids = HashSet::new();
    for hit in &parsed.hits {
        assert!(ids.insert(hit.hit_id), "hit ids are distinct");
        assert!(parsed.ua(hit).len() <= logs::MAX_UA_BYTES);
        assert!(parsed.ip(hit).len() <= logs::MAX_IP_BYTES);
        assert!(hit.ts <= logs::MAX_SAFE_INTEGER && hit.log_id <= logs::MAX_SAFE_INTEGER);
    }
    for cap in [0, 1, 3, aggregate::MAX_HITS_PER_RECIPIENT] {
        let (aggregates, groups, _) = aggregate::aggregate_parsed(parsed, aggregate::Bound::new(cap, None));
        let kept: usize = aggregates.recipients.iter().map(|update| update.kept.len()).sum();
        // Every hit is stored or evicted into its recipient's summary, and counted either way.
        assert_eq!(kept as i64 + aggregates.over_limit, parsed.hits.len() as i64);
        assert_eq!(aggregates.duplicates, 0);
        let added: u64 = aggregates.recipients.iter().map(|update| update.added).sum();
        assert_eq!(added as usize, parsed.hits.len());
        for update in &aggregates.recipients {
            let evicted = update.summary.as_ref().map_or(0, |summary| summary.count);
            assert_eq!(evicted, update.over_limit);
            assert!(update.kept.len() <= cap);
        }
        assert!(aggregates.recipients.len() <= groups.len());
        let indicated: i64 = aggregates
            .deliveries
            .iter()
            .flat_map(|delta| delta.indicators.iter())
            .filter(|(name, _)| *name == "hits")
            .map(|(_, value)| value)
            .sum();
        assert_eq!(indicated as usize, parsed.hits.len());
        for delta in &aggregates.deliveries {
            assert!(delta.indicators.iter().all(|(_, value)| *value != 0));
            assert!(delta
                .urls
                .iter()
                .all(|(_, values)| values.iter().all(|(_, value)| *value != 0)));
        }
    }
}
