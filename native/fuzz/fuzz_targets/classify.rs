//! Fuzz target: human/machine classification inside the aggregation.
//!
//! The input chooses the rules (which reasons apply, the burst and too-fast
//! thresholds), the flags of four user agents and three addresses, the send
//! times of the recipients, the per-recipient cap, up to 48 hits over two
//! deliveries and three log ids (any kind, times, links, the honeypot link,
//! a declared purpose: a prefetch), and where the hits are split into two runs.
//!
//! Whatever the input: every verdict holds only the reasons the rules enable;
//! human counters never exceed their all-hits counters within a run; and two
//! runs (the second with the first's kept hits, their stored verdicts and
//! summary as prior) end with the same stored hits as one run over all the
//! hits. Below the bound (cap 500) they also end with exactly its counters
//! and per-hit verdicts: classification is stable however hits are split
//! across runs. Past it (caps 1 and 3), the counters of every distinct hit
//! (hits, clicks, mirror views, clicks per bucket, the unique flags and
//! persons clicking) are still exactly one run's (docs/spec/tracking-core.md).

#![no_main]

use std::collections::{BTreeMap, HashMap};

use libfuzzer_sys::fuzz_target;
use sendtrail_native::aggregate::{self, Aggregates, Bound, Group, HitFields, HitTable, Input, Summary};
use sendtrail_native::classify::{self, Context, Rules};

const DELIVERIES: [&str; 2] = ["00112233445566ff", "0a0b0c0d0e0f1011"];
const UAS: [&str; 4] = ["ua0", "ua1", "ua2", "ua3"];
const IPS: [&str; 3] = ["ip0", "ip1", "ip2"];
const KINDS: [&str; 5] = ["open", "click", "click", "optout", "other"];
/// Mostly undeclared, as requests are; any non-empty text is declared.
const PURPOSES: [&str; 8] = ["", "", "", "", "", "prefetch", "preview", "x"];
const T0: i64 = 1_700_000_000_000;

struct FuzzContext<'a> {
    rules: Rules,
    table: &'a HitTable,
    agents: [i64; 4],
    addresses: [i64; 3],
    sent_at: Vec<Option<i64>>,
    stored: HashMap<u32, i64>,
}

impl Context for FuzzContext<'_> {
    fn rules(&self) -> Rules {
        self.rules
    }
    fn agent(&self, hit: u32) -> i64 {
        let text = &self.table.user_agent_texts()[self.table.ua_of(hit) as usize];
        self.agents[UAS.iter().position(|ua| **ua == **text).expect("a known agent")]
    }
    fn address(&self, hit: u32) -> i64 {
        let text = &self.table.ip_texts()[self.table.ip_of(hit) as usize];
        self.addresses[IPS.iter().position(|ip| **ip == **text).expect("a known address")]
    }
    fn sent_at(&self, group: usize) -> Option<i64> {
        self.sent_at[group]
    }
    fn stored(&self, hit: u32) -> Option<i64> {
        self.stored.get(&hit).copied()
    }
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        let Some((&byte, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        byte
    }
}

/// Counters summed over runs: (delivery, group, key, name) -> value.
type Totals = BTreeMap<(String, &'static str, i128, &'static str), i64>;

