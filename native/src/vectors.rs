//! The shared test vectors (`tests/vectors/*.json`, `docs/spec/tracking-core.md`):
//! the Python suite runs the same files on the reference (`tests/unit/test_vectors.py`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::aggregate::tests::{run_with, Prior};
use crate::aggregate::{Bound, HitFields, HitSet, Summary, SUMMARY_FILTER_BITS};
use crate::logs::{self, Limits};
use crate::run_items;
use crate::tokens::Keys;

fn vectors(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).expect("the vectors are JSON")
}

/// Standard base64 (with padding), as Python's base64.b64encode writes it.
fn base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for byte in text.bytes().filter(|&byte| byte != b'=') {
        let value = ALPHABET.iter().position(|&c| c == byte).expect("base64") as u32;
        buffer = buffer << 6 | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
        .collect()
}

fn int(value: &Value) -> i64 {
    value.as_i64().expect("an integer")
}

fn text(value: &Value) -> &str {
    value.as_str().expect("a string")
}

#[test]
fn parse_log_vectors() {
    let file = vectors("parse_log.json");
    let mut keys = Keys::new();
    for (key_id, secret) in file["keys"].as_object().expect("keys") {
        keys.insert(key_id.parse().expect("a key id"), &hex(text(secret)));
    }
    for case in file["cases"].as_array().expect("cases") {
        let name = text(&case["name"]);
        let data = match case.get("data") {
            Some(data) => text(data).as_bytes().to_vec(),
            None => base64(text(&case["data_base64"])),
        };
        let parsed = logs::parse_log(&data, &keys, Limits::default());
        let expected = &case["expected"];
        assert_eq!(parsed.lines as i64, int(&expected["lines"]), "{name}");
        assert_eq!(parsed.duplicates as i64, int(&expected["duplicates"]), "{name}");
        let hits: Vec<Value> = parsed
            .hits
            .iter()
            .map(|hit| {
                let mut fields = serde_json::json!({
                    "hit_id": logs::hex32(hit.hit_id), "ts": hit.ts, "kind": hit.kind.as_str(),
                    "delivery_id": logs::hex16(hit.delivery_id), "log_id": hit.log_id, "url_id": hit.url_id,
                    "ua": parsed.ua(hit), "ip": parsed.ip(hit),
                });
                if !hit.purpose.as_str().is_empty() {
                    fields["purpose"] = Value::from(hit.purpose.as_str()); // optional: absent when undeclared
                }
                fields
            })
            .collect();
        assert_eq!(Value::Array(hits), expected["hits"], "{name}");
        let mut rejections: Vec<(i64, &str, Option<&str>, Vec<u8>)> = parsed
            .rejections
            .iter()
            .map(|r| (r.line as i64, r.reason.as_str(), r.field, r.data.clone()))
            .collect();
        if let Some(reason) = parsed.object {
            rejections.push((0, reason.as_str(), None, data.clone()));
        }
        let wanted: Vec<(i64, &str, Option<&str>, Vec<u8>)> = expected["rejections"]
            .as_array()
            .expect("rejections")
            .iter()
            .map(|r| {
                (
                    int(&r["line"]),
                    text(&r["reason"]),
                    r["field"].as_str(),
                    base64(text(&r["data_base64"])),
                )
            })
            .collect();
        assert_eq!(rejections, wanted, "{name}");
        let mut rejected: BTreeMap<&str, i64> = BTreeMap::new();
        for (_, reason, _, _) in &rejections {
            *rejected.entry(reason).or_default() += 1;
        }
        let wanted: BTreeMap<&str, i64> = expected["rejected"]
            .as_object()
            .expect("rejected")
            .iter()
            .map(|(reason, count)| (reason.as_str(), int(count)))
            .collect();
        assert_eq!(rejected, wanted, "{name}");
    }
}

