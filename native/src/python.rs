//! The Python face of the crate: module `sendtrail_native`.
//!
//! Thin on purpose: argument conversion and errors only; every decision is
//! in the pure modules. Semantics follow the Python reference exactly:
//!
//! `verify_token(token, keys, params="")` returns the claims as a tuple
//! `(kind, key_id, delivery_id_hex, log_id, url_id)` (the fields of
//! `chalicelib.tokens.TokenClaims`, in order) or raises
//! `sendtrail_native.InvalidToken`, a `ValueError` whose `.reason` (and
//! `args[0]`) is `malformed`, `unknown_key` or `bad_signature`, decided by
//! the same checks in the same order as `chalicelib.tokens.verify`. `keys`
//! is any mapping with `.get(key_id)` (looked up once, for the token's key
//! id only, as Python does) whose values are bytes. Arguments of other
//! types behave as in Python too (a falsy token is `malformed`, bytes tokens
//! are `malformed` or a TypeError, non-str params matter only once the key
//! is found), with one documented difference: `params=None` counts as "" here
//! (Python fails on it), which `chalicelib/native.py` never passes. `chalicelib/native.py`
//! turns the tuple into `TokenClaims` and the exception into
//! `chalicelib.tokens.InvalidToken`, so callers see one API whichever
//! implementation runs.

use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyByteArray, PyBytes, PyString};

use crate::tokens::{self, Reason};

create_exception!(
    sendtrail_native,
    InvalidToken,
    PyValueError,
    "The token is not one of ours. `reason` says why: malformed, unknown_key or bad_signature."
);

fn invalid_token(py: Python<'_>, reason: Reason) -> PyErr {
    let error = InvalidToken::new_err(reason.as_str());
    match error.value(py).setattr("reason", reason.as_str()) {
        Ok(()) => error,
        Err(setattr_failed) => setattr_failed,
    }
}

/// A str argument's text; None when it cannot be UTF-8 (lone surrogates),
/// which Python's `str.isascii()` also rejects.
fn text_of<'a>(value: &'a Bound<'_, PyString>) -> Option<std::borrow::Cow<'a, str>> {
    value.to_cow().ok()
}

fn bytes_of(value: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        Some(bytes.as_bytes().to_vec())
    } else if let Ok(array) = value.cast::<PyByteArray>() {
        Some(array.to_vec())
    } else {
        None
    }
}

/// Python's checks on a token that is not a str, in Python's order: a
/// falsy value is `malformed` (`not token`), so is bytes that are too long or
/// not ASCII; other bytes fail where Python adds str padding to them
/// (TypeError), and anything else has no `len`/`isascii` (TypeError).
fn non_str_token(token: &Bound<'_, PyAny>) -> PyResult<Reason> {
    if !token.is_truthy()? {
        return Ok(Reason::Malformed);
    }
    match bytes_of(token) {
        Some(bytes) if bytes.len() > tokens::MAX_TOKEN_CHARS || !bytes.is_ascii() => Ok(Reason::Malformed),
        Some(_) => Err(PyTypeError::new_err("can't concat str to bytes")),
        None => Err(PyTypeError::new_err(format!(
            "token must be str, not {}",
            token.get_type().name()?
        ))),
    }
}

/// Verify a tracking token; see the module documentation. `params` defaults
/// to "" (None counts as "" too); like Python, its type only matters once
/// the token's key is found.
#[pyfunction]
#[pyo3(signature = (token, keys, params = None))]
fn verify_token<'py>(
    py: Python<'py>,
    token: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyAny>,
    params: Option<&Bound<'py, PyAny>>,
) -> PyResult<(u8, u8, String, u64, u64)> {
    let parsed = match token.cast::<PyString>() {
        Ok(text) => match text_of(text) {
            Some(text) => tokens::parse(&text),
            None => Err(Reason::Malformed), // lone surrogates: not ASCII
        },
        Err(_) => Err(non_str_token(token)?),
    }
    .map_err(|reason| invalid_token(py, reason))?;
    let secret = keys.call_method1("get", (parsed.claims.key_id,))?;
    if secret.is_none() {
        return Err(invalid_token(py, Reason::UnknownKey));
    }
    // Python: `not params.isascii()` -> bad_signature, before the secret is used.
    let params = match params {
        None => std::borrow::Cow::Borrowed(""),
        Some(value) => match value.cast::<PyString>() {
            Ok(text) => match text_of(text) {
                Some(text) if text.is_ascii() => text,
                _ => return Err(invalid_token(py, Reason::BadSignature)), // lone surrogates are not ASCII either
            },
            Err(_) => {
                let ascii = bytes_of(value).map(|bytes| bytes.is_ascii());
                return Err(match ascii {
                    Some(false) => invalid_token(py, Reason::BadSignature),
                    _ => PyTypeError::new_err("params must be str"),
                });
            }
        },
    };
    let secret: PyBackedBytes = secret.extract()?;
    let claims = parsed
        .check_signature(&tokens::keyed_hmac(&secret), &params)
        .map_err(|reason| invalid_token(py, reason))?;
    Ok((
        claims.kind,
        claims.key_id,
        claims.delivery_id_hex(),
        claims.log_id,
        claims.url_id,
    ))
}

#[pymodule]
fn sendtrail_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add("InvalidToken", module.py().get_type::<InvalidToken>())?;
    module.add("REASONS", Reason::ALL.map(Reason::as_str).to_vec())?;
    module.add_function(wrap_pyfunction!(verify_token, module)?)?;
    Ok(())
}
