//! One redirection-log line as JSON, judged exactly as the Python reference judges it.
//!
//! The reference calls `json.loads(text, object_pairs_hook=no duplicates,
//! parse_constant=reject, parse_float=finite only)` (CPython 3.11's C scanner)
//! and then checks depth and Unicode. Every failure there is `not_json`, so
//! this parser only has to agree on which texts are valid, and on the values
//! of the top-level members the record checks read. Valid means:
//!
//! - RFC 8259 grammar; whitespace is space, tab, LF and CR only (a leading
//!   U+FEFF is an error, as `json.loads` on a str says);
//! - strings: no raw control character below 0x20 (strict mode); escapes
//!   `\" \\ \/ \b \f \n \r \t \uXXXX` (hex in either case); a `\u` surrogate
//!   escape must be a high one followed by a low one (the reference keeps a
//!   lone one and then rejects the text as not encodable);
//! - numbers: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; an integer of
//!   more than `max_int_digits` digits (sign aside) fails as Python's
//!   `int()` does (its int_max_str_digits, 4300 by default; 0 means no limit),
//!   a float that rounds to an infinity fails (the reference's parse_float);
//!   `NaN` and `Infinity` are not JSON;
//! - no object with two equal keys (compared after unescaping), at any depth;
//! - at most [`MAX_DEPTH`] nested arrays and objects (the top level is 1).
//!
//! The top-level object's members named in [`FIELDS`] are returned with their
//! type and value; other members are validated and skipped.

use std::borrow::Cow;

/// The reference's MAX_JSON_DEPTH.
pub const MAX_DEPTH: usize = 32;
/// CPython's default `sys.get_int_max_str_digits()`.
pub const DEFAULT_MAX_INT_DIGITS: usize = 4300;

/// The members a record check reads, in the order the reference checks them
/// (after `v`). `request_id` is never read but almost always there: naming it
/// keeps the duplicate-key check on the fast path. `purpose` is optional.
pub const FIELDS: [&str; 13] = [
    "v",
    "hit_id",
    "ts",
    "kind",
    "delivery_id",
    "log_id",
    "url_id",
    "token",
    "p",
    "ua",
    "ip",
    "request_id",
    "purpose",
];
pub const V: usize = 0;
/// The index of the optional `purpose` member.
pub const PURPOSE: usize = 12;

/// The index of `name` in [`FIELDS`] (a match compiles to length-then-bytes
/// comparisons: much faster than searching the list).
fn field_index(name: &str) -> Option<usize> {
    let bytes = name.as_bytes();
    // One candidate by length and first byte, then one comparison.
    let index = match (bytes.len(), bytes.first()?) {
        (1, b'v') => 0,
        (6, b'h') => 1,
        (2, b't') => 2,
        (4, b'k') => 3,
        (11, b'd') => 4,
        (6, b'l') => 5,
        (6, b'u') => 6,
        (5, b't') => 7,
        (1, b'p') => 8,
        (2, b'u') => 9,
        (2, b'i') => 10,
        (10, b'r') => 11,
        (7, b'p') => 12,
        _ => return None,
    };
    (FIELDS[index].as_bytes() == bytes).then_some(index)
}

/// A top-level member's value, as far as the record checks care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Str(Cow<'a, str>),
    /// An integer (no fraction, no exponent): its value when it is not
    /// negative and has at most 19 digits (`-0` is 0), None otherwise (the
    /// record checks want at most 2**53 - 1).
    Int(Option<u64>),
    /// true, false, null, a float, an array or an object.
    Other,
}

/// The values of the top-level members named in [`FIELDS`], by index.
pub type Fields<'a> = [Option<Value<'a>>; FIELDS.len()];

/// What a valid JSON text is to the record checks.
#[allow(clippy::large_enum_variant)] // one per line, never stored: a Box would be an allocation per line
#[derive(Debug, PartialEq, Eq)]
pub enum Document<'a> {
    /// A top-level object: the values of the members in [`FIELDS`], by index.
    Object(Fields<'a>),
    /// Any other JSON value.
    NotObject,
}

/// The text is not valid JSON (by the reference's rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotJson;

type Result<T> = std::result::Result<T, NotJson>;

/// Parse one line (already valid UTF-8).
pub fn parse(text: &str, max_int_digits: usize) -> Result<Document<'_>> {
    let mut fields: Fields<'_> = Default::default();
    Ok(if parse_into(text, max_int_digits, &mut fields)? {
        Document::Object(fields)
    } else {
        Document::NotObject
    })
}