/// A summary as a tracking item's `evicted` map encodes it (chalicelib/tracking/items.py).
fn summary(value: &Value) -> Option<Summary> {
    if value.is_null() {
        return None;
    }
    let key = |name: &str| (int(&value[name][0]), text(&value[name][1]).to_owned());
    let flags: Vec<&str> = text(&value["flags"]).split(',').collect();
    let ints = |name: &str| -> Vec<i64> { value[name].as_array().expect("ints").iter().map(int).collect() };
    let requesters = text(&value["requesters"]);
    let mut kinds = [0; 4];
    for (slot, count) in kinds.iter_mut().zip(value["kinds"].as_array().expect("kinds")) {
        *slot = int(count);
    }
    let filter = base64(text(&value["filter"]));
    assert_eq!(filter.len(), SUMMARY_FILTER_BITS / 8);
    Some(Summary {
        count: int(&value["count"]),
        first: key("first"),
        last: key("last"),
        last_open: value.get("last_open").map(int),
        last_open_human: value.get("last_open_human").map(int),
        opened: flags.contains(&"opened"),
        clicked: flags.contains(&"clicked"),
        optout: flags.contains(&"optout"),
        human: flags.contains(&"human"),
        clicked_human: flags.contains(&"clicked_human"),
        urls: ints("urls"),
        urls_human: ints("urls_human"),
        requesters: (0..requesters.len())
            .step_by(16)
            .map(|at| u64::from_str_radix(&requesters[at..at + 16], 16).expect("hex"))
            .collect(),
        requesters_over: int(&value["requesters_over"]),
        filter,
        kinds,
        machine: int(&value["machine"]),
    })
}

fn hit_fields(value: &Value) -> HitFields<'_> {
    HitFields {
        hit_id: text(&value["hit_id"]),
        ts: int(&value["ts"]),
        kind: text(&value["kind"]),
        delivery_id: text(&value["delivery_id"]),
        log_id: int(&value["log_id"]),
        url_id: int(&value["url_id"]),
        ua: text(&value["ua"]),
        ip: text(&value["ip"]),
        purpose: value["purpose"].as_str().unwrap_or(""),
    }
}