struct Run {
    aggregates: Aggregates,
    groups: Vec<Group>,
    delivery_of_group: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
fn run(
    table: &HitTable,
    new: &[u32],
    kept_before: &HashMap<(u32, i64), Vec<u32>>,
    summaries_before: &HashMap<(u32, i64), Summary>,
    stored: &HashMap<u32, i64>,
    rules: Rules,
    agents: [i64; 4],
    addresses: [i64; 3],
    sent: &HashMap<(u32, i64), i64>,
    cap: usize,
) -> Run {
    let grouped = table.group(new);
    let mut prior = Vec::new();
    let mut groups = Vec::new();
    let mut numbers: Vec<u32> = Vec::new();
    let mut sent_at = Vec::new();
    let mut delivery_of_group = Vec::new();
    let mut summaries = Vec::new();
    for (delivery, log_id, range) in &grouped.recipients {
        summaries.push(summaries_before.get(&(*delivery, *log_id)).cloned());
        let start = prior.len();
        prior.extend(kept_before.get(&(*delivery, *log_id)).into_iter().flatten());
        if numbers.last() != Some(delivery) {
            numbers.push(*delivery);
        }
        groups.push(Group {
            delivery: (numbers.len() - 1) as u32,
            log_id: *log_id,
            new: range.clone(),
            prior: start..prior.len(),
        });
        sent_at.push(sent.get(&(*delivery, *log_id)).copied());
        delivery_of_group.push(table.delivery_id(*delivery).to_owned());
    }
    let input = Input {
        groups: &groups,
        summaries: &summaries,
        new: &grouped.new,
        prior: &prior,
        duplicates: grouped.duplicates,
    };
    let context = FuzzContext {
        rules,
        table,
        agents,
        addresses,
        sent_at,
        stored: stored.clone(),
    };
    let aggregates = aggregate::aggregate(table, &input, Bound::new(cap, None), &context);
    for (update, verdicts) in aggregates
        .recipients
        .iter()
        .map(|u| (u, &aggregates.verdicts[u.kept.clone()]))
    {
        assert_eq!(verdicts.len(), update.kept.len());
        assert!(
            verdicts
                .iter()
                .all(|&verdict| verdict & !rules.enabled & classify::ALL_RULES == 0
                    && verdict & !classify::ALL_RULES == 0)
        );
    }
    Run {
        aggregates,
        groups,
        delivery_of_group,
    }
}

fn add(totals: &mut Totals, run: &Run) {
    let numbers: Vec<String> = {
        let mut seen: Vec<String> = Vec::new();
        for delivery in &run.delivery_of_group {
            if seen.last() != Some(delivery) {
                seen.push(delivery.clone());
            }
        }
        seen
    };
    for delta in &run.aggregates.deliveries {
        let delivery = numbers[delta.delivery as usize].clone();
        let indicators: HashMap<&str, i64> = delta.indicators.iter().copied().collect();
        for (all, human) in [
            ("opens_total", "opens_total_human"),
            ("clicks_total", "clicks_total_human"),
            ("clicks_unique", "clicks_unique_human"),
            ("opens_unique", "opens_unique_human"),
        ] {
            // Within one run of fresh recipients (no prior), people are a part of every hit.
            if run.groups.iter().all(|group| group.prior.is_empty()) {
                let (all, human) = (
                    indicators.get(all).copied().unwrap_or(0),
                    indicators.get(human).copied().unwrap_or(0),
                );
                assert!(0 <= human && human <= all, "{human} > {all}");
            }
        }
        for (name, value) in &delta.indicators {
            *totals.entry((delivery.clone(), "ind", 0, name)).or_default() += value;
        }
        for (url, values) in &delta.urls {
            for (name, value) in values {
                *totals
                    .entry((delivery.clone(), "url", i128::from(*url), name))
                    .or_default() += value;
            }
        }
        for (start, values) in &delta.buckets {
            for (name, value) in values {
                *totals.entry((delivery.clone(), "bucket", *start, name)).or_default() += value;
            }
        }
    }
    totals.retain(|_, value| *value != 0);
}

/// Each recipient's kept hits and their verdicts after a run, merged over `before`.
fn kept_after(
    table: &HitTable,
    run: &Run,
    before: &mut HashMap<(u32, i64), Vec<u32>>,
    summaries: &mut HashMap<(u32, i64), Summary>,
    verdicts: &mut HashMap<u32, i64>,
) {
    for update in &run.aggregates.recipients {
        let kept = run.aggregates.kept[update.kept.clone()].to_vec();
        let recipient = table.recipient(kept[0]); // caps of 1 or more: never empty
        if let Some(summary) = &update.summary {
            summaries.insert(recipient, (**summary).clone());
        }
        for (&hit, &verdict) in kept.iter().zip(&run.aggregates.verdicts[update.kept.clone()]) {
            verdicts.insert(hit, verdict);
        }
        before.insert(recipient, kept);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes(data);
    let rules = Rules {
        enabled: i64::from(u16::from_le_bytes([bytes.next(), bytes.next()])) & classify::ALL_RULES,
        burst_links: i64::from(bytes.next() % 5),
        burst_window_ms: i64::from(bytes.next()) * 100,
        min_click_after_send_ms: i64::from(bytes.next()) * 1000,
    };
    let agents = [0; 4].map(|_| i64::from(bytes.next() & 15));
    let addresses = [0; 3].map(|_| i64::from(bytes.next() & 3));
    let cap = [1, 3, 500][usize::from(bytes.next() % 3)];
    let count = usize::from(bytes.next() % 49);
    let ids: Vec<String> = (0..count).map(|index| format!("{index:032x}")).collect();
    let mut table = HitTable::default();
    let mut rows = Vec::new();
    for id in &ids {
        let ts = T0 + i64::from(u16::from_le_bytes([bytes.next(), bytes.next()])) * 10;
        let shape = bytes.next();
        rows.push(table.push(HitFields {
            hit_id: id,
            ts,
            kind: KINDS[usize::from(shape % 5)],
            delivery_id: DELIVERIES[usize::from(shape >> 7)],
            log_id: i64::from((shape >> 3) % 3),
            url_id: i64::from(bytes.next() % 6),
            ua: UAS[usize::from(shape >> 5 & 3)],
            ip: IPS[usize::from(bytes.next() % 3)],
            purpose: PURPOSES[usize::from(bytes.next() % 8)],
        }));
    }
    let mut sent = HashMap::new();
    for &row in &rows {
        let recipient = table.recipient(row);
        if let std::collections::hash_map::Entry::Vacant(slot) = sent.entry(recipient) {
            let byte = bytes.next();
            if byte & 1 == 1 {
                slot.insert(T0 + i64::from(byte) * 50);
            }
        }
    }
    let split = usize::from(bytes.next()) * rows.len() / 256;

    // The workflow's way: each run's kept hits and verdicts are the next run's prior and stored verdicts.
    let runs = |batches: &[&[u32]]| {
        let (mut totals, mut kept, mut summaries, mut verdicts) =
            (Totals::new(), HashMap::new(), HashMap::new(), HashMap::new());
        for batch in batches {
            let done = run(
                &table, batch, &kept, &summaries, &verdicts, rules, agents, addresses, &sent, cap,
            );
            add(&mut totals, &done);
            kept_after(&table, &done, &mut kept, &mut summaries, &mut verdicts);
        }
        (totals, kept, verdicts)
    };
    let (whole_totals, whole_kept, whole_verdicts) = runs(&[&rows]);
    let (totals, kept, verdicts) = runs(&[&rows[..split], &rows[split..]]);

    assert_eq!(kept, whole_kept);
    if cap >= rows.len() {
        assert_eq!(totals, whole_totals);
        for hits in kept.values() {
            for hit in hits {
                assert_eq!(verdicts[hit], whole_verdicts[hit], "hit {hit}");
            }
        }
    } else {
        // Past the bound: what every split counts the same (other counters may differ, see the spec).
        let exact = |totals: &Totals| -> Totals {
            let names = [
                "hits",
                "clicks_total",
                "mirror_views",
                "opens_unique",
                "clicks_unique",
                "optouts",
                "persons_clicking",
            ];
            totals
                .iter()
                .filter(|((_, group, _, name), _)| match *group {
                    "ind" => names.contains(name),
                    "bucket" => *name == "clicks",
                    _ => false,
                })
                .map(|(key, value)| (key.clone(), *value))
                .collect()
        };
        assert_eq!(exact(&totals), exact(&whole_totals));
    }
});