/// [`parse`] without moving the fields around: they are written into
/// `fields` (which must be all None); true for a top-level object.
pub fn parse_into<'a>(text: &'a str, max_int_digits: usize, fields: &mut Fields<'a>) -> Result<bool> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
        max_int_digits,
        // One vectorised pass: without control characters, strings only need
        // their quote and backslash found.
        has_controls: text.bytes().fold(0x20u8, |low, byte| low.min(byte)) < 0x20,
    };
    parser.skip_whitespace();
    let object = parser.peek() == Some(b'{');
    if object {
        parser.at += 1;
        parser.top_object(fields)?;
    } else {
        parser.value(1)?;
    }
    parser.skip_whitespace();
    if parser.at != parser.bytes.len() {
        return Err(NotJson); // "Extra data"
    }
    Ok(object)
}

/// The hit path's own spelling of a record (chalicelib/hits/records.py:
/// these members in this order, no whitespace, `request_id` last or absent),
/// with no escape or control character in any string and integers of at most
/// 19 digits: read straight into `fields`, as [`parse_into`] would. Anything
/// else is None (with `fields` left all None), and the general parser decides.
/// The fuzz target `parse_log` checks the two agree.
pub fn parse_canonical<'a>(text: &'a str, fields: &mut Fields<'a>) -> Option<()> {
    let mut cursor = Canonical { text, at: 0 };
    let read = (|| {
        cursor.literal(b"{\"v\":1,\"hit_id\":\"")?;
        fields[1] = Some(Value::Str(Cow::Borrowed(cursor.string()?)));
        cursor.literal(b",\"ts\":")?;
        fields[2] = Some(Value::Int(Some(cursor.integer()?)));
        cursor.literal(b",\"kind\":\"")?;
        fields[3] = Some(Value::Str(Cow::Borrowed(cursor.string()?)));
        cursor.literal(b",\"delivery_id\":\"")?;
        fields[4] = Some(Value::Str(Cow::Borrowed(cursor.string()?)));
        cursor.literal(b",\"log_id\":")?;
        fields[5] = Some(Value::Int(Some(cursor.integer()?)));
        cursor.literal(b",\"url_id\":")?;
        fields[6] = Some(Value::Int(Some(cursor.integer()?)));
        cursor.literal(b",\"token\":\"")?;
        fields[7] = Some(Value::Str(Cow::Borrowed(cursor.string()?)));
        cursor.literal(b",\"p\":\"")?;
        fields[8] = Some(Value::Str(Cow::Borrowed(cursor.string()?)));
        cursor.literal(b",\"ua\":\"")?;
        fields[9] = Some(Value::Str(Cow::Borrowed(cursor.string()?)));
        cursor.literal(b",\"ip\":\"")?;
        fields[10] = Some(Value::Str(Cow::Borrowed(cursor.string()?)));
        if cursor.literal(b",\"request_id\":\"").is_some() {
            fields[11] = Some(Value::Str(Cow::Borrowed(cursor.string()?)));
        }
        cursor.literal(b"}")?;
        (cursor.at == text.len()).then_some(())
    })();
    match read {
        Some(()) => {
            fields[V] = Some(Value::Int(Some(1)));
            Some(())
        }
        None => {
            fields.iter_mut().for_each(|field| *field = None);
            None
        }
    }
}