fn counters<K: ToString>(entries: &[(K, Vec<(&'static str, i64)>)]) -> Value {
    let mut map = serde_json::Map::new();
    for (key, values) in entries {
        let inner: serde_json::Map<String, Value> = values
            .iter()
            .map(|(name, value)| ((*name).to_owned(), Value::from(*value)))
            .collect();
        map.insert(key.to_string(), Value::Object(inner));
    }
    Value::Object(map)
}

#[test]
fn aggregate_vectors() {
    let file = vectors("aggregate.json");
    for case in file["cases"].as_array().expect("cases") {
        let name = text(&case["name"]);
        let new: Vec<HitFields<'_>> = case["new_hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(hit_fields)
            .collect();
        let prior: Vec<Prior<'_>> = case["prior"]
            .as_array()
            .expect("prior")
            .iter()
            .map(|entry| Prior {
                delivery_id: text(&entry["delivery_id"]),
                log_id: int(&entry["log_id"]),
                hits: entry["hits"].as_array().expect("hits").iter().map(hit_fields).collect(),
                summary: summary(&entry["summary"]),
            })
            .collect();
        let max = int(&case["max_hits_per_recipient"]).max(0) as usize;
        let first = case["first_hits_per_recipient"]
            .as_i64()
            .map(|first| first.max(0) as usize);
        let (aggregates, table, _, numbers) = run_with(&new, &prior, Bound::new(max, first));
        let expected = &case["expected"];
        assert_eq!(aggregates.duplicates as i64, int(&expected["duplicates"]), "{name}");
        assert_eq!(aggregates.over_limit, int(&expected["over_limit"]), "{name}");
        let wanted = expected["recipients"].as_array().expect("recipients");
        assert_eq!(aggregates.recipients.len(), wanted.len(), "{name}");
        for (update, wanted) in aggregates.recipients.iter().zip(wanted) {
            let kept = &aggregates.kept[update.kept.clone()];
            let ids: Vec<&str> = kept.iter().map(|&hit| table.hit_id_of(hit)).collect();
            let wanted_ids: Vec<&str> = wanted["hits"].as_array().expect("ids").iter().map(text).collect();
            assert_eq!(ids, wanted_ids, "{name}");
            assert_eq!(
                (update.added as i64, update.over_limit),
                (int(&wanted["added"]), int(&wanted["over_limit"]))
            );
            let verdicts: Vec<i64> = wanted["verdicts"]
                .as_array()
                .expect("verdicts")
                .iter()
                .map(int)
                .collect();
            assert_eq!(aggregates.verdicts[update.kept.clone()], verdicts[..], "{name}");
            assert_eq!(
                update.summary.as_deref(),
                summary(&wanted["summary"]).as_ref(),
                "{name}"
            );
        }
        let deliveries: Vec<Value> = aggregates
            .deliveries
            .iter()
            .map(|delta| {
                let indicators: serde_json::Map<String, Value> = delta
                    .indicators
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), Value::from(*value)))
                    .collect();
                let agents: Vec<(String, Vec<(&'static str, i64)>)> = delta
                    .user_agents
                    .iter()
                    .map(|(ua, values)| (table.ua_text(*ua).to_owned(), values.clone()))
                    .collect();
                serde_json::json!({
                    "indicators": indicators, "urls": counters(&delta.urls), "buckets": counters(&delta.buckets),
                    "user_agents": counters(&agents),
                })
            })
            .collect();
        let wanted: Vec<Value> = expected["deliveries"]
            .as_array()
            .expect("deliveries")
            .iter()
            .map(|delivery| {
                let mut delivery = delivery.clone();
                delivery.as_object_mut().expect("a delivery").remove("delivery_id");
                delivery
            })
            .collect();
        assert_eq!(deliveries, wanted, "{name}");
        let ids: Vec<&str> = aggregates
            .deliveries
            .iter()
            .map(|delta| table.delivery_id(numbers[delta.delivery as usize]))
            .collect();
        let wanted_ids: Vec<&str> = expected["deliveries"]
            .as_array()
            .expect("deliveries")
            .iter()
            .map(|delivery| text(&delivery["delivery_id"]))
            .collect();
        assert_eq!(ids, wanted_ids, "{name}");
    }
}

/// A delta as the vectors give it: any JSON integer (one is past i64, to be refused).
fn delta(value: &Value) -> i128 {
    value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from))
        .expect("an integer delta")
}

/// A case's (hits with verdicts, corrections, counters), as given.
type RunItemInputs<'a> = (
    Vec<(run_items::Hit<'a>, i64)>,
    Vec<(&'a str, i64)>,
    Vec<run_items::Counter<'a>>,
);

fn run_item_inputs(case: &Value) -> RunItemInputs<'_> {
    let hits = case["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|hit| {
            let fields = hit_fields(hit);
            let hit_fields = run_items::Hit {
                hit_id: fields.hit_id,
                ts: fields.ts,
                kind: fields.kind,
                delivery_id: fields.delivery_id,
                log_id: fields.log_id,
                url_id: fields.url_id,
                ua: fields.ua,
                ip: fields.ip,
                purpose: fields.purpose,
            };
            (hit_fields, int(&hit["verdict"]))
        })
        .collect();
    let corrections = case["corrections"]
        .as_array()
        .expect("corrections")
        .iter()
        .map(|entry| (text(&entry["hit_id"]), int(&entry["verdict"])))
        .collect();
    let counters = case["counters"]
        .as_array()
        .expect("counters")
        .iter()
        .map(|entry| (text(&entry["stat"]), text(&entry["field"]), delta(&entry["delta"])))
        .collect();
    (hits, corrections, counters)
}

