//! Fuzz target: run item bodies (`docs/spec/run-items.md`, src/run_items.rs).
//!
//! The first byte chooses how the rest is used:
//!
//! - even: the rest is a body. Whatever it is, `decode` does not panic, and a
//!   body it accepts is the one `encode` writes for what it returns (one body
//!   per content).
//! - odd: the rest chooses an item's content: up to 12 hits over a few ids
//!   (one not hex), times (at the id's, shifted, out of range), recipients,
//!   agents, addresses, kinds and purposes (some unknown), verdicts (some out
//!   of range); corrections, some of the item's own hits or repeated; counters,
//!   some repeated, of delta 0 or past 64 bits. `encode` refuses it exactly
//!   when something in it is wrong (with one of its reasons); otherwise
//!   `decode` gives back the content in canonical order, from that very body.
//!   Content a workflow run holds already decoded (well-formed hits of the
//!   delivery, deltas within 64 bits) gives `encode_known` the same body or
//!   refusal; a body `encode` writes, `split` to a size the input chooses,
//!   is parts of at most that size whose contents in order are the body's
//!   (or refused: a part of one entry past it).
//!
//! A crash is a panic (index out of bounds, overflow: debug assertions and
//! overflow checks are on) or a failed `assert!`.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use sendtrail_native::logs::{self, Kind, Purpose};
use sendtrail_native::run_items::{self, Counter, Hit, KnownHit, KnownTexts, Reason, RunItem};

const DELIVERY: &str = "00112233445566ff";
const T0: i64 = 1_740_823_200_000;
const TOP: i64 = (1 << 53) - 1;
const KINDS: [&str; 5] = ["click", "open", "optout", "mirror", "view"];
const PURPOSES: [&str; 6] = ["", "", "prefetch", "prerender", "preview", "later"];
const TEXTS: [&str; 4] = ["", "ua", "203.0.113.0", "é🙂"];
const VERDICTS: [i64; 8] = [-1, 0, 0, 1, 256, TOP, -2, TOP + 1];
const STATS: [&str; 3] = ["indicators", "ua", "url#000004"];
const FIELDS: [&str; 2] = ["hits", "clicks"];
const DELTAS: [i128; 8] = [1, -1, 0, 3, i64::MAX as i128, i64::MIN as i128, 1 << 63, -(1 << 63) - 1];

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        let Some((&byte, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        byte
    }

    fn pick<T: Copy>(&mut self, values: &[T]) -> T {
        values[usize::from(self.next()) % values.len()]
    }
}

/// A decoded item written again: what `encode` makes of `decode`'s answer.
fn reencode(item: &RunItem<'_>) -> Vec<u8> {
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
    run_items::encode(DELIVERY, &hits, &corrections, &counters).expect("a decoded item encodes")
}

fn any_body(body: &[u8]) {
    if let Ok(item) = run_items::decode(body) {
        assert_eq!(
            reencode(&item),
            body,
            "an accepted body is the one its content encodes to"
        );
    }
}

