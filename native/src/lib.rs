//! sendtrail's native ingestion layer.
//!
//! Pure-Rust modules, each the twin of a Python reference module and held to
//! the same answers (tests/unit/test_native_*.py compare them on generated
//! inputs):
//!
//! - [`tokens`]: signed tracking tokens (`chalicelib/tokens.py`).
//! - [`base64url`]: canonical unpadded base64url, as the tokens need it.
//! - [`logs`]: `parse_log` of the tracking workflow's core
//!   (`chalicelib/tracking/core.py`): one redirection-log object to verified,
//!   deduplicated hits and rejections by reason, streamed; with
//!   [`gzip`] (CPython's GzipFile, step for step) and [`json`] (the
//!   reference's strict `json.loads`).
//! - [`aggregate`]: the core's `aggregate`: hits merged with each recipient's
//!   stored hits, counter deltas per delivery; with [`classify`], each
//!   hit's human/machine verdict (`chalicelib/tracking/classify.py`).
//! - [`run`]: what a workflow run writes from the aggregation (tracking
//!   items' hit lines, log pages, domain deltas, minimised IPs:
//!   `chalicelib/tracking/items.py`, `log_pages.py`, `workflow.py`); with
//!   [`dynamo`], those items encoded as DynamoDB JSON (`chalicelib/data/item_json.py`).
//! - [`run_items`]: a run item's binary body, the hits, verdict corrections
//!   and counter deltas one run adds to a shard (`chalicelib/tracking/run_items.py`,
//!   `docs/spec/run-items.md`).
//!
//! The Python face lives behind the `python` feature (what maturin builds),
//! so `cargo test` and the fuzz targets build without Python. Everything
//! outside `python.rs` is safe Rust.

#![deny(unsafe_code)]

pub mod aggregate;
pub mod base64url;
pub mod classify;
pub mod dynamo;
pub mod gzip;
pub mod json;
pub mod logs;
pub mod run;
pub mod run_items;
pub mod tokens;
#[cfg(test)]
mod vectors;

#[cfg(feature = "python")]
#[allow(unsafe_code)] // PyO3's generated glue
mod python;

/// mimalloc serves the Python module's allocations. A run allocates buffers of tens of megabytes (its
/// hits, items, log pages): glibc's malloc maps each one afresh and unmaps it when freed, so every run
/// paid the page faults again, about a tenth of a whole run's compute. mimalloc reuses its memory, and
/// never gives it back to the OS: `chalicelib/native.py` sets its purge delay (ALLOCATOR_PURGE_DELAY)
/// before it loads the module.
#[cfg(feature = "python")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