struct Canonical<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Canonical<'a> {
    /// Inlined, so each call compares against a constant of known length
    /// (a few wide loads) instead of calling memcmp.
    #[inline(always)]
    fn literal(&mut self, expected: &[u8]) -> Option<()> {
        self.text.as_bytes()[self.at..]
            .starts_with(expected)
            .then(|| self.at += expected.len())
    }

    /// A string's text after its opening quote: no escape, no control character.
    fn string(&mut self) -> Option<&'a str> {
        let rest = &self.text.as_bytes()[self.at..];
        let mut offset = 0;
        loop {
            let word = match rest.get(offset..offset + 8) {
                Some(chunk) => u64::from_le_bytes(chunk.try_into().expect("8 bytes")),
                None => {
                    let mut padded = [b'\\'; 8]; // the end of the text: no closing quote
                    padded[..rest.len() - offset].copy_from_slice(&rest[offset..]);
                    u64::from_le_bytes(padded)
                }
            };
            let stops = stop_bytes(word, true);
            if stops != 0 {
                let end = offset + (stops.trailing_zeros() / 8) as usize;
                if rest.get(end) != Some(&b'"') {
                    return None;
                }
                let value = &self.text[self.at..self.at + end];
                self.at += end + 1;
                return Some(value);
            }
            offset += 8;
        }
    }

    /// `0` or `[1-9][0-9]*`, at most 19 digits, not followed by a fraction or exponent.
    /// Up to 15 digits (a ms timestamp has 13) are found and read eight at a
    /// time; longer runs are read by [`Canonical::integer_by_digit`].
    #[inline(always)]
    fn integer(&mut self) -> Option<u64> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let block: [u8; 16] = match bytes.get(start..start + 16) {
            Some(block) => block.try_into().expect("16 bytes"),
            None => {
                let mut padded = [b'x'; 16]; // the end of the text ends the digits
                padded[..bytes.len() - start].copy_from_slice(&bytes[start..]);
                padded
            }
        };
        let high = digit_values(u64::from_le_bytes(block[8..].try_into().expect("8 bytes")));
        let low = digit_values(u64::from_le_bytes(block[..8].try_into().expect("8 bytes")));
        // The first `count` values moved to the top (zeros, leading, before them).
        let first = |values: u64, count: usize| values.checked_shl(8 * (8 - count) as u32).unwrap_or(0);
        let (count, value) = match (low.1, high.1) {
            (8, 8) => return self.integer_by_digit(), // 16 digits or more
            (8, count) => (
                8 + count,
                parse_eight(low.0) * TENS[count] + parse_eight(first(high.0, count)),
            ),
            (count, _) => (count, parse_eight(first(low.0, count))),
        };
        if count == 0 || (count > 1 && block[0] == b'0') {
            return None; // no digit, or a leading zero: the general parser decides
        }
        self.at += count;
        (!matches!(bytes.get(self.at), Some(b'.' | b'e' | b'E'))).then_some(value)
    }

    /// [`Canonical::integer`] a digit at a time.
    fn integer_by_digit(&mut self) -> Option<u64> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut value: u64 = 0;
        while let Some(&digit @ b'0'..=b'9') = bytes.get(self.at) {
            if self.at - start == 19 || (self.at > start && bytes[start] == b'0') {
                return None; // 20 digits, or a leading zero: the general parser decides
            }
            value = value * 10 + u64::from(digit - b'0');
            self.at += 1;
        }
        (self.at > start && !matches!(bytes.get(self.at), Some(b'.' | b'e' | b'E'))).then_some(value)
    }
}

/// Powers of ten up to 10^8.
const TENS: [u64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

/// Eight bytes (the first in the low byte) as digit values, and how many of
/// them, from the first, are ASCII digits (0 to 8).
#[inline(always)]
fn digit_values(word: u64) -> (u64, usize) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let values = word ^ (ONES * 0x30); // '0'-'9' become 0-9
                                       // The high bit of each byte is set when its value is not 0-9: 10 or more (low seven bits plus 0x76,
                                       // no carry), or its own high bit.
    let others = (((values & (ONES * 0x7F)) + ONES * 0x76) | values) & (ONES * 0x80);
    (values, (others.trailing_zeros() / 8) as usize)
}

/// Eight digit values (the first, most significant, in the low byte) as a number.
#[inline(always)]
fn parse_eight(values: u64) -> u64 {
    let pairs = (values.wrapping_mul(10) + (values >> 8)) & 0x00FF_00FF_00FF_00FF;
    let quads = (pairs.wrapping_mul(100) + (pairs >> 16)) & 0x0000_FFFF_0000_FFFF;
    (quads.wrapping_mul(10_000) + (quads >> 32)) & 0xFFFF_FFFF
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    max_int_digits: usize,
    /// Whether the text has a byte below 0x20 anywhere (strings must not).
    has_controls: bool,
}

