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
//!
//! `parse_log`, `process_log` and `aggregate` are the tracking core's
//! functions (`chalicelib/tracking/core.py`) over [`crate::logs`] and
//! [`crate::aggregate`]: they return tuples of core's dataclass fields, which
//! `chalicelib/native.py` wraps in the dataclasses; the parsed hits and
//! `process_log`'s recipient updates are [`LazyTuple`]s, made as Python
//! objects only when read. Parsing runs without the GIL.
//!
//! `encode_run_item` and `decode_run_item` are `chalicelib/tracking/run_items.py`'s
//! `encode` and `decode` over [`crate::run_items`]: bytes, and the fields of a
//! `RunItem` as tuples; a refusal is `sendtrail_native.RunItemError`, a
//! `ValueError` with the reference's `.reason` (and `.detail`), which
//! `chalicelib/native.py` turns into the reference's `RunItemError`.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_int, c_long};
use std::sync::Arc;

use pyo3::basic::CompareOp;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyIndexError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyFrozenSet, PyInt, PyList, PySlice, PyString, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::aggregate::{
    self, Aggregates, Bound as HitBound, DeliveryDelta, Group, HitFields, HitSet, HitTable, RowStrings, Strings,
    Summary,
};
use crate::base64url;
use crate::classify::{self, Rules};
use crate::dynamo;
use crate::json;
use crate::logs::{self, Kind, ParsedLog, Purpose};
use crate::run;
use crate::run_items;
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

// --------------------------------------------------------------------------- logs

create_exception!(
    sendtrail_native,
    Unsupported,
    PyException,
    "The hits are outside what the native aggregation represents (not exactly core.Hit, ints past 64 bits, \
     strings that are not Unicode); chalicelib/native.py then runs the Python reference."
);

fn unsupported(what: &str) -> PyErr {
    Unsupported::new_err(what.to_string())
}

/// The key ring as chalicelib/native.py hands it over: a dict of key id (0-255) -> bytes.
fn key_ring(keys: &Bound<'_, PyDict>) -> PyResult<tokens::Keys> {
    let mut ring = tokens::Keys::new();
    for (key_id, secret) in keys.iter() {
        let secret: PyBackedBytes = secret.extract()?;
        ring.insert(key_id.extract::<u8>()?, &secret);
    }
    Ok(ring)
}

/// What the lazy sequences read from: a parsed object, and its aggregation
/// when `process_log` made one.
struct Shared {
    log: ParsedLog,
    hit_type: Py<PyAny>,
    recipients: Option<Recipients>,
}

struct Recipients {
    recipient_type: Py<PyAny>,
    summary_type: Py<PyAny>,
    aggregates: Aggregates,
    groups: Vec<Group>,
    deliveries: Vec<u64>,
}

fn kind_name<'py>(py: Python<'py>, kind: Kind) -> &'py Bound<'py, PyString> {
    match kind {
        Kind::Click => intern!(py, "click"),
        Kind::Open => intern!(py, "open"),
        Kind::Optout => intern!(py, "optout"),
        Kind::Mirror => intern!(py, "mirror"),
    }
}

fn purpose_name<'py>(py: Python<'py>, purpose: Purpose) -> &'py Bound<'py, PyString> {
    match purpose {
        Purpose::Undeclared => intern!(py, ""),
        Purpose::Prefetch => intern!(py, "prefetch"),
        Purpose::Prerender => intern!(py, "prerender"),
        Purpose::Preview => intern!(py, "preview"),
    }
}

/// `core.Hit` for a parsed hit.
fn hit_object<'py>(py: Python<'py>, shared: &Shared, index: u32) -> PyResult<Bound<'py, PyAny>> {
    let log = &shared.log;
    let hit = &log.hits[index as usize];
    shared.hit_type.bind(py).call1((
        logs::hex32(hit.hit_id),
        hit.ts,
        kind_name(py, hit.kind),
        logs::hex16(hit.delivery_id),
        hit.log_id,
        hit.url_id,
        log.ua(hit),
        log.ip(hit),
        purpose_name(py, hit.purpose),
    ))
}

/// `core.RecipientUpdate` number `index` of `process_log`'s aggregation.
fn recipient_object<'py>(py: Python<'py>, shared: &Shared, index: usize) -> PyResult<Bound<'py, PyAny>> {
    let recipients = shared
        .recipients
        .as_ref()
        .expect("a recipients sequence has recipients");
    let update = &recipients.aggregates.recipients[index];
    let group = &recipients.groups[update.group];
    let hits = recipients.aggregates.kept[update.kept.clone()]
        .iter()
        .map(|&hit| hit_object(py, shared, hit))
        .collect::<PyResult<Vec<_>>>()?;
    recipients.recipient_type.bind(py).call1((
        logs::hex16(recipients.deliveries[group.delivery as usize]),
        group.log_id,
        PyTuple::new(py, hits)?,
        update.added,
        update.over_limit,
        PyTuple::new(py, &recipients.aggregates.verdicts[update.kept.clone()])?,
        summary_object(py, recipients.summary_type.bind(py), update.summary.as_deref())?,
    ))
}

/// `core.Summary` for a native summary (None for none).
fn summary_object<'py>(
    py: Python<'py>,
    summary_type: &Bound<'py, PyAny>,
    summary: Option<&Summary>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(summary) = summary else {
        return Ok(py.None().into_bound(py));
    };
    let fields = vec![
        summary.count.into_bound_py_any(py)?,
        (summary.first.0, summary.first.1.as_str()).into_bound_py_any(py)?,
        (summary.last.0, summary.last.1.as_str()).into_bound_py_any(py)?,
        summary.last_open.into_bound_py_any(py)?,
        summary.last_open_human.into_bound_py_any(py)?,
        summary.opened.into_bound_py_any(py)?,
        summary.clicked.into_bound_py_any(py)?,
        summary.optout.into_bound_py_any(py)?,
        summary.human.into_bound_py_any(py)?,
        summary.clicked_human.into_bound_py_any(py)?,
        PyFrozenSet::new(py, &summary.urls)?.into_any(),
        PyFrozenSet::new(py, &summary.urls_human)?.into_any(),
        PyFrozenSet::new(py, &summary.requesters)?.into_any(),
        summary.requesters_over.into_bound_py_any(py)?,
        PyBytes::new(py, &summary.filter).into_any(),
        PyTuple::new(py, summary.kinds)?.into_any(),
        summary.machine.into_bound_py_any(py)?,
    ];
    summary_type.call1(PyTuple::new(py, fields)?)
}

/// A `core.Summary` read from Python; Unsupported for values the native side does not represent.
fn summary_from(value: &Bound<'_, PyAny>) -> PyResult<Summary> {
    let py = value.py();
    let int = |name: &Bound<'_, PyString>| context_int(&value.getattr(name)?);
    let optional = |name: &Bound<'_, PyString>| -> PyResult<Option<i64>> {
        let found = value.getattr(name)?;
        if found.is_none() {
            Ok(None)
        } else {
            context_int(&found).map(Some)
        }
    };
    let flag = |name: &Bound<'_, PyString>| value.getattr(name)?.is_truthy();
    let key = |name: &Bound<'_, PyString>| -> PyResult<(i64, String)> {
        let found = value.getattr(name)?;
        let ts = context_int(&found.get_item(0)?)?;
        let hit_id = found.get_item(1)?;
        let hit_id = hit_id
            .cast::<PyString>()
            .map_err(|_| unsupported("a summary key that is not str"))?;
        let text = text_of(hit_id).ok_or_else(|| unsupported("a summary key that is not Unicode"))?;
        Ok((ts, text.into_owned()))
    };
    let ints = |name: &Bound<'_, PyString>| -> PyResult<Vec<i64>> {
        let mut values = value
            .getattr(name)?
            .try_iter()?
            .map(|item| context_int(&item?))
            .collect::<PyResult<Vec<i64>>>()?;
        values.sort_unstable();
        values.dedup();
        Ok(values)
    };
    let mut requesters = value
        .getattr(intern!(py, "requesters"))?
        .try_iter()?
        .map(|item| {
            item?
                .extract::<u64>()
                .map_err(|_| unsupported("a requester hash past 64 bits"))
        })
        .collect::<PyResult<Vec<u64>>>()?;
    requesters.sort_unstable();
    requesters.dedup();
    let filter = bytes_of(&value.getattr(intern!(py, "filter"))?)
        .filter(|filter| filter.len() == aggregate::SUMMARY_FILTER_BITS / 8)
        .ok_or_else(|| unsupported("a summary filter of another size"))?;
    let kinds_value = value.getattr(intern!(py, "kinds"))?;
    let mut kinds = [0i64; 4];
    for (index, slot) in kinds.iter_mut().enumerate() {
        *slot = context_int(&kinds_value.get_item(index)?)?;
    }
    Ok(Summary {
        count: int(intern!(py, "count"))?,
        first: key(intern!(py, "first"))?,
        last: key(intern!(py, "last"))?,
        last_open: optional(intern!(py, "last_open"))?,
        last_open_human: optional(intern!(py, "last_open_human"))?,
        opened: flag(intern!(py, "opened"))?,
        clicked: flag(intern!(py, "clicked"))?,
        optout: flag(intern!(py, "optout"))?,
        human: flag(intern!(py, "human"))?,
        clicked_human: flag(intern!(py, "clicked_human"))?,
        urls: ints(intern!(py, "urls"))?,
        urls_human: ints(intern!(py, "urls_human"))?,
        requesters,
        requesters_over: int(intern!(py, "requesters_over"))?,
        filter,
        kinds,
        machine: int(intern!(py, "machine"))?,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Items {
    Hits,
    Recipients,
}

/// An immutable sequence of `core.Hit` (or `core.RecipientUpdate`) objects,
/// made when they are asked for: a million-hit object costs no million Python
/// objects unless they are read. Behaves as the tuple of its items: len,
/// indexing (negative too), slicing (to a tuple), iteration, == with tuples.
/// Each access makes new (equal) objects.
#[pyclass(frozen, sequence, module = "sendtrail_native")]
struct LazyTuple {
    shared: Arc<Shared>,
    items: Items,
}

impl LazyTuple {
    fn length(&self) -> usize {
        match self.items {
            Items::Hits => self.shared.log.hits.len(),
            Items::Recipients => self
                .shared
                .recipients
                .as_ref()
                .map_or(0, |recipients| recipients.aggregates.recipients.len()),
        }
    }

    fn item<'py>(&self, py: Python<'py>, index: usize) -> PyResult<Bound<'py, PyAny>> {
        match self.items {
            Items::Hits => hit_object(py, &self.shared, index as u32),
            Items::Recipients => recipient_object(py, &self.shared, index),
        }
    }

    fn as_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let items = (0..self.length())
            .map(|index| self.item(py, index))
            .collect::<PyResult<Vec<_>>>()?;
        PyTuple::new(py, items)
    }
}

#[pymethods]
impl LazyTuple {
    fn __len__(&self) -> usize {
        self.length()
    }

