//! The native ingestion path without Python, for profiling:
//!
//! ```sh
//! cargo build --profile profiling --example profile_ingest
//! perf record -g target/profiling/examples/profile_ingest ../out/bench/hits-1000000-seed5-v1.jsonl.gz
//! ```
//!
//! Times gunzip alone, then parse_log and the aggregation of `process_log`,
//! on a log object (the benchmark's standard input: `make bench` writes it).
//! The key is the benchmark's (bench/inputs.py); the object limit is raised
//! to 1 GiB, as the benchmark does for its one large object.

use std::time::Instant;

use sendtrail_native::tokens::Keys;
use sendtrail_native::{aggregate, gzip, logs};

fn main() {
    let path = std::env::args().nth(1).expect("a log object's path");
    let data = std::fs::read(path).expect("a readable file");
    let keys = Keys::new().with(1, b"bench-signing-key-0123456789abcd");
    let limit = 1 << 30;
    let started = Instant::now();
    let mut decoded = 0usize;
    gzip::decode(&data, limit, |chunk| decoded += chunk.len());
    println!("gunzip: {:?} for {decoded} bytes", started.elapsed());
    let started = Instant::now();
    let limits = logs::Limits {
        max_object_bytes: limit,
        ..logs::Limits::default()
    };
    let parsed = logs::parse_log(&data, &keys, limits);
    println!("parse_log: {:?} for {} hits", started.elapsed(), parsed.hits.len());
    let started = Instant::now();
    let (aggregates, _, _) = aggregate::aggregate_parsed(&parsed, aggregate::Bound::default());
    println!(
        "aggregate: {:?} for {} recipients",
        started.elapsed(),
        aggregates.recipients.len()
    );
}