/// The high bit of each byte of `word` (little-endian) that ends a plain run
/// of a string: a quote, a backslash, and (when `controls`) a byte below
/// 0x20. Bits above the lowest may be false (borrows), the lowest is exact.
fn stop_bytes(word: u64, controls: bool) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |value: u64| value.wrapping_sub(ONES) & !value;
    let mut stops = zero_in(word ^ (ONES * u64::from(b'"'))) | zero_in(word ^ (ONES * u64::from(b'\\')));
    if controls {
        stops |= word.wrapping_sub(ONES * 0x20) & !word;
    }
    stops & HIGHS
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(NotJson)
        }
    }

    /// An object's members, after its `{`: `member` reads the value of each
    /// key (the parser is after the colon).
    fn members(&mut self, mut member: impl FnMut(&mut Self, Cow<'a, str>) -> Result<()>) -> Result<()> {
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        self.expect(b'"')?;
        loop {
            let key = self.string_after_quote()?;
            self.skip_whitespace();
            self.expect(b':')?;
            self.skip_whitespace();
            member(self, key)?;
            if !self.object_continues()? {
                return Ok(());
            }
        }
    }

    /// The top-level object, after its `{`: the members in FIELDS into `fields`.
    fn top_object(&mut self, fields: &mut Fields<'a>) -> Result<()> {
        let mut others: Vec<Cow<'a, str>> = Vec::new();
        self.members(|parser, key| match field_index(&key) {
            Some(index) if fields[index].is_some() => Err(NotJson), // a duplicate key
            Some(index) => {
                fields[index] = Some(parser.member_value()?);
                Ok(())
            }
            None if others.contains(&key) => Err(NotJson),
            None => {
                others.push(key);
                parser.value(2)
            }
        })
    }

    /// After a member: `,` and the next key's quote (true) or `}` (false).
    fn object_continues(&mut self) -> Result<bool> {
        self.skip_whitespace();
        match self.peek() {
            Some(b'}') => {
                self.at += 1;
                Ok(false)
            }
            Some(b',') => {
                self.at += 1;
                self.skip_whitespace();
                self.expect(b'"')?;
                Ok(true)
            }
            _ => Err(NotJson),
        }
    }

    /// A top-level member's value (depth 2), with what the checks need.
    fn member_value(&mut self) -> Result<Value<'a>> {
        match self.peek() {
            Some(b'"') => {
                self.at += 1;
                Ok(Value::Str(self.string_after_quote()?))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => {
                self.value(2)?;
                Ok(Value::Other)
            }
        }
    }

    /// Any value at `depth` (containers deeper than MAX_DEPTH fail).
    fn value(&mut self, depth: usize) -> Result<()> {
        match self.peek() {
            Some(b'"') => {
                self.at += 1;
                self.string_after_quote().map(drop)
            }
            Some(b'{') => {
                self.at += 1;
                self.object(depth)
            }
            Some(b'[') => {
                self.at += 1;
                self.array(depth)
            }
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => Err(NotJson), // NaN, Infinity and -Infinity included
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(NotJson)
        }
    }

    fn object(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(NotJson);
        }
        let mut keys: Vec<Cow<'a, str>> = Vec::new();
        self.members(|parser, key| {
            if keys.contains(&key) {
                return Err(NotJson); // a duplicate key
            }
            keys.push(key);
            parser.value(depth + 1)
        })
    }

    fn array(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(NotJson);
        }
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.value(depth + 1)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b']') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(b',') => {
                    self.at += 1;
                    self.skip_whitespace();
                }
                _ => return Err(NotJson),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    /// A number; integers get their value (see [`Value::Int`]).
    fn number(&mut self) -> Result<Value<'a>> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let integer_start = self.at;
        let mut accumulated: u64 = 0; // right when at most 19 digits
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                while let Some(&digit @ b'0'..=b'9') = self.bytes.get(self.at) {
                    accumulated = accumulated.wrapping_mul(10).wrapping_add(u64::from(digit - b'0'));
                    self.at += 1;
                }
            }
            _ => return Err(NotJson),
        }
        let integer_end = self.at;
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(NotJson);
            }
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(NotJson);
            }
            is_float = true;
        }
        if is_float {
            let value: f64 = self.text[start..self.at].parse().map_err(|_| NotJson)?;
            return if value.is_infinite() {
                Err(NotJson)
            } else {
                Ok(Value::Other)
            };
        }
        let digits = &self.bytes[integer_start..integer_end];
        if self.max_int_digits > 0 && digits.len() > self.max_int_digits {
            return Err(NotJson); // ValueError: exceeds the limit for integer string conversion
        }
        let value = if negative {
            (digits == b"0").then_some(0)
        } else if digits.len() <= 19 {
            Some(accumulated)
        } else {
            None
        };
        Ok(Value::Int(value))
    }

    /// A string's value, after its opening quote.
    fn string_after_quote(&mut self) -> Result<Cow<'a, str>> {
        let start = self.at;
        let run = self.plain_run();
        match self.peek() {
            Some(b'"') => {
                self.at += 1;
                return Ok(Cow::Borrowed(&self.text[start..start + run]));
            }
            Some(b'\\') => {}
            _ => return Err(NotJson), // a control character or the end of the text
        }
        let mut value = String::with_capacity(run + 16);
        value.push_str(&self.text[start..start + run]);
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(Cow::Owned(value));
                }
                Some(b'\\') => {
                    self.at += 1;
                    self.escape(&mut value)?;
                }
                _ => return Err(NotJson),
            }
            let from = self.at;
            let run = self.plain_run();
            value.push_str(&self.text[from..from + run]);
        }
    }

    /// Skip bytes up to a quote, a backslash, a control character or the end.
    /// Skip bytes up to a quote, a backslash, a control character or the end,
    /// eight at a time.
    fn plain_run(&mut self) -> usize {
        let rest = &self.bytes[self.at..];
        let mut offset = 0;
        loop {
            let word = match rest.get(offset..offset + 8) {
                Some(chunk) => u64::from_le_bytes(chunk.try_into().expect("8 bytes")),
                None => {
                    let mut padded = [b'"'; 8]; // the end of the text stops the run
                    padded[..rest.len() - offset].copy_from_slice(&rest[offset..]);
                    u64::from_le_bytes(padded)
                }
            };
            let stops = stop_bytes(word, self.has_controls);
            if stops != 0 {
                let run = (offset + (stops.trailing_zeros() / 8) as usize).min(rest.len());
                self.at += run;
                return run;
            }
            offset += 8;
        }
    }

    fn escape(&mut self, value: &mut String) -> Result<()> {
        let Some(kind) = self.peek() else {
            return Err(NotJson);
        };
        self.at += 1;
        let decoded = match kind {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0xD800..=0xDBFF => {
                        // Only a following low surrogate escape makes it a character.
                        if !self.bytes[self.at..].starts_with(b"\\u") {
                            return Err(NotJson);
                        }
                        self.at += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(NotJson);
                        }
                        let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(code).ok_or(NotJson)?
                    }
                    0xDC00..=0xDFFF => return Err(NotJson),
                    _ => char::from_u32(unit).ok_or(NotJson)?,
                }
            }
            _ => return Err(NotJson),
        };
        value.push(decoded);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32> {
        let digits = self.bytes.get(self.at..self.at + 4).ok_or(NotJson)?;
        let mut unit = 0;
        for &digit in digits {
            let value = (digit as char).to_digit(16).ok_or(NotJson)?;
            unit = unit * 16 + value;
        }
        self.at += 4;
        Ok(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(text: &str) -> bool {
        parse(text, DEFAULT_MAX_INT_DIGITS).is_ok()
    }

    fn field<'a>(document: &'a Document<'_>, name: &str) -> Option<&'a Value<'a>> {
        match document {
            Document::Object(fields) => fields[FIELDS.iter().position(|f| *f == name).unwrap()].as_ref(),
            Document::NotObject => panic!("not an object"),
        }
    }

    #[test]
    fn grammar() {
        for text in [
            "{}",
            " {} ",
            "\t{\r}\n",
            "[]",
            "[1,2]",
            "\"x\"",
            "0",
            "-0",
            "1.5",
            "-1.5e-3",
            "1E+2",
            "true",
            "null",
            r#"{"a":{"b":[{"c":null}]}}"#,
            r#"{"a":"\u00e9\ud83d\ude00\/\b"}"#,
        ] {
            assert!(valid(text), "{text}");
        }
        for text in [
            "",
            " ",
            "{",
            "}",
            "{,}",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "1e",
            "1e+",
            "-",
            "+1",
            "NaN",
            "Infinity",
            "-Infinity",
            "tru",
            "nulll",
            "{} {}",
            "{\"a\" 1}",
            "{'a':1}",
            "\u{feff}{}",
            "\u{a0}{}",
            "\"\u{1}\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12g4\"",
            "[\"a\"\"b\"]",
            "{\"a\":1 \"b\":2}",
        ] {
            assert!(!valid(text), "{text:?}");
        }
    }

    #[test]
    fn stop_bytes_eight_at_a_time() {
        for stop in (0u8..0x20).chain([b'"', b'\\']) {
            for at in 0..8 {
                for filler in [b'a', 0x00, 0x1F, 0x7F, 0x80, 0xFF] {
                    let mut word = [if filler < 0x20 { b'a' } else { filler }; 8];
                    word[at] = stop;
                    let found = stop_bytes(u64::from_le_bytes(word), true);
                    assert_eq!(found.trailing_zeros() / 8, at as u32, "{stop} at {at}");
                    if stop >= 0x20 {
                        let found = stop_bytes(u64::from_le_bytes(word), false);
                        assert_eq!(found.trailing_zeros() / 8, at as u32, "{stop} at {at}");
                    }
                }
            }
        }
        for byte in 0x20u8..=0xFF {
            if byte != b'"' && byte != b'\\' {
                assert_eq!(stop_bytes(u64::from_le_bytes([byte; 8]), true), 0, "{byte}");
            }
        }
        for byte in 0u8..0x20 {
            assert_eq!(stop_bytes(u64::from_le_bytes([byte; 8]), false), 0, "{byte}");
        }
        for text in ["\"abc", "abcdefghijklmnop\"", "abcdefg\\", "abcdefgh", "", "é\u{1}x"] {
            let mut parser = Parser {
                text,
                bytes: text.as_bytes(),
                at: 0,
                max_int_digits: 0,
                has_controls: true,
            };
            let expected = text
                .bytes()
                .position(|b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(text.len());
            assert_eq!(parser.plain_run(), expected, "{text:?}");
        }
        for field in FIELDS {
            assert_eq!(field_index(field).map(|index| FIELDS[index]), Some(field));
        }
        assert_eq!(field_index("V"), None);
    }

    fn canonical_agrees(text: &str) -> bool {
        let mut fast: Fields<'_> = Default::default();
        let matched = parse_canonical(text, &mut fast).is_some();
        if matched {
            let mut general: Fields<'_> = Default::default();
            assert_eq!(
                parse_into(text, DEFAULT_MAX_INT_DIGITS, &mut general),
                Ok(true),
                "{text}"
            );
            assert_eq!(fast, general, "{text}");
        } else {
            assert!(fast.iter().all(Option::is_none));
        }
        matched
    }

    #[test]
    fn the_hit_paths_spelling_is_read_directly_and_the_same() {
        let record = concat!(
            r#"{"v":1,"hit_id":"019ab697e80050d7b24891917b121dc5","ts":1764000000000,"kind":"open","#,
            r#""delivery_id":"4164d8399f767c45","log_id":19763,"url_id":1,"token":"AgFBZNg5n3Z8RbOaAQEb21TZ3G3LWl2m","#,
            r#""p":"","ua":"Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com)","#,
            r#""ip":"152.146.19.0","request_id":"568068b9-10e6-4f59-5af8-4e5ad18a669a"}"#
        );
        assert!(canonical_agrees(record));
        assert!(canonical_agrees(
            &record.replace(r#","request_id":"568068b9-10e6-4f59-5af8-4e5ad18a669a""#, "")
        ));
        assert!(canonical_agrees(&record.replace("Mozilla", "Ünïcödé 😀")));
        assert!(canonical_agrees(&record.replace(r#""ts":1764000000000"#, r#""ts":0"#)));
        for changed in [
            record.replace("Mozilla", "Mo\\u007a"),   // an escape
            record.replace("Mozilla", "Mo\tz"),       // a control character
            record.replace("1764000000000", "01764"), // a leading zero: not JSON
            record.replace("1764000000000", "1.5"),   // a float
            record.replace("1764000000000", "1e3"),
            record.replace("1764000000000", "-1"),
            record.replace("1764000000000", "12345678901234567890"), // 20 digits
            record.replace(r#"{"v":1,"#, r#"{"v":1, "#),             // whitespace
            record.replace(r#"{"v":1,"#, r#"{"v":10,"#),
            format!("{record} "),
            format!("{record}}}"),
            record[..record.len() - 1].to_string(),
            record[..record.len() - 3].to_string(),
            record.replace(r#""request_id""#, r#""request_id2""#),
            String::new(),
        ] {
            assert!(!canonical_agrees(&changed), "{changed}");
        }
    }

    /// The canonical integer, eight digits at a time, agrees with reading a
    /// digit at a time for every run length, leading zero and what follows.
    #[test]
    fn canonical_integers_agree_with_digit_by_digit() {
        for length in 0..=24 {
            for first in ['0', '1', '9'] {
                for after in ["", ",", "}", ".5", "e3", "E3", "x", "é", "\"", "abcdefghij0123456789"] {
                    let digits: String = std::iter::once(first)
                        .chain("9876543210".chars().cycle())
                        .take(length)
                        .collect();
                    let text = format!("{digits}{after}");
                    let mut fast = Canonical { text: &text, at: 0 };
                    let mut slow = Canonical { text: &text, at: 0 };
                    let expected = slow.integer_by_digit();
                    assert_eq!(fast.integer(), expected, "{text}");
                    if expected.is_some() {
                        assert_eq!(fast.at, slow.at, "{text}");
                        assert_eq!(expected, digits.parse().ok(), "{text}");
                    }
                }
            }
        }
        for (word, count) in [
            (*b"12345678", 8),
            (*b"1234567/", 7),
            (*b"1:345678", 1),
            (*b"\xb01234567", 0),
        ] {
            assert_eq!(digit_values(u64::from_le_bytes(word)).1, count);
        }
        for byte in 0..=255u8 {
            let count = digit_values(u64::from_le_bytes([byte; 8])).1;
            assert_eq!(count, if byte.is_ascii_digit() { 8 } else { 0 }, "{byte}");
        }
    }

    #[test]
    fn duplicate_keys_after_unescaping_at_any_depth() {
        assert!(!valid(r#"{"a":1,"a":2}"#));
        assert!(!valid(r#"{"a":1,"\u0061":2}"#));
        assert!(!valid(r#"{"x":{"k":1,"k":2}}"#));
        assert!(!valid(r#"{"v":1,"\u0076":1}"#));
        assert!(!valid(r#"[{"k":1,"k":1}]"#));
        assert!(valid(r#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#));
    }

    #[test]
    fn surrogate_escapes() {
        assert!(valid(r#""\ud83d\ude00""#));
        assert!(valid(r#""\uD83D\uDE00""#));
        for text in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            r#""\ud800x""#,
            r#"{"\ud800":1}"#,
        ] {
            assert!(!valid(text), "{text}");
        }
    }

    #[test]
    fn depth() {
        let ok = format!("{}{}", "[".repeat(32), "]".repeat(32));
        let deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert!(valid(&ok));
        assert!(!valid(&deep));
        let objects = format!("{}1{}", "{\"a\":".repeat(32), "}".repeat(32));
        assert!(valid(&objects));
        let deeper = format!("{}1{}", "{\"a\":".repeat(33), "}".repeat(33));
        assert!(!valid(&deeper));
    }

    #[test]
    fn numbers() {
        assert!(valid(&"1".repeat(4300)));
        assert!(!valid(&"1".repeat(4301)));
        assert!(valid(&format!("-{}", "1".repeat(4300))));
        assert!(parse(&"1".repeat(5000), 0).is_ok());
        assert!(valid("1.7976931348623157e308"));
        assert!(!valid("1.7976931348623159e308"));
        assert!(!valid("-1e400"));
        assert!(valid("1e-400"));
        let document = parse(
            r#"{"ts":-0,"log_id":9999999999999999999,"url_id":-1,"v":1.0,"p":"x"}"#,
            4300,
        )
        .unwrap();
        assert_eq!(field(&document, "ts"), Some(&Value::Int(Some(0))));
        assert_eq!(
            field(&document, "log_id"),
            Some(&Value::Int(Some(9_999_999_999_999_999_999)))
        );
        assert_eq!(field(&document, "url_id"), Some(&Value::Int(None)));
        assert_eq!(field(&document, "v"), Some(&Value::Other));
        assert_eq!(field(&document, "p"), Some(&Value::Str(Cow::Borrowed("x"))));
        let big = parse(r#"{"ts":10000000000000000000}"#, 4300).unwrap();
        assert_eq!(field(&big, "ts"), Some(&Value::Int(None)));
    }

    #[test]
    fn members_are_unescaped() {
        let document = parse(r#"{"\u0076":1,"ua":"a\"b\u00e9"}"#, 4300).unwrap();
        assert_eq!(field(&document, "v"), Some(&Value::Int(Some(1))));
        assert_eq!(field(&document, "ua"), Some(&Value::Str(Cow::Owned("a\"bé".into()))));
        assert_eq!(parse("[1]", 4300), Ok(Document::NotObject));
    }
}