    fn __getitem__<'py>(&self, py: Python<'py>, index: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let length = self.length();
        if let Ok(slice) = index.cast::<PySlice>() {
            let range = slice.indices(length as isize)?;
            let items = (0..range.slicelength)
                .map(|step| self.item(py, (range.start + step as isize * range.step) as usize))
                .collect::<PyResult<Vec<_>>>()?;
            return Ok(PyTuple::new(py, items)?.into_any());
        }
        let position: isize = index.extract()?;
        let resolved = if position < 0 {
            position + length as isize
        } else {
            position
        };
        if resolved < 0 || resolved as usize >= length {
            return Err(PyIndexError::new_err("tuple index out of range"));
        }
        self.item(py, resolved as usize)
    }

    fn __iter__(&self) -> LazyIterator {
        LazyIterator {
            shared: Arc::clone(&self.shared),
            items: self.items,
            next: 0,
        }
    }

    fn __richcmp__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
        op: CompareOp,
    ) -> PyResult<Bound<'py, PyAny>> {
        if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
            return Ok(py.NotImplemented().into_bound(py));
        }
        let other = match other.cast::<LazyTuple>() {
            Ok(lazy) => lazy.get().as_tuple(py)?.into_any(),
            Err(_) => other.clone(),
        };
        self.as_tuple(py)?.into_any().rich_compare(other, op)
    }

    /// Pickled (and copied) as the plain tuple of its items.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyTuple>,))> {
        Ok((py.get_type::<PyTuple>().into_any(), (self.as_tuple(py)?,)))
    }

    fn __repr__(&self) -> String {
        let what = match self.items {
            Items::Hits => "hits",
            Items::Recipients => "recipient updates",
        };
        format!("<sendtrail_native.LazyTuple of {} {what}>", self.length())
    }
}

#[pyclass(module = "sendtrail_native")]
struct LazyIterator {
    shared: Arc<Shared>,
    items: Items,
    next: usize,
}

#[pymethods]
impl LazyIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(mut slf: PyRefMut<'py, Self>, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let lazy = LazyTuple {
            shared: Arc::clone(&slf.shared),
            items: slf.items,
        };
        if slf.next >= lazy.length() {
            return Ok(None);
        }
        let index = slf.next;
        slf.next += 1;
        lazy.item(py, index).map(Some)
    }
}

/// (lines, hits, [(reason, count)], duplicates, [(line, reason, field, data)]):
/// ParsedLog's fields. An object-level rejection's data is `data` itself.
fn parsed_tuple<'py>(py: Python<'py>, shared: &Arc<Shared>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    let log = &shared.log;
    let rejected = PyList::empty(py);
    for (reason, count) in log.rejected() {
        rejected.append((reason.as_str(), count))?;
    }
    let rejections = PyList::empty(py);
    if let Some(reason) = log.object {
        rejections.append((0u64, reason.as_str(), py.None(), data))?;
    }
    for rejection in &log.rejections {
        rejections.append((
            rejection.line,
            rejection.reason.as_str(),
            rejection.field,
            PyBytes::new(py, &rejection.data),
        ))?;
    }
    let hits = LazyTuple {
        shared: Arc::clone(shared),
        items: Items::Hits,
    };
    (log.lines, hits, rejected, log.duplicates, rejections).into_pyobject(py)
}

fn counters<'py>(py: Python<'py>, values: &[(&'static str, i64)]) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in values {
        dict.set_item(*name, *value)?;
    }
    Ok(dict)
}

/// [(delivery_id, indicators, urls, buckets, user_agents)]: DeliveryDelta's fields.
fn deliveries_list<'py, 'a>(
    py: Python<'py>,
    ua_text: impl Fn(u32) -> &'a str,
    deltas: &[DeliveryDelta],
    delivery_id: impl Fn(u32) -> String,
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for delta in deltas {
        let urls = PyDict::new(py);
        for (url_id, values) in &delta.urls {
            urls.set_item(url_id, counters(py, values)?)?;
        }
        let buckets = PyDict::new(py);
        for (start, values) in &delta.buckets {
            buckets.set_item(start, counters(py, values)?)?;
        }
        let user_agents = PyDict::new(py);
        for (ua, values) in &delta.user_agents {
            user_agents.set_item(ua_text(*ua), counters(py, values)?)?;
        }
        out.append((
            delivery_id(delta.delivery),
            counters(py, &delta.indicators)?,
            urls,
            buckets,
            user_agents,
        ))?;
    }
    Ok(out)
}

/// `parse_log`'s and `process_log`'s arguments in Rust terms.
fn parse_arguments(
    data: &Bound<'_, PyAny>,
    keys: &Bound<'_, PyDict>,
    max_object_bytes: usize,
    max_int_digits: usize,
) -> PyResult<(PyBackedBytes, tokens::Keys, logs::Limits)> {
    let limits = logs::Limits {
        max_object_bytes,
        max_int_digits,
    };
    Ok((data.extract()?, key_ring(keys)?, limits))
}

/// Parse one redirection-log object (the reference's `parse_log`); see
/// chalicelib/native.py for the tuple's meaning. `keys` is a dict of key id
/// (0-255) -> bytes; the limits are the reference's (tests move them).
#[pyfunction]
#[pyo3(signature = (data, keys, hit_type, *, max_object_bytes = logs::MAX_OBJECT_BYTES,
                    max_int_digits = json::DEFAULT_MAX_INT_DIGITS))]
fn parse_log<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyDict>,
    hit_type: &Bound<'py, PyAny>,
    max_object_bytes: usize,
    max_int_digits: usize,
) -> PyResult<Bound<'py, PyTuple>> {
    let (bytes, ring, limits) = parse_arguments(data, keys, max_object_bytes, max_int_digits)?;
    let log = py.detach(|| logs::parse_log(&bytes, &ring, limits));
    let shared = Arc::new(Shared {
        log,
        hit_type: hit_type.clone().unbind(),
        recipients: None,
    });
    parsed_tuple(py, &shared, data)
}

/// Parse one object and aggregate its hits with no prior state (the
/// reference's `process_log`): (parsed tuple as `parse_log`, (recipients,
/// deliveries, duplicates, over_limit)). Hits and recipient updates are lazy.
#[pyfunction]
#[pyo3(signature = (data, keys, hit_type, recipient_type, summary_type, *,
                    max_hits_per_recipient = aggregate::MAX_HITS_PER_RECIPIENT,
                    first_hits_per_recipient = aggregate::FIRST_HITS_PER_RECIPIENT,
                    max_object_bytes = logs::MAX_OBJECT_BYTES, max_int_digits = json::DEFAULT_MAX_INT_DIGITS))]
// Allowed: the Python signature (chalicelib/native.py) is the interface, keyword arguments rather than a struct.
#[allow(clippy::too_many_arguments)]
fn process_log<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyDict>,
    hit_type: &Bound<'py, PyAny>,
    recipient_type: &Bound<'py, PyAny>,
    summary_type: &Bound<'py, PyAny>,
    max_hits_per_recipient: usize,
    first_hits_per_recipient: usize,
    max_object_bytes: usize,
    max_int_digits: usize,
) -> PyResult<Bound<'py, PyTuple>> {
    let (bytes, ring, limits) = parse_arguments(data, keys, max_object_bytes, max_int_digits)?;
    let (log, (aggregates, groups, deliveries)) = py.detach(|| {
        let log = logs::parse_log(&bytes, &ring, limits);
        let bound = HitBound::new(max_hits_per_recipient, Some(first_hits_per_recipient));
        let aggregated = aggregate::aggregate_parsed(&log, bound);
        (log, aggregated)
    });
    let delivery_ids: Vec<String> = deliveries.iter().map(|&id| logs::hex16(id)).collect();
    let ua_text = |ua: u32| &*log.user_agents()[ua as usize];
    let deliveries_out = deliveries_list(py, ua_text, &aggregates.deliveries, |index| {
        delivery_ids[index as usize].clone()
    })?;
    let (duplicates, over_limit) = (aggregates.duplicates, aggregates.over_limit);
    let shared = Arc::new(Shared {
        log,
        hit_type: hit_type.clone().unbind(),
        recipients: Some(Recipients {
            recipient_type: recipient_type.clone().unbind(),
            summary_type: summary_type.clone().unbind(),
            aggregates,
            groups,
            deliveries,
        }),
    });
    let recipients = LazyTuple {
        shared: Arc::clone(&shared),
        items: Items::Recipients,
    };
    let parsed = parsed_tuple(py, &shared, data)?;
    (parsed, (recipients, deliveries_out, duplicates, over_limit)).into_pyobject(py)
}

fn exact_str<'py>(hit: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyString>> {
    let value = hit.getattr(name)?;
    if !value.is_exact_instance_of::<PyString>() {
        return Err(unsupported("a str field that is not exactly str"));
    }
    Ok(value.cast_into::<PyString>()?)
}

fn exact_int(hit: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> PyResult<i64> {
    let value = hit.getattr(name)?;
    if !value.is_exact_instance_of::<PyInt>() {
        return Err(unsupported("an int field that is not exactly int"));
    }
    value.extract::<i64>().map_err(|_| unsupported("an int past 64 bits"))
}

/// Read one `core.Hit` into the table.
fn push_hit(table: &mut HitTable, hit: &Bound<'_, PyAny>, hit_type: &Bound<'_, PyAny>) -> PyResult<u32> {
    let py = hit.py();
    if !hit.get_type().is(hit_type) {
        return Err(unsupported("a hit that is not exactly core.Hit"));
    }
    let hit_id = exact_str(hit, intern!(py, "hit_id"))?;
    let ts = exact_int(hit, intern!(py, "ts"))?;
    let kind = exact_str(hit, intern!(py, "kind"))?;
    let delivery_id = exact_str(hit, intern!(py, "delivery_id"))?;
    let log_id = exact_int(hit, intern!(py, "log_id"))?;
    let url_id = exact_int(hit, intern!(py, "url_id"))?;
    let ua = exact_str(hit, intern!(py, "ua"))?;
    let ip = exact_str(hit, intern!(py, "ip"))?;
    let purpose = exact_str(hit, intern!(py, "purpose"))?;
    let text = |value: &Bound<'_, PyString>| -> PyResult<String> {
        value
            .to_str()
            .map(str::to_owned)
            .map_err(|_| unsupported("a string that is not Unicode (lone surrogates)"))
    };
    Ok(table.push(HitFields {
        hit_id: &text(&hit_id)?,
        ts,
        kind: &text(&kind)?,
        delivery_id: &text(&delivery_id)?,
        log_id,
        url_id,
        ua: &text(&ua)?,
        ip: &text(&ip)?,
        purpose: &text(&purpose)?,
    }))
}

/// An int the classification reads from Python: exactly int, within i64.
fn context_int(value: &Bound<'_, PyAny>) -> PyResult<i64> {
    if !value.is_exact_instance_of::<PyInt>() {
        return Err(unsupported("a classification value that is not exactly int"));
    }
    value
        .extract::<i64>()
        .map_err(|_| unsupported("a classification value past 64 bits"))
}

