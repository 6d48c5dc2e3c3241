//! Items as DynamoDB JSON: what a workflow run writes, encoded once.
//!
//! A run's recipient items and log pages go from the aggregation to PutItem
//! without a Python object per attribute: they are written here as one JSON
//! array of items in DynamoDB's attribute-value form (`{"S": ...}`,
//! `{"N": "..."}`, `{"L": [...]}`, `{"M": {...}}`), byte for byte what the
//! Python reference writes for the same items (`chalicelib/data/item_json.py`:
//! `json.dumps([to_item(item) ...], separators=(",", ":"))`, ASCII with
//! `\uXXXX` escapes). The run record carries that text, and the workflow
//! hands each item to PutItem as it decodes it.

/// A JSON array of DynamoDB items, written attribute by attribute.
pub struct Items {
    text: String,
    /// Per open container (the array, an item, a map or a list): whether a value was written in it.
    written: Vec<bool>,
    /// Where each item ends in `text` (the workflow decodes them one at a time as it writes them).
    ends: Vec<usize>,
}

impl Default for Items {
    fn default() -> Self {
        Items {
            text: String::from("["),
            written: vec![false],
            ends: Vec::new(),
        }
    }
}

impl Items {
    /// Room for about `bytes` of items reserved (not touched: it costs memory only as it is written),
    /// so a run's tens of megabytes are not copied as they grow.
    pub fn with_capacity(bytes: usize) -> Items {
        let mut items = Items::default();
        items.text.reserve(bytes);
        items
    }

    fn separate(&mut self) {
        if let Some(written) = self.written.last_mut() {
            if std::mem::replace(written, true) {
                self.text.push(',');
            }
        }
    }

    /// An attribute's name: the code's own identifiers, which JSON writes as they are (not escaped
    /// one by one: a run writes millions of them).
    fn name(&mut self, name: &str) {
        debug_assert!(
            name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_'),
            "{name}"
        );
        self.separate();
        self.text.push('"');
        self.text.push_str(name);
        self.text.push_str("\":");
    }

    /// Starts the next item of the array.
    pub fn begin(&mut self) {
        self.separate();
        self.text.push('{');
        self.written.push(false);
    }

    /// Ends the item `begin` started.
    pub fn end(&mut self) {
        self.text.push('}');
        self.written.pop();
        self.ends.push(self.text.len());
    }

    /// A string attribute.
    pub fn s(&mut self, name: &str, value: &str) {
        self.name(name);
        self.text.push_str("{\"S\":");
        string(&mut self.text, value);
        self.text.push('}');
    }

    /// A number attribute.
    pub fn n(&mut self, name: &str, value: i64) {
        self.name(name);
        number(&mut self.text, value);
    }

    /// A list attribute of strings.
    pub fn strings<'a>(&mut self, name: &str, values: impl IntoIterator<Item = &'a str>) {
        self.list(name);
        for value in values {
            self.list_s(value);
        }
        self.list_end();
    }

    /// A list attribute of strings given already escaped (`escaped`, `run::Spelling::Json`).
    pub fn escaped_strings<'a>(&mut self, name: &str, values: impl IntoIterator<Item = &'a str>) {
        self.list(name);
        for value in values {
            self.list_escaped(value);
        }
        self.list_end();
    }

    /// A list attribute of numbers.
    pub fn numbers(&mut self, name: &str, values: impl IntoIterator<Item = i64>) {
        self.list(name);
        for value in values {
            self.list_n(value);
        }
        self.list_end();
    }

    /// Starts a list attribute (its values by `list_s` / `list_n`, then `list_end`).
    pub fn list(&mut self, name: &str) {
        self.name(name);
        self.text.push_str("{\"L\":[");
        self.written.push(false);
    }

    /// A list value of a string given already escaped (`escaped`, `run::Spelling::Json`).
    pub fn list_escaped(&mut self, value: &str) {
        self.separate();
        self.text.push_str("{\"S\":\"");
        self.text.push_str(value);
        self.text.push_str("\"}");
    }

    pub fn list_s(&mut self, value: &str) {
        self.separate();
        self.text.push_str("{\"S\":");
        string(&mut self.text, value);
        self.text.push('}');
    }

    pub fn list_n(&mut self, value: i64) {
        self.separate();
        number(&mut self.text, value);
    }

    pub fn list_end(&mut self) {
        self.text.push_str("]}");
        self.written.pop();
    }

    /// Starts a map attribute (its attributes as an item's, then `map_end`).
    pub fn map(&mut self, name: &str) {
        self.name(name);
        self.text.push_str("{\"M\":{");
        self.written.push(false);
    }

    pub fn map_end(&mut self) {
        self.text.push_str("}}");
        self.written.pop();
    }

    /// The items written.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The JSON array (every item ended), and where each item ends in it.
    pub fn finish(mut self) -> (String, Vec<usize>) {
        debug_assert_eq!(self.written.len(), 1, "an item, map or list left open");
        self.text.push(']');
        (self.text, self.ends)
    }
}

/// `{"N":"<value>"}`: TypeSerializer's number, the integer's decimal digits.
fn number(out: &mut String, value: i64) {
    out.push_str("{\"N\":\"");
    decimal(out, value);
    out.push_str("\"}");
}

/// `value`'s decimal digits (as Python's `str` of an int), appended.
pub fn decimal(out: &mut String, value: i64) {
    if (0..10).contains(&value) {
        out.push(char::from(b'0' + value as u8)); // most numbers a run writes: indexes, kinds, verdicts
        return;
    }
    if value < 0 {
        out.push('-');
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[at..]).expect("decimal digits are ASCII"));
}