fn content(bytes: &mut Bytes<'_>) {
    // Ids: 0-5 hit path ids at T0 (the time they carry), 6 in capitals (not ours).
    let ids: Vec<String> = (0..6u64)
        .map(|serial| format!("{T0:012x}{serial:020x}"))
        .chain(["AB".repeat(16)])
        .collect();
    let mut hits: Vec<(Hit<'_>, i64)> = Vec::new();
    for _ in 0..bytes.next() % 13 {
        let ts = match bytes.next() % 8 {
            0..=3 => T0,
            4 => T0 + 1,
            5 => 0,
            6 => TOP + 1,
            _ => -1,
        };
        let hit = Hit {
            hit_id: &ids[usize::from(bytes.next()) % ids.len()],
            ts,
            kind: bytes.pick(&KINDS),
            delivery_id: if bytes.next() == 255 {
                "0a0b0c0d0e0f1011"
            } else {
                DELIVERY
            },
            log_id: bytes.pick(&[1, 1, 2, 0, TOP, TOP + 1]),
            url_id: bytes.pick(&[4, 0, TOP, -1]),
            ua: bytes.pick(&TEXTS),
            ip: bytes.pick(&TEXTS),
            purpose: bytes.pick(&PURPOSES),
        };
        hits.push((hit, bytes.pick(&VERDICTS)));
    }
    let corrections: Vec<(&str, i64)> = (0..bytes.next() % 4)
        .map(|_| {
            (
                ids[usize::from(bytes.next()) % ids.len()].as_str(),
                bytes.pick(&VERDICTS),
            )
        })
        .collect();
    let counters: Vec<Counter<'_>> = (0..bytes.next() % 5)
        .map(|_| (bytes.pick(&STATS), bytes.pick(&FIELDS), bytes.pick(&DELTAS)))
        .collect();

    // Wrong, by the spec's rules, each thing by itself.
    let own: Vec<&str> = hits.iter().map(|(hit, _)| hit.hit_id).collect();
    let distinct = |keys: Vec<String>| keys.len() == keys.iter().collect::<HashSet<_>>().len();
    let hex = |id: &str| logs::hex32(u128::from_str_radix(id, 16).unwrap_or(u128::MAX)) == id;
    let in_range = |value: i64| (0..=TOP).contains(&value);
    let bad_hits = hits.iter().any(|(hit, verdict)| {
        hit.delivery_id != DELIVERY
            || !hex(hit.hit_id)
            || !KINDS[..4].contains(&hit.kind)
            || !["", "prefetch", "prerender", "preview"].contains(&hit.purpose)
            || ![hit.ts, hit.log_id, hit.url_id].into_iter().all(in_range)
            || !(-1..=TOP).contains(verdict)
    }) || !distinct(own.iter().map(|id| id.to_string()).collect());
    let bad_corrections = corrections
        .iter()
        .any(|(id, verdict)| !hex(id) || !(-1..=TOP).contains(verdict) || own.contains(id))
        || !distinct(corrections.iter().map(|(id, _)| id.to_string()).collect());
    let bad_counters = counters.iter().any(|&(_, _, delta)| i64::try_from(delta).is_err())
        || !distinct(
            counters
                .iter()
                .map(|(stat, field, _)| format!("{stat}\n{field}"))
                .collect(),
        );

    known(&hits, &corrections, &counters);
    let limit = usize::from(bytes.next()) * 2;
    match run_items::encode(DELIVERY, &hits, &corrections, &counters) {
        Err(error) => {
            assert!(bad_hits || bad_corrections || bad_counters, "refused {error}");
            assert!(matches!(
                error.reason,
                Reason::BadHit | Reason::Duplicate | Reason::OutOfRange
            ));
        }
        Ok(body) => {
            assert!(!(bad_hits || bad_corrections || bad_counters), "encoded what is wrong");
            let item = run_items::decode(&body).expect("an encoded body decodes");
            assert_eq!(reencode(&item), body);
            let mut wanted: Vec<(i64, i64, String, i64)> = hits
                .iter()
                .map(|(hit, verdict)| (hit.log_id, hit.ts, hit.hit_id.to_owned(), *verdict))
                .collect();
            wanted.sort();
            let got: Vec<(i64, i64, String, i64)> = item
                .hits
                .iter()
                .map(|hit| (hit.log_id, hit.ts, logs::hex32(hit.hit_id), hit.verdict))
                .collect();
            assert_eq!(got, wanted);
            let mut wanted: Vec<(&str, &str, i128)> = counters.into_iter().filter(|counter| counter.2 != 0).collect();
            wanted.sort();
            let got: Vec<(&str, &str, i128)> = item
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
            assert_eq!(got, wanted);
            assert_eq!(item.corrections.len(), corrections.len());
            // In parts of at most `limit` bytes, whose contents in order are the body's (or refused: a part of
            // one entry is past the limit).
            match run_items::split(&body, limit) {
                Ok(parts) => {
                    assert_eq!(parts.len() == 1, body.len() <= limit);
                    assert!(parts.len() == 1 || parts.iter().all(|part| part.len() <= limit));
                    let decoded: Vec<RunItem<'_>> = parts
                        .iter()
                        .map(|part| run_items::decode(part).expect("a part decodes"))
                        .collect();
                    let hits: Vec<_> = decoded
                        .iter()
                        .flat_map(|part| part.hits.iter().map(|hit| (hit.hit_id, hit.verdict)))
                        .collect();
                    assert_eq!(
                        hits,
                        item.hits
                            .iter()
                            .map(|hit| (hit.hit_id, hit.verdict))
                            .collect::<Vec<_>>()
                    );
                    let corrected: Vec<_> = decoded
                        .iter()
                        .flat_map(|part| part.corrections.iter().copied())
                        .collect();
                    assert_eq!(corrected, item.corrections);
                    let counted: Vec<_> = decoded
                        .iter()
                        .flat_map(|part| {
                            part.counters
                                .iter()
                                .map(|counter| (part.text(counter.stat), part.text(counter.field), counter.delta))
                        })
                        .collect();
                    let whole: Vec<_> = item
                        .counters
                        .iter()
                        .map(|counter| (item.text(counter.stat), item.text(counter.field), counter.delta))
                        .collect();
                    assert_eq!(counted, whole);
                }
                Err(run_items::SplitError::OneEntry(size)) => assert!(size > limit),
                Err(error) => panic!("a valid body refused: {error:?}"),
            }
        }
    }
}

/// `encode_known` of content a run holds (each text numbered by its place in TEXTS, ids as numbers), when
/// it can hold it: the body or refusal `encode` gives the same content without counters.
fn known(hits: &[(Hit<'_>, i64)], corrections: &[(&str, i64)], counters: &[Counter<'_>]) {
    let id = |text: &str| {
        u128::from_str_radix(text, 16)
            .ok()
            .filter(|&value| logs::hex32(value) == text)
    };
    // Every text a number: TEXTS, STATS and FIELDS as one list, each text once.
    let mut all: Vec<&str> = Vec::new();
    for text in TEXTS.iter().chain(&STATS).chain(&FIELDS) {
        if !all.contains(text) {
            all.push(text);
        }
    }
    let number = |text: &str| all.iter().position(|known| *known == text).expect("a known text") as u32;
    let purpose = |text: &str| {
        if text.is_empty() {
            Some(Purpose::Undeclared)
        } else {
            Purpose::parse(text)
        }
    };
    let Some(held) = hits
        .iter()
        .map(|(hit, verdict)| {
            let (Some(id), Some(kind), Some(purpose), DELIVERY) = (
                id(hit.hit_id),
                Kind::parse(hit.kind),
                purpose(hit.purpose),
                hit.delivery_id,
            ) else {
                return None;
            };
            Some(KnownHit {
                id,
                ts: hit.ts,
                kind,
                purpose,
                log_id: hit.log_id,
                url_id: hit.url_id,
                ua: number(hit.ua),
                ip: number(hit.ip),
                verdict: *verdict,
            })
        })
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let Some(corrected) = corrections
        .iter()
        .map(|&(hit_id, verdict)| id(hit_id).map(|id| (id, verdict)))
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let Some(deltas) = counters
        .iter()
        .map(|&(stat, field, delta)| {
            i64::try_from(delta)
                .ok()
                .map(|delta| (number(stat), number(field), delta))
        })
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let mut body = vec![7]; // written after what `out` holds, left as it is when refused
    let mut texts = KnownTexts::default();
    let got = run_items::encode_known(&mut body, &held, &corrected, &deltas, |at| all[at as usize], &mut texts);
    let want = run_items::encode(DELIVERY, hits, corrections, counters);
    match (got, want) {
        (Ok(()), Ok(wanted)) => assert_eq!(body[1..], wanted[..], "encode_known wrote another body"),
        (Err(error), Err(wanted)) => {
            assert_eq!(error, wanted);
            assert_eq!(body, [7]);
        }
        (got, want) => panic!("encode_known {got:?}, encode {want:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        any_body(rest);
    } else {
        content(&mut Bytes(rest));
    }
});