/// `mapping.get(key)` as an int; None when it is missing (or None).
fn context_get<'py>(mapping: &Bound<'py, PyAny>, key: impl IntoPyObject<'py>) -> PyResult<Option<i64>> {
    let value = mapping.call_method1(intern!(mapping.py(), "get"), (key,))?;
    if value.is_none() {
        return Ok(None);
    }
    context_int(&value).map(Some)
}

/// The reference's `classify.Context`, read for the hits of one table.
struct TableContext {
    rules: Rules,
    /// By group.
    sent_at: Vec<Option<i64>>,
    /// By row: the stored verdict of a prior hit.
    stored: Vec<Option<i64>>,
    /// By row: its agent's and its address's flags, side by side (one read a hit: `verdicts`
    /// visits a recipient's hits, which lie far apart in the table).
    flags_of: Vec<[i64; 2]>,
}

impl classify::Context for TableContext {
    fn rules(&self) -> Rules {
        self.rules
    }
    fn agent(&self, hit: u32) -> i64 {
        self.flags_of[hit as usize][0]
    }
    fn address(&self, hit: u32) -> i64 {
        self.flags_of[hit as usize][1]
    }
    fn sent_at(&self, group: usize) -> Option<i64> {
        self.sent_at[group]
    }
    fn stored(&self, hit: u32) -> Option<i64> {
        self.stored[hit as usize]
    }
}

/// A dict entry whose key is exactly str.
type StrKeyed<'py> = (Bound<'py, PyString>, Bound<'py, PyAny>);
/// Send times (None: given as None) by (delivery id, log id).
type SentAt = HashMap<(String, i64), Option<i64>>;

/// The (key, value) pairs of an exact dict whose keys are all exact str (Python's
/// `get(text)` finds nothing else); None for any other mapping (looked up text by text).
fn exact_str_keys<'py>(mapping: &Bound<'py, PyAny>) -> PyResult<Option<Vec<StrKeyed<'py>>>> {
    let Ok(dict) = mapping.cast_exact::<PyDict>() else {
        return Ok(None);
    };
    let mut pairs = Vec::with_capacity(dict.len());
    for (key, value) in dict.iter() {
        if !key.is_exact_instance_of::<PyString>() {
            return Ok(None);
        }
        pairs.push((key.cast_into::<PyString>()?, value));
    }
    Ok(Some(pairs))
}

/// An exact dict of send times keyed by exact (str, int) tuples, by (delivery id, log id);
/// None for any other mapping or key (looked up recipient by recipient).
fn sent_by_recipient(mapping: &Bound<'_, PyAny>) -> PyResult<Option<SentAt>> {
    let Ok(dict) = mapping.cast_exact::<PyDict>() else {
        return Ok(None);
    };
    let mut known = HashMap::with_capacity(dict.len());
    for (key, value) in dict.iter() {
        let Ok(pair) = key.cast_exact::<PyTuple>() else {
            return Ok(None);
        };
        if pair.len() != 2 {
            continue; // never equal to a (delivery id, log id) key
        }
        let (delivery_id, log_id) = (pair.get_item(0)?, pair.get_item(1)?);
        if !delivery_id.is_exact_instance_of::<PyString>() || !log_id.is_exact_instance_of::<PyInt>() {
            return Ok(None);
        }
        let Ok(log_id) = log_id.extract::<i64>() else {
            continue; // past i64: no recipient of the table has it
        };
        let sent = if value.is_none() {
            None
        } else {
            Some(context_int(&value)?)
        };
        known.insert(
            (delivery_id.cast_into::<PyString>()?.to_cow()?.into_owned(), log_id),
            sent,
        );
    }
    Ok(Some(known))
}

fn table_context(
    py: Python<'_>,
    context: Option<&Bound<'_, PyAny>>,
    table: &HitTable,
    groups: &[Group],
    group_keys: &[(String, i64)],
    prior_rows: &[u32],
) -> PyResult<TableContext> {
    let rows = table.len();
    let Some(context) = context else {
        return Ok(TableContext {
            rules: Rules::default(),
            sent_at: vec![None; groups.len()],
            stored: vec![None; rows],
            flags_of: vec![[0, 0]; rows],
        });
    };
    let rules = context.getattr(intern!(py, "rules"))?;
    let rule = |name: &Bound<'_, PyString>| context_int(&rules.getattr(name)?);
    let rules = Rules {
        enabled: rule(intern!(py, "enabled"))?,
        burst_links: rule(intern!(py, "burst_links"))?,
        burst_window_ms: rule(intern!(py, "burst_window_ms"))?,
        min_click_after_send_ms: rule(intern!(py, "min_click_after_send_ms"))?,
    };
    let flags = |name: &Bound<'_, PyString>, texts: &[&str], find: &dyn Fn(&str) -> Option<u32>| {
        let mapping = context.getattr(name)?;
        if let Some(flagged) = exact_str_keys(&mapping)? {
            // The flags name the few agents / addresses that have some: read them, not a lookup per text.
            let mut flags = vec![0; texts.len()];
            for (text, value) in flagged {
                if let Some(number) = find(&text.to_cow()?) {
                    flags[number as usize] = if value.is_none() { 0 } else { context_int(&value)? };
                }
            }
            return Ok(flags);
        }
        texts
            .iter()
            .map(|text| Ok(context_get(&mapping, *text)?.unwrap_or(0)))
            .collect::<PyResult<Vec<i64>>>()
    };
    let agents = flags(intern!(py, "agents"), &table.user_agent_texts(), &|text| {
        table.find_user_agent(text)
    })?;
    let addresses = flags(intern!(py, "addresses"), &table.ip_texts(), &|text| table.find_ip(text))?;
    let sent_mapping = context.getattr(intern!(py, "sent_at"))?;
    let sent_at = match sent_by_recipient(&sent_mapping)? {
        Some(known) if known.is_empty() => vec![None; group_keys.len()],
        Some(known) => group_keys.iter().map(|key| known.get(key).copied().flatten()).collect(),
        None => group_keys
            .iter()
            .map(|(delivery_id, log_id)| context_get(&sent_mapping, (delivery_id.as_str(), *log_id)))
            .collect::<PyResult<Vec<_>>>()?,
    };
    let stored_mapping = context.getattr(intern!(py, "stored"))?;
    let mut stored = vec![None; rows];
    for &row in prior_rows {
        stored[row as usize] = context_get(&stored_mapping, table.hit_id_of(row))?;
    }
    let flags_of = (0..rows as u32)
        .map(|hit| [agents[table.ua_of(hit) as usize], addresses[table.ip_of(hit) as usize]])
        .collect();
    Ok(TableContext {
        rules,
        sent_at,
        stored,
        flags_of,
    })
}

/// The new hits of a table grouped by recipient, with each recipient's
/// prior hits (pushed into the table after the new ones) and summary.
struct Gathered {
    grouped: aggregate::Grouped,
    groups: Vec<Group>,
    /// (delivery id, log id) of each group.
    group_keys: Vec<(String, i64)>,
    prior_rows: Vec<u32>,
    /// By group: the summary given for the recipient (empty when none were given).
    summaries: Vec<Option<Summary>>,
    /// The table's delivery number of each group's `delivery`.
    delivery_numbers: Vec<u32>,
}

impl Gathered {
    fn input(&self) -> aggregate::Input<'_> {
        aggregate::Input {
            groups: &self.groups,
            summaries: &self.summaries,
            new: &self.grouped.new,
            prior: &self.prior_rows,
            duplicates: self.grouped.duplicates,
        }
    }
}

/// `aggregate`'s input from the table's `new_rows` and the Python `prior`
/// (recipient -> core.Hit objects, appended to `objects` when given) and
/// `summaries` (recipient -> core.Summary); `grouped`: the new rows already grouped.
// Allowed: one gathering for the two Python faces (aggregate, RunHits.compute), each passing its own parts.
#[allow(clippy::too_many_arguments)]
fn gather<'py>(
    py: Python<'py>,
    table: &mut HitTable,
    new_rows: &[u32],
    prior: &Bound<'py, PyAny>,
    summaries: Option<&Bound<'py, PyAny>>,
    hit_type: &Bound<'py, PyAny>,
    mut objects: Option<&mut Vec<Bound<'py, PyAny>>>,
    grouped: Option<aggregate::Grouped>,
) -> PyResult<Gathered> {
    let prior = if prior.is_truthy()? { Some(prior) } else { None };
    let summaries = match summaries {
        Some(summaries) if summaries.is_truthy()? => Some(summaries),
        _ => None,
    };
    let grouped = grouped.unwrap_or_else(|| table.group(new_rows));
    let mut gathered = Gathered {
        groups: Vec::with_capacity(grouped.recipients.len()),
        group_keys: Vec::with_capacity(grouped.recipients.len()),
        prior_rows: Vec::new(),
        summaries: Vec::new(),
        delivery_numbers: Vec::new(),
        grouped: aggregate::Grouped {
            recipients: Vec::new(),
            new: Vec::new(),
            duplicates: 0,
        },
    };
    let empty = PyTuple::empty(py);
    for (delivery, log_id, new) in &grouped.recipients {
        let start = gathered.prior_rows.len();
        let key = (table.delivery_id(*delivery).to_owned(), *log_id);
        if let Some(prior) = prior {
            for hit in prior
                .call_method1(intern!(py, "get"), (key.clone(), &empty))?
                .try_iter()?
            {
                let hit = hit?;
                gathered.prior_rows.push(push_hit(table, &hit, hit_type)?);
                if let Some(objects) = objects.as_deref_mut() {
                    objects.push(hit);
                }
            }
        }
        if let Some(summaries) = summaries {
            let found = summaries.call_method1(intern!(py, "get"), (key.clone(),))?;
            gathered.summaries.push(if found.is_none() {
                None
            } else {
                Some(summary_from(&found)?)
            });
        }
        gathered.group_keys.push(key);
        if gathered.delivery_numbers.last() != Some(delivery) {
            gathered.delivery_numbers.push(*delivery);
        }
        gathered.groups.push(Group {
            delivery: (gathered.delivery_numbers.len() - 1) as u32,
            log_id: *log_id,
            new: new.clone(),
            prior: start..gathered.prior_rows.len(),
        });
    }
    gathered.grouped = grouped;
    Ok(gathered)
}

/// The reference's `aggregate(new_hits, prior, max_hits_per_recipient,
/// context)` on `core.Hit` objects: (recipient updates, deliveries,
/// duplicates, over_limit). Updates are made with `recipient_type`, hold the
/// very hit objects given and their verdicts. `context` is a
/// `classify.Context` (None: the default one). Raises Unsupported for hits or
/// context values it does not represent.
#[pyfunction]
#[pyo3(name = "aggregate", signature = (new_hits, prior, hit_type, recipient_type, summary_type,
                                        max_hits_per_recipient, first_hits_per_recipient = None,
                                        context = None, summaries = None))]