/// A JSON string as Python's `json.dumps` writes it with `ensure_ascii`: printable ASCII as it is
/// but `"` and `\`, the usual short escapes, every other character as `\uXXXX` (lower-case hex,
/// UTF-16 surrogate pairs past U+FFFF).
pub fn string(out: &mut String, value: &str) {
    out.push('"');
    escaped(out, value);
    out.push('"');
}

/// `string` without the quotes.
pub fn escaped(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = value.as_bytes();
    let mut start = 0;
    let mut at = 0;
    while at < bytes.len() {
        if let Some(word) = bytes.get(at..at + 8) {
            if !needs_escape(u64::from_le_bytes(word.try_into().expect("8 bytes"))) {
                at += 8;
                continue;
            }
        }
        let byte = bytes[at];
        if (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\' {
            at += 1;
            continue;
        }
        out.push_str(&value[start..at]);
        let (escaped, width) = match byte {
            b'"' => ("\\\"", 1),
            b'\\' => ("\\\\", 1),
            b'\n' => ("\\n", 1),
            b'\r' => ("\\r", 1),
            b'\t' => ("\\t", 1),
            0x08 => ("\\b", 1),
            0x0c => ("\\f", 1),
            _ => ("", 0),
        };
        if width == 1 {
            out.push_str(escaped);
            at += 1;
        } else {
            let character = value[at..].chars().next().expect("at a character boundary");
            let mut units = [0u16; 2];
            for unit in character.encode_utf16(&mut units) {
                out.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(char::from(HEX[usize::from(*unit >> shift) & 0xF]));
                }
            }
            at += character.len_utf8();
        }
        start = at;
    }
    out.push_str(&value[start..]);
}

/// Whether any of 8 bytes is one `string` escapes: a control character, DEL, `"`, `\` or not ASCII
/// (the classic SWAR tests: a byte below n sets its high bit in `(word - n per byte) & !word`).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |word: u64, limit: u64| word.wrapping_sub(ONES * limit) & !word & HIGHS;
    let zero = |word: u64| below(word, 1);
    (below(word, 0x20)
        | (word & HIGHS)
        | zero(word ^ (ONES * 0x7f))
        | zero(word ^ (ONES * u64::from(b'"')))
        | zero(word ^ (ONES * u64::from(b'\\'))))
        != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(value: &str) -> String {
        let mut out = String::new();
        string(&mut out, value);
        out
    }

    #[test]
    fn strings_are_escaped_as_python_json_dumps_does() {
        assert_eq!(quoted("plain text ~"), "\"plain text ~\"");
        assert_eq!(quoted("a\tb\nc\rd\"e\\f"), "\"a\\tb\\nc\\rd\\\"e\\\\f\"");
        assert_eq!(quoted("\u{8}\u{c}\u{0}\u{1f}\u{7f}"), "\"\\b\\f\\u0000\\u001f\\u007f\"");
        assert_eq!(
            quoted("Ünïcödé 日本語"),
            "\"\\u00dcn\\u00efc\\u00f6d\\u00e9 \\u65e5\\u672c\\u8a9e\""
        );
        assert_eq!(quoted("😀x"), "\"\\ud83d\\ude00x\"");
        assert_eq!(quoted(""), "\"\"");
        // Every byte in every position of a long text: the 8-byte scan misses none.
        for special in ['\t', '"', '\\', '\u{7f}', '\u{1}', 'é'] {
            for at in 0..20 {
                let text: String = (0..20).map(|index| if index == at { special } else { 'a' }).collect();
                let mut expected = String::from("\"");
                for character in text.chars() {
                    match character {
                        'a' => expected.push('a'),
                        '\t' => expected.push_str("\\t"),
                        '"' => expected.push_str("\\\""),
                        '\\' => expected.push_str("\\\\"),
                        other => expected.push_str(&format!("\\u{:04x}", u32::from(other))),
                    }
                }
                expected.push('"');
                assert_eq!(quoted(&text), expected, "{special:?} at {at}");
            }
        }
        for byte in 0u8..=0x7f {
            let text = format!("abcdefgh{}ijklmnop", char::from(byte));
            let plain = (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\';
            assert_eq!(quoted(&text) == format!("\"{text}\""), plain, "byte {byte}");
        }
    }

    #[test]
    fn items_are_written_in_the_attribute_value_form() {
        let mut items = Items::default();
        assert_eq!(Items::default().finish(), (String::from("[]"), vec![]));
        items.begin();
        items.s("id", "a\tb");
        items.n("count", -12);
        items.n("zero", 0);
        items.strings("hits", ["x", "y"]);
        items.numbers("none", []);
        items.map("evicted");
        items.n("max", i64::MIN);
        items.list("first");
        items.list_n(5);
        items.list_s("h");
        items.list_end();
        items.map_end();
        items.end();
        items.begin();
        items.s("id", "b");
        items.end();
        assert_eq!(items.len(), 2);
        let (text, ends) = items.finish();
        assert_eq!(&text[ends[0]..ends[1]], r#",{"id":{"S":"b"}}"#);
        assert_eq!(
            text,
            concat!(
                r#"[{"id":{"S":"a\tb"},"count":{"N":"-12"},"zero":{"N":"0"},"hits":{"L":[{"S":"x"},{"S":"y"}]},"#,
                r#""none":{"L":[]},"evicted":{"M":{"max":{"N":"-9223372036854775808"},"#,
                r#""first":{"L":[{"N":"5"},{"S":"h"}]}}}},{"id":{"S":"b"}}]"#
            )
        );
    }
}