#[test]
fn run_item_vectors() {
    let file = vectors("run_items.json");
    let delivery_id = text(&file["delivery_id"]);
    let cases = file["cases"].as_array().expect("cases");
    let reasons = |wanted: &str| {
        run_items::Reason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == wanted)
            .unwrap_or_else(|| panic!("an unknown reason {wanted}"))
    };
    let (mut valid, mut refused, mut refused_encodings) = (0, 0, 0);
    for case in cases {
        let name = text(&case["name"]);
        if let Some(error) = case.get("error") {
            refused += 1;
            let refusal = run_items::decode(&hex(text(&case["body"]))).expect_err(name);
            assert_eq!(refusal.reason, reasons(text(error)), "{name}: {refusal}");
            continue;
        }
        let (hits, corrections, counters) = run_item_inputs(case);
        if let Some(error) = case.get("encode_error") {
            refused_encodings += 1;
            let refusal = run_items::encode(delivery_id, &hits, &corrections, &counters).expect_err(name);
            assert_eq!(refusal.reason, reasons(text(error)), "{name}: {refusal}");
            continue;
        }
        valid += 1;
        let body = hex(text(&case["body"]));
        let encoded = run_items::encode(delivery_id, &hits, &corrections, &counters).expect(name);
        assert_eq!(encoded, body, "{name}");

        // Decoded: the inputs in canonical order, without the counters of delta 0.
        let decoded = run_items::decode(&body).expect(name);
        let mut hits = hits;
        hits.sort_by_key(|(hit, _)| (hit.log_id, hit.ts, hit.hit_id));
        let got: Vec<Value> = decoded
            .hits
            .iter()
            .map(|hit| {
                serde_json::json!({
                    "hit_id": logs::hex32(hit.hit_id), "ts": hit.ts, "kind": hit.kind.as_str(),
                    "log_id": hit.log_id, "url_id": hit.url_id, "ua": decoded.text(hit.ua),
                    "ip": decoded.text(hit.ip), "purpose": hit.purpose.as_str(), "verdict": hit.verdict,
                })
            })
            .collect();
        let wanted: Vec<Value> = hits
            .iter()
            .map(|(hit, verdict)| {
                serde_json::json!({
                    "hit_id": hit.hit_id, "ts": hit.ts, "kind": hit.kind, "log_id": hit.log_id,
                    "url_id": hit.url_id, "ua": hit.ua, "ip": hit.ip, "purpose": hit.purpose, "verdict": verdict,
                })
            })
            .collect();
        assert_eq!(got, wanted, "{name}");
        let mut corrections = corrections;
        corrections.sort_unstable();
        let got: Vec<(String, i64)> = decoded
            .corrections
            .iter()
            .map(|&(hit_id, verdict)| (logs::hex32(hit_id), verdict))
            .collect();
        let wanted: Vec<(String, i64)> = corrections
            .iter()
            .map(|&(hit_id, verdict)| (hit_id.to_owned(), verdict))
            .collect();
        assert_eq!(got, wanted, "{name}");
        let mut counters: Vec<run_items::Counter<'_>> = counters.into_iter().filter(|counter| counter.2 != 0).collect();
        counters.sort_unstable();
        let got: Vec<run_items::Counter<'_>> = decoded
            .counters
            .iter()
            .map(|counter| {
                (
                    decoded.text(counter.stat),
                    decoded.text(counter.field),
                    i128::from(counter.delta),
                )
            })
            .collect();
        assert_eq!(got, counters, "{name}");
    }
    // Every kind of case is there (a vector file that lost its refusals would pass vacuously).
    assert!(valid > 0 && refused > 0 && refused_encodings > 0);
    let reasons_met: std::collections::HashSet<&str> = cases
        .iter()
        .filter_map(|case| case.get("error").or(case.get("encode_error")).map(text))
        .collect();
    for reason in run_items::Reason::ALL {
        assert!(
            reasons_met.contains(reason.as_str()),
            "no vector refuses {}",
            reason.as_str()
        );
    }
}