// Allowed: the Python signature (chalicelib/native.py) is the interface.
#[allow(clippy::too_many_arguments)]
fn aggregate_hits<'py>(
    py: Python<'py>,
    new_hits: &Bound<'py, PyAny>,
    prior: &Bound<'py, PyAny>,
    hit_type: &Bound<'py, PyAny>,
    recipient_type: &Bound<'py, PyAny>,
    summary_type: &Bound<'py, PyAny>,
    max_hits_per_recipient: usize,
    first_hits_per_recipient: Option<usize>,
    context: Option<&Bound<'py, PyAny>>,
    summaries: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let mut table = HitTable::default();
    let mut objects: Vec<Bound<'py, PyAny>> = Vec::new();
    let mut new_rows: Vec<u32> = Vec::new();
    for hit in new_hits.try_iter()? {
        let hit = hit?;
        new_rows.push(push_hit(&mut table, &hit, hit_type)?);
        objects.push(hit);
    }
    let gathered = gather(
        py,
        &mut table,
        &new_rows,
        prior,
        summaries,
        hit_type,
        Some(&mut objects),
        None,
    )?;
    let Gathered {
        groups,
        group_keys,
        prior_rows,
        delivery_numbers,
        ..
    } = &gathered;
    let input = gathered.input();
    let classifying = table_context(py, context, &table, groups, group_keys, prior_rows)?;
    let bound = HitBound::new(max_hits_per_recipient, first_hits_per_recipient);
    let aggregates = aggregate::aggregate(&table, &input, bound, &classifying);
    let delivery_id = |number: u32| table.delivery_id(delivery_numbers[number as usize]).to_owned();
    let updates = PyList::empty(py);
    for update in &aggregates.recipients {
        let group = &groups[update.group];
        let hits = PyTuple::new(
            py,
            aggregates.kept[update.kept.clone()]
                .iter()
                .map(|&hit| &objects[hit as usize]),
        )?;
        updates.append(recipient_type.call1((
            delivery_id(group.delivery),
            group.log_id,
            hits,
            update.added,
            update.over_limit,
            PyTuple::new(py, &aggregates.verdicts[update.kept.clone()])?,
            summary_object(py, summary_type, update.summary.as_deref())?,
        ))?)?;
    }
    let deliveries = deliveries_list(py, |ua| table.ua_text(ua), &aggregates.deliveries, delivery_id)?;
    (updates, deliveries, aggregates.duplicates, aggregates.over_limit).into_pyobject(py)
}

// --------------------------------------------------------------------------- run items

create_exception!(
    sendtrail_native,
    RunItemError,
    PyValueError,
    "A run item that cannot be encoded or a body that cannot be decoded (docs/spec/run-items.md): `reason` is \
     the spec's, `detail` the reference's (its message is `reason: detail`, or the reason alone)."
);

fn run_item_error(py: Python<'_>, error: run_items::Error) -> PyErr {
    let raised = RunItemError::new_err(error.to_string());
    let value = raised.value(py);
    match value
        .setattr("reason", error.reason.as_str())
        .and_then(|()| value.setattr("detail", error.detail))
    {
        Ok(()) => raised,
        Err(setattr_failed) => setattr_failed,
    }
}

/// An exact tuple of `size` items; Unsupported for anything else (the reference unpacks any iterable).
fn exact_tuple<'py>(entry: Bound<'py, PyAny>, size: usize) -> PyResult<Bound<'py, PyTuple>> {
    match entry.cast_into_exact::<PyTuple>() {
        Ok(tuple) if tuple.len() == size => Ok(tuple),
        _ => Err(unsupported("a run item entry that is not a tuple of its size")),
    }
}

