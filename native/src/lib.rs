//! sendtrail's native ingestion layer.
//!
//! Pure-Rust modules, each the twin of a Python reference module and held to
//! the same answers (tests/unit/test_native_*.py compare them on generated
//! inputs):
//!
//! - [`tokens`]: signed tracking tokens (`chalicelib/tokens.py`).
//! - [`base64url`]: canonical unpadded base64url, as the tokens need it.
//!
//! The log parser and aggregator (the tracking workflow's core) plugs in as
//! its own module beside `tokens`, using [`tokens::Keys`] to re-verify every
//! record, and gets its Python binding in `python.rs`.
//!
//! The Python face lives behind the `python` feature (what maturin builds),
//! so `cargo test` and the fuzz targets build without Python. Everything
//! outside `python.rs` is safe Rust.

#![deny(unsafe_code)]

pub mod base64url;
pub mod tokens;

#[cfg(feature = "python")]
#[allow(unsafe_code)] // PyO3's generated glue
mod python;