/// An exact str; Unsupported for anything else.
fn exact_text(value: Bound<'_, PyAny>) -> PyResult<Bound<'_, PyString>> {
    value
        .cast_into_exact::<PyString>()
        .map_err(|_| unsupported("a run item text that is not exactly str"))
}

/// An exact int within i64; Unsupported for anything else (the reference decides past 64 bits).
fn exact_i64(value: &Bound<'_, PyAny>) -> PyResult<i64> {
    if !value.is_exact_instance_of::<PyInt>() {
        return Err(unsupported("a run item value that is not exactly int"));
    }
    value
        .extract::<i64>()
        .map_err(|_| unsupported("a run item value past 64 bits"))
}

/// A str's text, borrowed (CPython keeps its UTF-8); Unsupported for lone surrogates, which the
/// reference refuses or fails on in its own ways.
fn borrowed_text<'a>(value: &'a Bound<'_, PyString>) -> PyResult<&'a str> {
    value
        .to_str()
        .map_err(|_| unsupported("a run item text that is not Unicode (lone surrogates)"))
}

/// One hit's Python values, held while the encoder borrows their text.
struct HitValues<'py> {
    /// hit_id, kind, delivery_id, ua, ip, purpose
    texts: [Bound<'py, PyString>; 6],
    /// ts, log_id, url_id
    ints: [i64; 3],
    verdict: i64,
}

fn hit_values<'py>(entry: Bound<'py, PyAny>, hit_type: &Bound<'py, PyAny>) -> PyResult<HitValues<'py>> {
    let py = entry.py();
    let pair = exact_tuple(entry, 2)?;
    let (hit, verdict) = (pair.get_item(0)?, pair.get_item(1)?);
    if !hit.get_type().is(hit_type) {
        return Err(unsupported("a hit that is not exactly core.Hit"));
    }
    Ok(HitValues {
        texts: [
            exact_str(&hit, intern!(py, "hit_id"))?,
            exact_str(&hit, intern!(py, "kind"))?,
            exact_str(&hit, intern!(py, "delivery_id"))?,
            exact_str(&hit, intern!(py, "ua"))?,
            exact_str(&hit, intern!(py, "ip"))?,
            exact_str(&hit, intern!(py, "purpose"))?,
        ],
        ints: [
            exact_int(&hit, intern!(py, "ts"))?,
            exact_int(&hit, intern!(py, "log_id"))?,
            exact_int(&hit, intern!(py, "url_id"))?,
        ],
        verdict: exact_i64(&verdict)?,
    })
}

/// A counter's delta: an exact int within i128 (past i64 it is the encoder's `out_of_range`).
fn delta_of(value: &Bound<'_, PyAny>) -> PyResult<i128> {
    if !value.is_exact_instance_of::<PyInt>() {
        return Err(unsupported("a counter delta that is not exactly int"));
    }
    match value.extract::<i64>() {
        Ok(delta) => Ok(i128::from(delta)),
        Err(_) => value
            .extract::<i128>()
            .map_err(|_| unsupported("a counter delta past 128 bits")),
    }
}

/// The body of a run item (the reference's `run_items.encode`): `hits` of exactly `hit_type`
/// (core.Hit), each with its verdict, `corrections` (hit id, verdict), `counters` (stat, field, delta),
/// all exact tuples, strs and ints. Raises RunItemError where the reference refuses, and Unsupported
/// (before any refusal) for values it does not represent exactly: ints past 64 bits (deltas: 128),
/// lone surrogates, other types; chalicelib/native.py then runs the reference.
#[pyfunction]
fn encode_run_item<'py>(
    py: Python<'py>,
    delivery_id: Bound<'py, PyAny>,
    hits: &Bound<'py, PyAny>,
    corrections: &Bound<'py, PyAny>,
    counters: &Bound<'py, PyAny>,
    hit_type: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let delivery_id = exact_text(delivery_id)?;
    let hit_values = hits
        .try_iter()?
        .map(|entry| hit_values(entry?, hit_type))
        .collect::<PyResult<Vec<_>>>()?;
    let correction_values = corrections
        .try_iter()?
        .map(|entry| {
            let pair = exact_tuple(entry?, 2)?;
            Ok((exact_text(pair.get_item(0)?)?, exact_i64(&pair.get_item(1)?)?))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let counter_values = counters
        .try_iter()?
        .map(|entry| {
            let triple = exact_tuple(entry?, 3)?;
            Ok((
                exact_text(triple.get_item(0)?)?,
                exact_text(triple.get_item(1)?)?,
                delta_of(&triple.get_item(2)?)?,
            ))
        })
        .collect::<PyResult<Vec<_>>>()?;

    let hits = hit_values
        .iter()
        .map(|values| {
            let [hit_id, kind, hit_delivery_id, ua, ip, purpose] = &values.texts;
            let [ts, log_id, url_id] = values.ints;
            let hit = run_items::Hit {
                hit_id: borrowed_text(hit_id)?,
                ts,
                kind: borrowed_text(kind)?,
                delivery_id: borrowed_text(hit_delivery_id)?,
                log_id,
                url_id,
                ua: borrowed_text(ua)?,
                ip: borrowed_text(ip)?,
                purpose: borrowed_text(purpose)?,
            };
            Ok((hit, values.verdict))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let corrections = correction_values
        .iter()
        .map(|(hit_id, verdict)| Ok((borrowed_text(hit_id)?, *verdict)))
        .collect::<PyResult<Vec<_>>>()?;
    let counters = counter_values
        .iter()
        .map(|(stat, field, delta)| Ok((borrowed_text(stat)?, borrowed_text(field)?, *delta)))
        .collect::<PyResult<Vec<_>>>()?;
    let body = run_items::encode(borrowed_text(&delivery_id)?, &hits, &corrections, &counters)
        .map_err(|error| run_item_error(py, error))?;
    Ok(PyBytes::new(py, &body))
}

/// The reference's `run_items.split`: `body` as bodies of at most `limit` bytes each (itself when it fits),
/// its entries halved until each part fits. RunItemError for a body `decode` refuses; ValueError, the
/// reference's message, for a part of one entry past the limit.
#[pyfunction]
fn split_run_item<'py>(
    py: Python<'py>,
    body: &Bound<'py, PyBytes>,
    limit: usize,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    if body.as_bytes().len() <= limit {
        return Ok(vec![body.clone()]); // itself, as the reference returns it
    }
    match run_items::split(body.as_bytes(), limit) {
        Ok(parts) => Ok(parts.iter().map(|part| PyBytes::new(py, part)).collect()),
        Err(run_items::SplitError::Body(error)) => Err(run_item_error(py, error)),
        Err(run_items::SplitError::OneEntry(size)) => Err(PyValueError::new_err(format!(
            "a run item of one entry is {size} bytes, past {limit}"
        ))),
    }
}

/// The decoded tuples: ((hit, verdict), ...), ((hit id, verdict), ...), ((stat, field, delta), ...).
type DecodedTuples<'py> = (Bound<'py, PyTuple>, Bound<'py, PyTuple>, Bound<'py, PyTuple>);

/// The content of a run item's body (the reference's `run_items.decode`): the fields of a
/// `run_items.RunItem` as tuples, hits made with `hit_type` (core.Hit) and `delivery_id` as given; each
/// text is one str object however many hits use it. Raises RunItemError with the reference's reason.
#[pyfunction]
fn decode_run_item<'py>(
    py: Python<'py>,
    delivery_id: &Bound<'py, PyAny>,
    body: &Bound<'py, PyBytes>,
    hit_type: &Bound<'py, PyAny>,
) -> PyResult<DecodedTuples<'py>> {
    let item = run_items::decode(body.as_bytes()).map_err(|error| run_item_error(py, error))?;
    let texts: Vec<Bound<'py, PyString>> = item.texts.iter().map(|text| PyString::new(py, text)).collect();
    let mut id_text = [0u8; 32];
    let hits = item
        .hits
        .iter()
        .map(|hit| {
            let object = hit_type.call1((
                PyString::new(py, run::hex_into(hit.hit_id, 32, &mut id_text)),
                hit.ts,
                kind_name(py, hit.kind),
                delivery_id,
                hit.log_id,
                hit.url_id,
                &texts[hit.ua as usize],
                &texts[hit.ip as usize],
                purpose_name(py, hit.purpose),
            ))?;
            PyTuple::new(py, [object, hit.verdict.into_bound_py_any(py)?])
        })
        .collect::<PyResult<Vec<_>>>()?;
    let corrections = item
        .corrections
        .iter()
        .map(|&(hit_id, verdict)| (run::hex_into(hit_id, 32, &mut id_text).to_owned(), verdict).into_pyobject(py))
        .collect::<PyResult<Vec<_>>>()?;
    let counters = item
        .counters
        .iter()
        .map(|counter| {
            (
                &texts[counter.stat as usize],
                &texts[counter.field as usize],
                counter.delta,
            )
                .into_pyobject(py)
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok((
        PyTuple::new(py, hits)?,
        PyTuple::new(py, corrections)?,
        PyTuple::new(py, counters)?,
    ))
}

// --------------------------------------------------------------------------- a workflow run

/// Encoded items (a JSON text) handed to Python without a copy: `memoryview(text)` reads the bytes in
/// place. A run's items are tens of megabytes, and copying them into a `bytes` cost about 5% of its compute.
#[pyclass(frozen, module = "sendtrail_native")]
struct EncodedText {
    text: String,
}

#[pymethods]
impl EncodedText {
    fn __len__(&self) -> usize {
        self.text.len()
    }

    /// A read-only, one-dimensional view of unsigned bytes (CPython's `PyBuffer_FillInfo` fills it and
    /// refuses a writable one).
    ///
    /// # Safety
    /// `view` is the `Py_buffer` CPython passes to `bf_getbuffer`. The view holds a reference to `slf`
    /// (`PyBuffer_FillInfo` takes one), and `text` is never changed (the class is frozen), so the
    /// pointer stays valid until the view is released.
    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        let text = slf.get().text.as_bytes();
        let length = ffi::Py_ssize_t::try_from(text.len()).map_err(|_| PyValueError::new_err("too long"))?;
        // SAFETY: see above; CPython only reads through a read-only view's pointer.
        let filled =
            unsafe { ffi::PyBuffer_FillInfo(view, slf.as_ptr(), text.as_ptr().cast_mut().cast(), length, 1, flags) };
        if filled == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }
}

/// A run's new hits, read from its parsed objects' hits (the LazyTuples
/// `parse_log` returned) without making a Python object per hit, their IPs
/// minimised; `compute` gives what the run writes. The workflow
/// (`chalicelib/tracking/workflow.py`, `_compute`) reads `recipients`,
/// `user_agents` and `ips` for the stored state and the classification,
/// then calls `compute` once. In the append layout (`_appended`) it gives the
/// touched shards' run items to `read_run_items` first, and calls
/// `compute_appended` once instead.
#[pyclass(module = "sendtrail_native")]
struct RunHits {
    table: HitTable,
    new_rows: Vec<u32>,
    /// The value of each new hit's id (rows 0.. of `table`: a parsed hit id, 32 lower-case hex digits).
    id_values: Vec<u128>,
    /// The new hits grouped by recipient, once `recipients` asked (compute reuses it).
    grouped: Option<aggregate::Grouped>,
    computed: bool,
    /// The touched recipients' hits stored in run items (`read_run_items`), as rows of `table` after the
    /// new ones: (group, row), in the order read.
    stored_rows: Vec<(u32, u32)>,
    /// The value of each stored row's hit id (row `new_rows.len() + at` is `stored_ids[at]`).
    stored_ids: Vec<u128>,
    /// The verdict each stored hit was last counted with (its run item's, or a later item's correction), by
    /// the table's number of its hit id (None: no stored hit has it): the reference's `verdicts` in `_appended`.
    stored_verdicts: Vec<Option<i64>>,
}

/// `records.minimise_ip` of every hit, natively but for IPv6 under
/// `truncated` (the reference `minimise`, once per distinct address).
#[pyfunction]
fn run_hits(parsed: &Bound<'_, PyAny>, ip_mode: &str, minimise: &Bound<'_, PyAny>) -> PyResult<RunHits> {
    let mode = run::IpMode::parse(ip_mode).ok_or_else(|| unsupported("an IP address mode it does not know"))?;
    let mut table = HitTable::default();
    let mut new_rows = Vec::new();
    let mut id_values = Vec::new();
    let mut scratch = String::new(); // a minimised address
    let mut by_reference: HashMap<String, String> = HashMap::new();
    let (mut hit_id, mut delivery_id) = ([0u8; 32], [0u8; 32]);
    for hits in parsed.try_iter()? {
        let hits = hits?;
        let lazy = hits
            .cast::<LazyTuple>()
            .map_err(|_| unsupported("parsed hits that are not the native module's"))?
            .get();
        if lazy.items != Items::Hits {
            return Err(unsupported("a LazyTuple of recipient updates"));
        }
        let log = &lazy.shared.log;
        // The object's agents and the last delivery id, by their number in the table: each distinct one
        // hashed once, not once per hit.
        let mut uas: Vec<Option<u32>> = vec![None; log.user_agents().len()];
        let mut delivery: Option<(u64, u32)> = None;
        let mut purposes: Vec<(logs::Purpose, u32)> = Vec::new();
        for hit in &log.hits {
            let raw = log.ip(hit);
            let ip = match run::minimise_ip_into(raw, mode, &mut scratch) {
                Some(ip) => ip,
                None => {
                    if !by_reference.contains_key(raw) {
                        let minimised: String = minimise.call1((raw, ip_mode))?.extract()?;
                        by_reference.insert(raw.to_owned(), minimised);
                    }
                    by_reference[raw].as_str()
                }
            };
            let fields = HitFields {
                hit_id: run::hex_into(hit.hit_id, 32, &mut hit_id),
                ts: hit.ts as i64, // at most 2**53 - 1, as are the ids below
                kind: hit.kind.as_str(),
                delivery_id: "", // interned below
                log_id: hit.log_id as i64,
                url_id: hit.url_id as i64,
                ua: "",
                ip,
                purpose: hit.purpose.as_str(),
            };
            let ua = match uas[hit.ua as usize] {
                Some(ua) => ua,
                None => *uas[hit.ua as usize].insert(table.intern(Strings::Ua, log.ua(hit))),
            };
            let delivery = match delivery {
                Some((value, number)) if value == hit.delivery_id => number,
                _ => {
                    let text = run::hex_into(u128::from(hit.delivery_id), 16, &mut delivery_id);
                    let number = table.intern(Strings::Delivery, text);
                    delivery = Some((hit.delivery_id, number));
                    number
                }
            };
            let purpose = match purposes.iter().find(|(purpose, _)| *purpose == hit.purpose) {
                Some(&(_, number)) => number,
                None => {
                    let number = table.intern(Strings::Purpose, hit.purpose.as_str());
                    purposes.push((hit.purpose, number));
                    number
                }
            };
            let strings = RowStrings {
                ua,
                ip: table.intern(Strings::Ip, ip),
                delivery,
                purpose,
            };
            new_rows.push(table.push_interned(&fields, Some(hit.kind), strings));
            id_values.push(hit.hit_id);
        }
    }
    debug_assert!(new_rows.iter().enumerate().all(|(at, &row)| row as usize == at));
    Ok(RunHits {
        table,
        new_rows,
        id_values,
        grouped: None,
        computed: false,
        stored_rows: Vec::new(),
        stored_ids: Vec::new(),
        stored_verdicts: Vec::new(),
    })
}

fn string_list<'py, 'a, T>(py: Python<'py>, texts: T) -> PyResult<Bound<'py, PyList>>
where
    T: IntoIterator<Item = &'a str>,
    T::IntoIter: ExactSizeIterator,
{
    PyList::new(py, texts)
}

/// A tracking item's `evicted` map (`items.encode_summary`).
fn summary_attribute(item: &mut dynamo::Items, summary: &Summary) {
    let sorted = |values: &[i64]| {
        let mut values = values.to_vec();
        values.sort_unstable();
        values
    };
    item.map("evicted");
    item.n("count", summary.count);
    for (name, (at, hit_id)) in [("first", &summary.first), ("last", &summary.last)] {
        item.list(name);
        item.list_n(*at);
        item.list_s(hit_id);
        item.list_end();
    }
    item.s("flags", &run::summary_flags(summary));
    item.numbers("urls", sorted(&summary.urls));
    item.numbers("urls_human", sorted(&summary.urls_human));
    item.s("requesters", &run::summary_requesters(&summary.requesters));
    item.n("requesters_over", summary.requesters_over);
    item.s("filter", &base64url::encode_standard(&summary.filter));
    item.numbers("kinds", summary.kinds.iter().copied());
    item.n("machine", summary.machine);
    if let Some(at) = summary.last_open {
        item.n("last_open", at);
    }
    if let Some(at) = summary.last_open_human {
        item.n("last_open_human", at);
    }
    item.map_end();
}

/// An attribute whose value the workflow passes as it found it (a stored recipient id or domain): a
/// string or an integer, as TypeSerializer writes them; Unsupported for anything else.
fn value_attribute(item: &mut dynamo::Items, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Ok(text) = value.cast_exact::<PyString>() {
        item.s(
            name,
            &text_of(text).ok_or_else(|| unsupported("a string that is not Unicode"))?,
        );
    } else if value.is_exact_instance_of::<PyInt>() {
        item.n(
            name,
            value.extract().map_err(|_| unsupported("an integer past 64 bits"))?,
        );
    } else {
        return Err(unsupported(
            "a recipient id or domain that is neither a string nor an integer",
        ));
    }
    Ok(())
}

/// What the workflow knows of a recipient beyond its hits: (recipient id as
/// stored or None, recipient id as the log pages name it, domain, domain stat).
struct Details<'py> {
    recipient_id: Bound<'py, PyAny>,
    recipient_text: String,
    domain: Bound<'py, PyAny>,
    stat: String,
}

fn details_from<'py>(value: &Bound<'py, PyAny>) -> PyResult<Details<'py>> {
    let (recipient_id, recipient_text, domain, stat): (Bound<'py, PyAny>, String, Bound<'py, PyAny>, String) =
        value.extract()?;
    Ok(Details {
        recipient_id,
        recipient_text,
        domain,
        stat,
    })
}

const DAY_SECONDS: i64 = 86_400;

/// `workflow.domain_updates`' totals: by (delivery id, domain stat), how its recipients' opened / clicked
/// state (`run::reached`) moved.
#[derive(Default)]
struct DomainTotals<'a> {
    totals: BTreeMap<(&'a str, String), [i64; 4]>,
    /// The last key added to and its sums, not yet in `totals` (recipients in a row mostly share one: no
    /// allocation and lookup each).
    last: Option<((&'a str, String), [i64; 4])>,
}

impl<'a> DomainTotals<'a> {
    /// One recipient's state after the run (`now`) and before it (`then`).
    fn add(&mut self, delivery_id: &'a str, stat: &str, now: [i64; 4], then: [i64; 4]) {
        let same = matches!(&self.last, Some(((last_delivery, last_stat), _))
                            if *last_delivery == delivery_id && last_stat == stat);
        if !same {
            self.settle();
            let sums = self.totals.remove(&(delivery_id, stat.to_owned())).unwrap_or([0; 4]);
            self.last = Some(((delivery_id, stat.to_owned()), sums));
        }
        let (_, target) = self.last.as_mut().expect("the key added to");
        for (slot, (value, was)) in target.iter_mut().zip(now.iter().zip(then)) {
            *slot += value - was;
        }
    }

    fn settle(&mut self) {
        if let Some((key, sums)) = self.last.take() {
            self.totals.insert(key, sums);
        }
    }

    /// [(delivery id, stat, {counter: delta})] of those that moved, sorted, zeros left out.
    fn deltas<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.settle();
        let deltas = PyList::empty(py);
        for ((delivery_id, stat), moved) in &self.totals {
            if moved.iter().all(|&value| value == 0) {
                continue;
            }
            let add = PyDict::new(py);
            for (name, value) in ["opens", "clicks", "opens_human", "clicks_human"].iter().zip(moved) {
                if *value != 0 {
                    add.set_item(*name, *value)?;
                }
            }
            deltas.append((*delivery_id, stat.as_str(), add))?;
        }
        Ok(deltas)
    }
}

impl RunHits {
    /// Groups the new hits by recipient (once: `grouped`), their rows renumbered in that order first: the
    /// aggregation and the items then read the table in order, not a row here and there (most of
    /// their time went in cache misses).
    fn grouped(&mut self) {
        if self.grouped.is_none() {
            let mut grouped = self.table.group(&self.new_rows);
            let mut order = grouped.new.clone();
            let mut kept = vec![false; self.table.len()];
            for &row in &order {
                kept[row as usize] = true;
            }
            order.extend(self.new_rows.iter().filter(|&&row| !kept[row as usize])); // repeated ids
            self.table.reorder(&order);
            self.id_values = order.iter().map(|&row| self.id_values[row as usize]).collect();
            self.new_rows = (0..order.len() as u32).collect();
            grouped.new = (0..grouped.new.len() as u32).collect();
            self.grouped = Some(grouped);
        }
    }
}

#[pymethods]
impl RunHits {
    fn __len__(&self) -> usize {
        self.new_rows.len()
    }

    /// The distinct recipients (delivery id, log id) of the hits.
    fn recipients<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        if self.computed {
            return Err(PyValueError::new_err("a RunHits is computed once"));
        }
        self.grouped();
        let grouped = self.grouped.as_ref().expect("grouped");
        let keys = grouped
            .recipients
            .iter()
            .map(|(delivery, log_id, _)| (self.table.delivery_id(*delivery), *log_id));
        PyList::new(py, keys)
    }

    /// The distinct (delivery id, shard) of the hits' recipients, sorted (the append layout's shards: a
    /// recipient's is its log id // `recipients_per_shard`, data/run_items.py's `shard_of`).
    fn shards<'py>(&mut self, py: Python<'py>, recipients_per_shard: i64) -> PyResult<Bound<'py, PyList>> {
        if self.computed {
            return Err(PyValueError::new_err("a RunHits is computed once"));
        }
        if recipients_per_shard <= 0 {
            return Err(PyValueError::new_err("a shard holds at least one recipient"));
        }
        self.grouped();
        let grouped = self.grouped.as_ref().expect("grouped");
        let mut shards: Vec<(u32, i64)> = Vec::new();
        for (delivery, log_id, _) in &grouped.recipients {
            let shard = (*delivery, log_id.div_euclid(recipients_per_shard));
            if shards.last() != Some(&shard) {
                shards.push(shard); // recipients come by delivery id, then log id: each shard's together
            }
        }
        PyList::new(
            py,
            shards
                .iter()
                .map(|&(delivery, shard)| (self.table.delivery_id(delivery), shard)),
        )
    }

    /// The distinct user agents of the hits.
    fn user_agents<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        string_list(py, self.table.user_agent_texts())
    }

    /// ({address: flags} of the hits' addresses that have some in `ipv4` / `ipv6` (classify's `_Ranges`
    /// of each family: starts, ends, flags), [the other distinct addresses]): what classify's
    /// `addresses_flags` says of dotted quads and of IPv6 addresses in their canonical text (what
    /// `minimise_ip` writes), read natively; the other addresses are left to it.
    fn address_flags<'py>(
        &self,
        py: Python<'py>,
        ipv4: (Vec<u128>, Vec<u128>, Vec<i64>),
        ipv6: (Vec<u128>, Vec<u128>, Vec<i64>),
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyList>)> {
        let (found, others) = (PyDict::new(py), PyList::empty(py));
        for ip in self.table.ip_texts() {
            let (value, (starts, ends, flags)) = match run::dotted_quad(ip) {
                Some(value) => (Some(u128::from(value)), &ipv4),
                None => (run::canonical_ipv6(ip), &ipv6),
            };
            match value.map(|value| run::range_flags(value, starts, ends, flags)) {
                Some(0) => {}
                Some(flagged) => found.set_item(ip, flagged)?,
                None => others.append(ip)?,
            }
        }
        Ok((found, others))
    }

    /// The distinct (minimised) addresses of the hits.
    fn ips<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        string_list(py, self.table.ip_texts())
    }

    /// The run's writes: (recipient items (`items.encode_recipient`, without
    /// last_run), where each ends, deliveries as `aggregate` gives them, domain
    /// deltas [(delivery id, stat, deltas)] (`workflow.domain_updates`), log
    /// pages (`log_pages.encode_pages`, deliveries in order), where each ends,
    /// hits accepted, duplicates, over_limit); items and pages as one JSON
    /// array of DynamoDB items each ([`dynamo`], `data/item_json.py`). `prior`, `summaries`, `context` and the
    /// bound as `aggregate` takes them; `details`: recipient -> (recipient id
    /// or None, its text for the log pages, domain, domain stat), `default`
    /// for the others. Once per RunHits.
    #[pyo3(signature = (prior, summaries, hit_type, context, max_hits_per_recipient, first_hits_per_recipient,
                        details, default, now_ms, retention_days, run))]
    // Allowed: the Python signature (chalicelib/native.py) is the interface.
    #[allow(clippy::too_many_arguments)]
    fn compute<'py>(
        &mut self,
        py: Python<'py>,
        prior: &Bound<'py, PyAny>,
        summaries: &Bound<'py, PyAny>,
        hit_type: &Bound<'py, PyAny>,
        context: &Bound<'py, PyAny>,
        max_hits_per_recipient: usize,
        first_hits_per_recipient: Option<usize>,
        details: &Bound<'py, PyDict>,
        default: &Bound<'py, PyAny>,
        now_ms: i64,
        retention_days: i64,
        run: i64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        if std::mem::replace(&mut self.computed, true) {
            return Err(PyValueError::new_err("a RunHits is computed once"));
        }
        let mut table = std::mem::take(&mut self.table);
        self.grouped();
        let grouped = self.grouped.take();
        let gathered = gather(
            py,
            &mut table,
            &self.new_rows,
            prior,
            Some(summaries),
            hit_type,
            None,
            grouped,
        )?;
        if gathered.prior_rows.iter().any(|&row| table.kind(row).is_none()) {
            return Err(unsupported("a stored hit of a kind it does not know"));
        }
        let classifying = table_context(
            py,
            Some(context),
            &table,
            &gathered.groups,
            &gathered.group_keys,
            &gathered.prior_rows,
        )?;
        let bound = HitBound::new(max_hits_per_recipient, first_hits_per_recipient);
        let aggregates = aggregate::aggregate(&table, &gathered.input(), bound, &classifying);

        let default = details_from(default)?;
        let packed = run::PackedIds::new((0..table.len() as u32).map(|row| {
            match self.id_values.get(row as usize) {
                Some(&value) => ("", table.ts(row), Some(value)), // the id's text is not read
                None => (table.hit_id_of(row), table.ts(row), None),
            }
        }));
        // About what the standard input's items take (hit lines, their agents and addresses), and pages.
        let mut items = dynamo::Items::with_capacity(400 * aggregates.kept.len() + 500 * aggregates.recipients.len());
        let mut recipient_texts: Vec<String> = vec![default.recipient_text.clone()];
        let mut recipient_numbers: HashMap<String, usize> = HashMap::from([(default.recipient_text.clone(), 0)]);
        let mut logged: Vec<(u32, u32, usize)> = Vec::new(); // (delivery, row, recipient text)
        let mut domains = DomainTotals::default();
        let mut accepted = 0u64;
        let mut encoded = run::ItemHits::default();
        // Agents and addresses escaped once each (items hold them as given, and many items the same ones).
        let (uas_escaped, ips_escaped) = (
            run::Lines::escaped(table.user_agent_texts()),
            run::Lines::escaped(table.ip_texts()),
        );
        for update in &aggregates.recipients {
            accepted += update.added;
            let group = &gathered.groups[update.group];
            let (delivery_id, log_id) = &gathered.group_keys[update.group];
            let found = if details.is_empty() {
                None
            } else {
                details.get_item((delivery_id.as_str(), *log_id))?
            };
            let found = found.map(|value| details_from(&value)).transpose()?;
            let known = found.as_ref().unwrap_or(&default);
            let kept = &aggregates.kept[update.kept.clone()];
            let verdicts = &aggregates.verdicts[update.kept.clone()];
            run::item_hits(
                &mut encoded,
                run::Spelling::Json,
                kept.iter().zip(verdicts).map(|(&row, &verdict)| run::ItemHit {
                    hit_id: if packed.get(row).is_some() {
                        ""
                    } else {
                        table.hit_id_of(row)
                    },
                    ts: table.ts(row),
                    packed: packed.get(row),
                    kind: table.kind(row).map_or("", Kind::as_str),
                    url_id: table.url_id(row),
                    ua: uas_escaped.get(table.ua(row) as usize),
                    ip: ips_escaped.get(table.ip_of(row) as usize),
                    purpose: table.purpose_text(row),
                    verdict: Some(verdict),
                }),
            );
            let first_hit_at = kept.first().map_or(0, |&row| table.ts(row));
            let last_hit_at = kept.last().map_or(0, |&row| table.ts(row));
            items.begin();
            items.s("delivery_id", delivery_id);
            items.n("log_id", *log_id);
            items.escaped_strings("hits", encoded.lines.iter());
            items.escaped_strings("uas", encoded.uas.iter().copied());
            items.escaped_strings("ips", encoded.ips.iter().copied());
            items.n("hit_count", kept.len() as i64);
            items.n("first_hit_at", first_hit_at);
            items.n("last_hit_at", last_hit_at);
            items.n("updated_at", now_ms);
            items.n(
                "expires_at_epoch",
                last_hit_at.max(now_ms).div_euclid(1000) + retention_days * DAY_SECONDS,
            );
            if known.recipient_id.is_truthy()? {
                value_attribute(&mut items, "recipient_id", &known.recipient_id)?;
            }
            if let Some(sent_at) = classifying.sent_at[update.group] {
                items.n("sent_at", sent_at);
            }
            if known.domain.is_truthy()? {
                value_attribute(&mut items, "domain", &known.domain)?;
            }
            if let Some(summary) = update.summary.as_deref() {
                summary_attribute(&mut items, summary);
            }
            items.end();

            let before = &gathered.prior_rows[group.prior.clone()];
            let now = run::reached(
                kept.iter().map(|&row| table.kind(row)).zip(verdicts.iter().copied()),
                update.summary.as_deref(),
            );
            let then = run::reached(
                before.iter().map(|&row| {
                    (
                        table.kind(row),
                        classifying.stored[row as usize].unwrap_or(classify::UNCLASSIFIED),
                    )
                }),
                gathered.summaries.get(update.group).and_then(Option::as_ref),
            );
            domains.add(delivery_id, &known.stat, now, then);

            let recipient = match &found {
                None => 0,
                // Numbered by text (run::PageHit::recipient_key): two recipients may share one.
                Some(found) => *recipient_numbers
                    .entry(found.recipient_text.clone())
                    .or_insert_with(|| {
                        recipient_texts.push(found.recipient_text.clone());
                        recipient_texts.len() - 1
                    }),
            };
            // Every hit new to the recipient is logged, those the item evicts at once too (core.fresh_by_recipient).
            for &row in &aggregates.fresh[update.fresh.clone()] {
                logged.push((group.delivery, row, recipient));
            }
        }

        let domain_deltas = domains.deltas(py)?;

        let mut pages = dynamo::Items::with_capacity(100 * logged.len() + 4096);
        let mut start = 0;
        while start < logged.len() {
            let delivery = logged[start].0;
            let end = start + logged[start..].iter().take_while(|entry| entry.0 == delivery).count();
            let hits = logged[start..end]
                .iter()
                .map(|&(_, row, recipient)| run::PageHit {
                    ts: table.ts(row),
                    hit_id: if packed.get(row).is_some() {
                        ""
                    } else {
                        table.hit_id_of(row)
                    },
                    packed: packed.get(row),
                    kind: table.kind(row).map_or("", Kind::as_str),
                    log_id: table.recipient(row).1,
                    url_id: table.url_id(row),
                    ua: table.ua_text(table.ua(row)),
                    recipient: &recipient_texts[recipient],
                    ua_key: table.ua(row),
                    recipient_key: recipient as u32,
                })
                .collect();
            let delivery_id = table.delivery_id(gathered.delivery_numbers[delivery as usize]);
            for page in run::encode_pages(hits, run, run::Spelling::Json) {
                pages.begin();
                pages.s("delivery_id", delivery_id);
                pages.s("stat", &page.stat);
                pages.escaped_strings("hits", page.lines.iter());
                pages.escaped_strings("uas", page.ua_keys.iter().map(|&ua| uas_escaped.get(ua as usize)));
                pages.strings("recipients", page.recipients.iter().copied());
                pages.end();
            }
            start = end;
        }

        let delivery_id = |number: u32| table.delivery_id(gathered.delivery_numbers[number as usize]).to_owned();
        let deliveries = deliveries_list(py, |ua| table.ua_text(ua), &aggregates.deliveries, delivery_id)?;
        let ((items, item_ends), (pages, page_ends)) = (items.finish(), pages.finish());
        (
            EncodedText { text: items },
            PyTuple::new(py, item_ends)?,
            deliveries,
            domain_deltas,
            EncodedText { text: pages },
            PyTuple::new(py, page_ends)?,
            accepted,
            aggregates.duplicates,
            aggregates.over_limit,
        )
            .into_pyobject(py)
    }

    /// Reads the run items stored in the shards the hits touch (the append layout: `workflow._appended`),
    /// `stored` = [(delivery id, [body, ...]), ...], shard after shard and each shard's items in run order,
    /// as the reference reads them. The touched recipients' stored hits become their prior hits for
    /// `compute_appended` (their agents and addresses join `user_agents`, `ips` and `address_flags`), each
    /// with the verdict it was last counted with: its run item's, or a later item's correction. No Python
    /// object per stored hit. Raises RunItemError (the reference's reason and detail) for the first body
    /// its decode refuses, Unsupported for a body that is not bytes.
    fn read_run_items(&mut self, py: Python<'_>, stored: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.computed {
            return Err(PyValueError::new_err("a RunHits is computed once"));
        }
        self.grouped();
        let RunHits {
            table,
            grouped,
            stored_rows,
            stored_ids,
            stored_verdicts,
            ..
        } = self;
        let recipients = &grouped.as_ref().expect("grouped").recipients;
        let mut id_text = [0u8; 32];
        let mut purposes: [Option<u32>; 4] = [None; 4]; // by Purpose, its number in the table
        let mut delivery: Option<(String, usize, usize)> = None; // the last delivery's range of the groups

        // Every body with its delivery's touched recipients (sorted by delivery id, then log id: a slice of the
        // groups, found once for a delivery's shards in a row), then every body decoded, in that order (the
        // first refusal is the reference's), then their hits read into the table, its room made once.
        let mut bodies_read: Vec<(usize, usize, Bound<'_, PyBytes>)> = Vec::new();
        for entry in stored.try_iter()? {
            let (delivery_id, bodies): (Bound<'_, PyString>, Bound<'_, PyAny>) = entry?.extract()?;
            let delivery_id = delivery_id
                .to_str()
                .map_err(|_| unsupported("a delivery id that is not Unicode"))?;
            let (start, end) = match &delivery {
                Some((last, start, end)) if last == delivery_id => (*start, *end),
                _ => {
                    let start = recipients.partition_point(|recipient| table.delivery_id(recipient.0) < delivery_id);
                    let end = start
                        + recipients[start..]
                            .partition_point(|recipient| table.delivery_id(recipient.0) == delivery_id);
                    delivery = Some((delivery_id.to_owned(), start, end));
                    (start, end)
                }
            };
            for body in bodies.try_iter()? {
                let body = body?
                    .cast_into::<PyBytes>()
                    .map_err(|_| unsupported("a run item body that is not bytes"))?;
                bodies_read.push((start, end, body));
            }
        }
        let items = bodies_read
            .iter()
            .map(|(_, _, body)| run_items::decode(body.as_bytes()).map_err(|error| run_item_error(py, error)))
            .collect::<PyResult<Vec<_>>>()?;
        let decoded: usize = items.iter().map(|item| item.hits.len()).sum();
        table.reserve(decoded);
        stored_rows.reserve(decoded);
        stored_ids.reserve(decoded);
        for ((start, end, _), item) in bodies_read.iter().zip(&items) {
            let (start, touched) = (*start, &recipients[*start..*end]);
            // The item's texts as the table numbers agents and addresses, once each, as touched hits use them.
            let (mut uas, mut ips) = (vec![u32::MAX; item.texts.len()], vec![u32::MAX; item.texts.len()]);
            let mut found: Option<(i64, Option<usize>)> = None; // (log id, its group): hits come by log id
            for hit in &item.hits {
                let group = match found {
                    Some((log_id, group)) if log_id == hit.log_id => group,
                    _ => {
                        let group = touched
                            .binary_search_by_key(&hit.log_id, |recipient| recipient.1)
                            .ok()
                            .map(|at| start + at);
                        found = Some((hit.log_id, group));
                        group
                    }
                };
                let Some(group) = group else {
                    continue; // a recipient of the shard the run does not touch
                };
                let ua = match uas[hit.ua as usize] {
                    u32::MAX => {
                        let number = table.intern(Strings::Ua, item.text(hit.ua));
                        uas[hit.ua as usize] = number;
                        number
                    }
                    number => number,
                };
                let ip = match ips[hit.ip as usize] {
                    u32::MAX => {
                        let number = table.intern(Strings::Ip, item.text(hit.ip));
                        ips[hit.ip as usize] = number;
                        number
                    }
                    number => number,
                };
                let purpose = *purposes[hit.purpose as usize]
                    .get_or_insert_with(|| table.intern(Strings::Purpose, hit.purpose.as_str()));
                let fields = HitFields {
                    hit_id: run::hex_into(hit.hit_id, 32, &mut id_text),
                    ts: hit.ts,
                    kind: hit.kind.as_str(),
                    delivery_id: "", // interned: the group's
                    log_id: hit.log_id,
                    url_id: hit.url_id,
                    ua: "",
                    ip: "",
                    purpose: hit.purpose.as_str(),
                };
                let strings = RowStrings {
                    ua,
                    ip,
                    delivery: recipients[group].0,
                    purpose,
                };
                let row = table.push_interned(&fields, Some(hit.kind), strings);
                stored_rows.push((group as u32, row));
                stored_ids.push(hit.hit_id);
                let id = table.id(row) as usize;
                if stored_verdicts.len() <= id {
                    stored_verdicts.resize(table.id_count(), None);
                }
                stored_verdicts[id] = Some(hit.verdict);
            }
            // A correction is of a hit an earlier item stored (the reference's: of a touched recipient's).
            for &(hit_id, verdict) in &item.corrections {
                let known = table.find_id(run::hex_into(hit_id, 32, &mut id_text));
                if let Some(slot) = known.and_then(|id| stored_verdicts.get_mut(id as usize)) {
                    if slot.is_some() {
                        *slot = Some(verdict);
                    }
                }
            }
        }
        Ok(())
    }

    /// The append layout's writes (`workflow._appended`), from the hits and the run items `read_run_items`
    /// read: (run items [(delivery id, shard, body in standard base64)], one per touched (delivery, shard)
    /// in that order; deliveries as `aggregate` gives them; domain deltas [(delivery id, stat, deltas)]
    /// (`workflow.domain_updates` against the stored hits and their verdicts); hits accepted; duplicates;
    /// over_limit; recipients touched). A shard's body (`run_items.encode`) holds its recipients' new hits
    /// with their verdicts and the stored hits whose verdict changed. `context` and the bound as `aggregate`
    /// takes them, but for the stored verdicts, which are the run items' (its `stored` is not read); the
    /// bound must keep every hit (nothing is evicted: a shard holds them all). `details` and `default` as
    /// `compute`'s; `recipients_per_shard`: data/run_items.py's shard size. Raises RunItemError where the
    /// reference's encode refuses. Once per RunHits.
    #[pyo3(signature = (context, max_hits_per_recipient, first_hits_per_recipient, details, default,
                        recipients_per_shard))]
    // Allowed: the Python signature (chalicelib/native.py) is the interface.
    #[allow(clippy::too_many_arguments)]
    fn compute_appended<'py>(
        &mut self,
        py: Python<'py>,
        context: &Bound<'py, PyAny>,
        max_hits_per_recipient: usize,
        first_hits_per_recipient: Option<usize>,
        details: &Bound<'py, PyDict>,
        default: &Bound<'py, PyAny>,
        recipients_per_shard: i64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        if recipients_per_shard <= 0 {
            return Err(PyValueError::new_err("a shard holds at least one recipient"));
        }
        if std::mem::replace(&mut self.computed, true) {
            return Err(PyValueError::new_err("a RunHits is computed once"));
        }
        self.grouped();
        let grouped = self.grouped.take().expect("grouped");
        let table = std::mem::take(&mut self.table);
        let stored_from = self.new_rows.len() as u32; // the stored hits' rows follow the new ones
        let mut stored_rows = std::mem::take(&mut self.stored_rows);
        stored_rows.sort_by_key(|&(group, _)| group); // stable: each recipient's in the order read
        let mut gathered = Gathered {
            groups: Vec::with_capacity(grouped.recipients.len()),
            group_keys: Vec::with_capacity(grouped.recipients.len()),
            prior_rows: stored_rows.iter().map(|&(_, row)| row).collect(),
            summaries: Vec::new(),
            delivery_numbers: Vec::new(),
            grouped: aggregate::Grouped {
                recipients: Vec::new(),
                new: Vec::new(),
                duplicates: 0,
            },
        };
        let mut at = 0;
        for (index, (delivery, log_id, new)) in grouped.recipients.iter().enumerate() {
            let start = at;
            while stored_rows.get(at).is_some_and(|&(group, _)| group as usize == index) {
                at += 1;
            }
            if gathered.delivery_numbers.last() != Some(delivery) {
                gathered.delivery_numbers.push(*delivery);
            }
            gathered.groups.push(Group {
                delivery: (gathered.delivery_numbers.len() - 1) as u32,
                log_id: *log_id,
                new: new.clone(),
                prior: start..at,
            });
            gathered
                .group_keys
                .push((table.delivery_id(*delivery).to_owned(), *log_id));
        }
        gathered.grouped = grouped;
        // The verdict the stored hit of a hit's id was last counted with, if one has its id.
        let stored_verdict = |row: u32| self.stored_verdicts.get(table.id(row) as usize).copied().flatten();
        let mut classifying = table_context(
            py,
            Some(context),
            &table,
            &gathered.groups,
            &gathered.group_keys,
            &[], // the stored verdicts are the run items'
        )?;
        for &row in &gathered.prior_rows {
            classifying.stored[row as usize] = stored_verdict(row);
        }
        let bound = HitBound::new(max_hits_per_recipient, first_hits_per_recipient);
        let aggregates = aggregate::aggregate(&table, &gathered.input(), bound, &classifying);

        let default = details_from(default)?;
        let row_id = |row: u32| {
            if row < stored_from {
                self.id_values[row as usize]
            } else {
                self.stored_ids[(row - stored_from) as usize]
            }
        };
        // The bodies' texts by one number each (run_items::encode_known): agents by theirs, addresses after
        // them, but an address spelled as an agent is by the agent's number (a body writes a text once).
        let (uas, ips) = (table.user_agent_texts(), table.ip_texts());
        let mut ip_numbers: Vec<u32> = (0..ips.len() as u32).map(|ip| uas.len() as u32 + ip).collect();
        for (ua, text) in uas.iter().enumerate() {
            if let Some(ip) = table.find_ip(text) {
                ip_numbers[ip as usize] = ua as u32;
            }
        }
        let text = |number: u32| match uas.get(number as usize) {
            Some(ua) => *ua,
            None => ips[number as usize - uas.len()],
        };
        let purposes: Vec<Option<Purpose>> = table
            .purpose_texts()
            .iter()
            .map(|purpose| {
                if purpose.is_empty() {
                    Some(Purpose::Undeclared)
                } else {
                    Purpose::parse(purpose)
                }
            })
            .collect();
        let written = PyList::empty(py);
        let mut domains = DomainTotals::default();
        let mut accepted = 0u64;
        // The shard being gathered: (its delivery, shard), its new hits and corrections; then its body.
        let mut shard: Option<(u32, i64)> = None;
        let mut hits: Vec<run_items::KnownHit> = Vec::new();
        let mut corrections: Vec<(u128, i64)> = Vec::new();
        let mut body: Vec<u8> = Vec::new();
        let mut texts = run_items::KnownTexts::default();
        let mut write_shard =
            |shard: (u32, i64), hits: &mut Vec<run_items::KnownHit>, corrections: &mut Vec<(u128, i64)>| {
                body.clear();
                run_items::encode_known(&mut body, hits, corrections, &[], text, &mut texts)
                    .map_err(|error| run_item_error(py, error))?;
                let delivery_id = table.delivery_id(gathered.delivery_numbers[shard.0 as usize]);
                hits.clear();
                corrections.clear();
                written.append((delivery_id, shard.1, base64url::encode_standard(&body)))
            };
        for update in &aggregates.recipients {
            if update.over_limit != 0 || update.summary.is_some() {
                return Err(PyValueError::new_err(
                    "the append layout keeps every hit: no bound may evict one",
                ));
            }
            accepted += update.added;
            let group = &gathered.groups[update.group];
            let (delivery_id, log_id) = &gathered.group_keys[update.group];
            let here = (group.delivery, log_id.div_euclid(recipients_per_shard));
            if shard != Some(here) {
                if let Some(done) = shard.replace(here) {
                    write_shard(done, &mut hits, &mut corrections)?;
                }
            }
            let kept = &aggregates.kept[update.kept.clone()];
            let verdicts = &aggregates.verdicts[update.kept.clone()];
            for (&row, &verdict) in kept.iter().zip(verdicts) {
                let id = row_id(row);
                // By hit id, as the reference's (its `verdicts`): a stored hit counted with another verdict.
                let correction = stored_verdict(row).is_some_and(|stored| stored != verdict);
                if row < stored_from {
                    // Nothing evicted: the recipient's new hits are its kept ones that are not stored.
                    let (Some(kind), Some(purpose)) = (table.kind(row), purposes[table.purpose_of(row) as usize])
                    else {
                        return Err(unsupported("a hit of a kind or purpose no run item holds"));
                    };
                    hits.push(run_items::KnownHit {
                        id,
                        ts: table.ts(row),
                        kind,
                        purpose,
                        log_id: *log_id,
                        url_id: table.url_id(row),
                        ua: table.ua(row),
                        ip: ip_numbers[table.ip_of(row) as usize],
                        verdict,
                    });
                }
                if correction {
                    corrections.push((id, verdict));
                }
            }
            let found = if details.is_empty() {
                None
            } else {
                details.get_item((delivery_id.as_str(), *log_id))?
            };
            let found = found.map(|value| details_from(&value)).transpose()?;
            let known = found.as_ref().unwrap_or(&default);
            let before = &gathered.prior_rows[group.prior.clone()];
            let now = run::reached(
                kept.iter().map(|&row| table.kind(row)).zip(verdicts.iter().copied()),
                None,
            );
            let then = run::reached(
                before.iter().map(|&row| {
                    (
                        table.kind(row),
                        classifying.stored[row as usize].unwrap_or(classify::UNCLASSIFIED),
                    )
                }),
                None,
            );
            domains.add(delivery_id, &known.stat, now, then);
        }
        if let Some(done) = shard {
            write_shard(done, &mut hits, &mut corrections)?;
        }
        let delivery_id = |number: u32| table.delivery_id(gathered.delivery_numbers[number as usize]).to_owned();
        let deliveries = deliveries_list(py, |ua| table.ua_text(ua), &aggregates.deliveries, delivery_id)?;
        (
            written,
            deliveries,
            domains.deltas(py)?,
            accepted,
            aggregates.duplicates,
            aggregates.over_limit,
            aggregates.recipients.len(),
        )
            .into_pyobject(py)
    }
}

/// mimalloc's `mi_option_purge_delay`: its place in `mi_option_e` (mimalloc.h, the v3 that
/// libmimalloc-sys 0.1.49 builds).
const MI_OPTION_PURGE_DELAY: c_int = 15;

extern "C" {
    // mimalloc's own (the global allocator, lib.rs): the crate's bindings to it need another dependency.
    fn mi_option_get(option: c_int) -> c_long;
}

/// The allocator's purge delay in milliseconds (-1: never), as mimalloc reads it.
#[pyfunction]
fn allocator_purge_delay_ms() -> c_long {
    // SAFETY: mi_option_get only reads the option.
    unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[pymodule]
fn sendtrail_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add_function(wrap_pyfunction!(allocator_purge_delay_ms, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add("InvalidToken", py.get_type::<InvalidToken>())?;
    module.add("Unsupported", py.get_type::<Unsupported>())?;
    module.add("REASONS", Reason::ALL.map(Reason::as_str).to_vec())?;
    module.add("LOG_REASONS", logs::Reason::ALL.map(logs::Reason::as_str).to_vec())?;
    module.add("CLASSIFY_REASONS", classify::REASONS.to_vec())?;
    let rules = Rules::default();
    module.add(
        "DEFAULT_RULES",
        (
            rules.enabled,
            rules.burst_links,
            rules.burst_window_ms,
            rules.min_click_after_send_ms,
        ),
    )?;
    module.add_class::<LazyTuple>()?;
    module.add_function(wrap_pyfunction!(verify_token, module)?)?;
    module.add_function(wrap_pyfunction!(parse_log, module)?)?;
    module.add_function(wrap_pyfunction!(process_log, module)?)?;
    module.add_function(wrap_pyfunction!(aggregate_hits, module)?)?;
    module.add_class::<RunHits>()?;
    module.add_class::<EncodedText>()?;
    module.add_function(wrap_pyfunction!(run_hits, module)?)?;
    module.add("RunItemError", py.get_type::<RunItemError>())?;
    module.add(
        "RUN_ITEM_REASONS",
        run_items::Reason::ALL.map(run_items::Reason::as_str).to_vec(),
    )?;
    module.add_function(wrap_pyfunction!(encode_run_item, module)?)?;
    module.add_function(wrap_pyfunction!(decode_run_item, module)?)?;
    module.add_function(wrap_pyfunction!(split_run_item, module)?)?;
    Ok(())
}
