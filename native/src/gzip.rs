//! gzip objects read exactly as the Python reference reads them, streamed.
//!
//! `chalicelib/tracking/core.py` reads a gzip object with CPython 3.11's
//! `gzip.GzipFile(fileobj=BytesIO(data)).read(MAX_OBJECT_BYTES + 1)` and calls
//! it `bad_gzip` when that raises. [`decode`] reproduces that call step by
//! step, so the same objects fail and the same objects are "too large":
//!
//! - members one after the other; after a member's trailer, NUL bytes are
//!   skipped; anything else must be a member: even a lone 0x1F fails;
//! - a header: magic, method 8 (anything else fails), the flags' FEXTRA
//!   (length-prefixed), FNAME and FCOMMENT (NUL-terminated; the end of the
//!   object ends them too) and FHCRC (2 bytes, read, never checked); reserved
//!   flag bits and the other header bytes are ignored;
//! - raw deflate by zlib-rs (a port of zlib, so corrupt streams fail as
//!   CPython's zlib fails them), fed as Python feeds zlib: 8 KiB of input per
//!   call, output capped at what the caller asked for; while that cap is so
//!   far that no input could reach it, several of Python's calls are made as
//!   one (see [`batch_for`]);
//! - the trailer (CRC-32 and length mod 2^32) is checked when the next read
//!   starts, as `_GzipReader.read` does;
//! - `io.BufferedReader.read(limit + 1)` (8 KiB buffer) decides how much is
//!   asked for at each step: direct reads of whole buffer multiples, then
//!   buffer fills. Reading stops as soon as `limit + 1` bytes are there, so an
//!   object past the limit is "too large" unless an error shows up in what
//!   those reads still decoded (including zlib's look-ahead past a full output
//!   buffer); errors further on are never seen, by Python or by us.
//!
//! The text is handed to `sink` chunk by chunk as it is decoded and never held
//! here: the caller keeps results and discards them if the ending is not
//! [`Ending::Complete`].

use flate2::{Decompress, FlushDecompress, Status};

/// `io.DEFAULT_BUFFER_SIZE`: `_GzipReader` reads its input in chunks of this
/// size, and GzipFile's `io.BufferedReader` has a buffer of this size.
const CHUNK: usize = 8192;
/// The inflate output window (any size gives the same answers, see `call`;
/// large enough that zlib rarely copies output into its own window, small
/// enough that the lines are still in the CPU cache when they are judged).
const WINDOW: usize = 256 * 1024;
/// The most input one inflate call is given (a multiple of CHUNK): fewer,
/// longer calls spend less time entering and leaving zlib's fast loop.
const BATCH: usize = 8 * CHUNK;
/// Deflate's largest expansion: a 258-byte match coded in 2 bits.
const MAX_INFLATE_RATIO: usize = 1032;

const FHCRC: u8 = 2;
const FEXTRA: u8 = 4;
const FNAME: u8 = 8;
const FCOMMENT: u8 = 16;

/// How reading the object ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The whole text, at most `limit` bytes, was handed to the sink.
    Complete,
    /// More than `limit` bytes: Python's `object_too_large`.
    TooLarge,
    /// Python's read raised (OSError, EOFError or zlib.error): `bad_gzip`.
    Bad,
}

/// Python raised: the whole object is `bad_gzip`.
struct Bad;

/// `_GzipReader` over `_PaddedFile(BytesIO(data))`. Its `prepend` only ever
/// gives back the tail of the last read, so the padded file is a cursor that
/// can step back.
struct Reader<'a, S: FnMut(&[u8])> {
    data: &'a [u8],
    pos: usize,
    inflate: Decompress,
    member_ended: bool,
    new_member: bool,
    crc: crc32fast::Hasher,
    member_size: u64,
    window: Vec<u8>,
    /// The most input per call (BATCH; CHUNK to read exactly as Python does).
    batch: usize,
    sink: S,
}

impl<'a, S: FnMut(&[u8])> Reader<'a, S> {
    fn read_some(&mut self, size: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(size).min(self.data.len());
        self.pos = end;
        &self.data[start..end]
    }

    fn read_exact(&mut self, size: usize) -> Result<&'a [u8], Bad> {
        let bytes = self.read_some(size);
        if bytes.len() == size {
            Ok(bytes)
        } else {
            Err(Bad) // EOFError
        }
    }

    fn skip_zero_terminated(&mut self) {
        loop {
            let byte = self.read_some(1);
            if byte.is_empty() || byte[0] == 0 {
                return;
            }
        }
    }

    /// `_read_gzip_header`: false at the end of the object.
    fn read_header(&mut self) -> Result<bool, Bad> {
        let magic = self.read_some(2);
        if magic.is_empty() {
            return Ok(false);
        }
        if magic != [0x1F, 0x8B] {
            return Err(Bad);
        }
        let fixed = self.read_exact(8)?;
        let (method, flags) = (fixed[0], fixed[1]);
        if method != 8 {
            return Err(Bad);
        }
        if flags & FEXTRA != 0 {
            let length = self.read_exact(2)?;
            self.read_exact(usize::from(u16::from_le_bytes([length[0], length[1]])))?;
        }
        if flags & FNAME != 0 {
            self.skip_zero_terminated();
        }
        if flags & FCOMMENT != 0 {
            self.skip_zero_terminated();
        }
        if flags & FHCRC != 0 {
            self.read_exact(2)?;
        }
        Ok(true)
    }

    /// `_read_eof`: the member's trailer, then the NUL padding.
    fn read_trailer(&mut self) -> Result<(), Bad> {
        let trailer = self.read_exact(8)?;
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        let computed = std::mem::take(&mut self.crc).finalize();
        if crc != computed || u64::from(size) != self.member_size & 0xFFFF_FFFF {
            return Err(Bad);
        }
        loop {
            let byte = self.read_some(1);
            if byte.is_empty() {
                return Ok(());
            }
            if byte[0] != 0 {
                self.pos -= 1; // prepend
                return Ok(());
            }
        }
    }

    /// `_GzipReader.read(size)`: the bytes of one decompress call that gave
    /// some (0 at the end of the object).
    fn read(&mut self, size: usize) -> Result<usize, Bad> {
        loop {
            if self.member_ended {
                self.read_trailer()?;
                self.new_member = true;
                self.member_ended = false;
                self.inflate.reset(false);
            }
            if self.new_member {
                self.crc = crc32fast::Hasher::new();
                self.member_size = 0;
                if !self.read_header()? {
                    return Ok(0);
                }
                self.new_member = false;
            }
            let start = self.pos;
            let input = self.read_some(batch_for(size, self.batch));
            let (produced, consumed) = self.call(input, size)?;
            self.pos = start + consumed; // unconsumed_tail / unused_data are prepended
            if produced > 0 {
                return Ok(produced);
            }
            if input.is_empty() {
                return Err(Bad); // "Compressed file ended before the end-of-stream marker"
            }
        }
    }

    /// `zlib.decompressobj(wbits=-15).decompress(input, max_length)`: inflate
    /// (Z_SYNC_FLUSH) while the output is full and under `max_length`. zlib
    /// resumes exactly where it stopped, so the window size changes nothing;
    /// what matters is the cap, where zlib stops (after looking ahead).
    fn call(&mut self, input: &[u8], max_length: usize) -> Result<(usize, usize), Bad> {
        let first_in = self.inflate.total_in();
        let mut produced = 0;
        loop {
            let room = WINDOW.min(max_length - produced);
            if room == 0 {
                break;
            }
            let consumed = (self.inflate.total_in() - first_in) as usize;
            let before = self.inflate.total_out();
            let status = self
                .inflate
                .decompress(&input[consumed..], &mut self.window[..room], FlushDecompress::Sync)
                .map_err(|_| Bad)?;
            let out = (self.inflate.total_out() - before) as usize;
            if out > 0 {
                let chunk = &self.window[..out];
                self.crc.update(chunk);
                self.member_size += out as u64;
                (self.sink)(chunk);
                produced += out;
            }
            if status == Status::StreamEnd {
                self.member_ended = true;
                break;
            }
            if out < room {
                break; // the input is used up
            }
        }
        Ok((produced, (self.inflate.total_in() - first_in) as usize))
    }
}

/// How much input one `read(size)` may give zlib at once: CHUNK, as Python
/// does, or a few CHUNKs when even the most expanding deflate data could not
/// bring any of the calls Python would make for them to its cap. Those calls
/// would each consume all their input (or stop at the member's end) and give
/// everything it decodes, so one call over their input ends in the same
/// state, with the same bytes, and meets the same errors. The margin covers
/// bits zlib holds from earlier input and BufferedReader's rounding of later
/// caps down to a CHUNK multiple.
fn batch_for(size: usize, batch: usize) -> usize {
    let chunks = (size.saturating_sub(2 * CHUNK) / (CHUNK * MAX_INFLATE_RATIO)).saturating_sub(1);
    (chunks * CHUNK).clamp(CHUNK, batch)
}

/// Decode the gzip object `data` as `GzipFile.read(limit + 1)` does, handing
/// the text to `sink` as it comes (possibly a little past `limit` when the
/// ending is `TooLarge`).
pub fn decode(data: &[u8], limit: usize, sink: impl FnMut(&[u8])) -> Ending {
    decode_batched(data, limit, BATCH, sink)
}

fn decode_batched(data: &[u8], limit: usize, batch: usize, sink: impl FnMut(&[u8])) -> Ending {
    let mut reader = Reader {
        data,
        pos: 0,
        inflate: Decompress::new(false),
        member_ended: false,
        new_member: true,
        crc: crc32fast::Hasher::new(),
        member_size: 0,
        window: vec![0; WINDOW],
        batch,
        sink,
    };
    match buffered_read(&mut reader, limit.saturating_add(1)) {
        Err(Bad) => Ending::Bad,
        Ok(length) if length > limit => Ending::TooLarge,
        Ok(_) => Ending::Complete,
    }
}

/// `io.BufferedReader.read(wanted)` on a fresh reader (`_bufferedreader_read_generic`).
fn buffered_read<S: FnMut(&[u8])>(reader: &mut Reader<'_, S>, wanted: usize) -> Result<usize, Bad> {
    let mut remaining = wanted;
    let mut written = 0;
    loop {
        let direct = remaining & !(CHUNK - 1); // MINUS_LAST_BLOCK
        if direct == 0 {
            break;
        }
        let got = reader.read(direct)?;
        if got == 0 {
            return Ok(written);
        }
        remaining -= got;
        written += got;
    }
    let mut filled = 0;
    while remaining > 0 && filled < CHUNK {
        let got = reader.read(CHUNK - filled)?;
        if got == 0 {
            return Ok(written);
        }
        filled += got;
        let taken = got.min(remaining);
        written += taken;
        remaining -= taken;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gzip(text: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(text).unwrap();
        encoder.finish().unwrap()
    }

    fn run(data: &[u8], limit: usize) -> (Ending, Vec<u8>) {
        let mut text = Vec::new();
        let ending = decode(data, limit, |chunk| text.extend_from_slice(chunk));
        (ending, text)
    }

    #[test]
    fn one_member() {
        let text = b"hello\nworld\n".repeat(1000);
        assert_eq!(run(&gzip(&text), usize::MAX - 1), (Ending::Complete, text));
    }

    #[test]
    fn members_and_nul_padding() {
        let mut data = gzip(b"one\n");
        data.extend_from_slice(&[0, 0, 0]);
        data.extend_from_slice(&gzip(b"two\n"));
        data.push(0);
        assert_eq!(run(&data, 1000), (Ending::Complete, b"one\ntwo\n".to_vec()));
    }

    #[test]
    fn trailing_garbage_truncation_and_corruption_are_bad() {
        let good = gzip(b"some text\n");
        let mut lone_magic_byte = good.clone();
        lone_magic_byte.push(0x1F);
        let mut padded_then_garbage = good.clone();
        padded_then_garbage.extend_from_slice(&[0, 0, 7]);
        let mut bad_crc = good.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 1;
        let mut bad_size = good.clone();
        let at = bad_size.len() - 4;
        bad_size[at] ^= 1;
        let mut bad_method = good.clone();
        bad_method[2] = 7;
        for data in [
            lone_magic_byte,
            padded_then_garbage,
            bad_crc,
            bad_size,
            bad_method,
            good[..good.len() - 1].to_vec(),
            good[..12].to_vec(),
            vec![0x1F, 0x8B],
        ] {
            assert_eq!(run(&data, 1000).0, Ending::Bad, "{data:?}");
        }
    }

    #[test]
    fn header_fields_are_skipped_and_fhcrc_is_not_checked() {
        let plain = gzip(b"text\n");
        let mut data = vec![
            0x1F,
            0x8B,
            8,
            FEXTRA | FNAME | FCOMMENT | FHCRC | 0xE0,
            0,
            0,
            0,
            0,
            0,
            3,
        ];
        data.extend_from_slice(&[2, 0, b'x', b'y']);
        data.extend_from_slice(b"name\0comment\0");
        data.extend_from_slice(&[0xAB, 0xCD]);
        data.extend_from_slice(&plain[10..]);
        assert_eq!(run(&data, 1000), (Ending::Complete, b"text\n".to_vec()));
    }

    /// The ending and (length, CRC-32) of the text `decode_batched` hands
    /// over (None for `Bad`: the caller discards it, and it may stop anywhere).
    fn summary(data: &[u8], limit: usize, batch: usize) -> (Ending, Option<(usize, u32)>) {
        let (mut length, mut crc) = (0, crc32fast::Hasher::new());
        let ending = decode_batched(data, limit, batch, |chunk| {
            length += chunk.len();
            crc.update(chunk);
        });
        (ending, (ending != Ending::Bad).then(|| (length, crc.finalize())))
    }

    #[test]
    fn batched_input_ends_as_python_s_8_kib_reads() {
        // Lines of noise between long runs of one byte (up to ~1000:1), two members.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut text = Vec::new();
        while text.len() < 28 << 20 {
            let roll = next();
            if roll % 3 == 0 {
                text.resize(text.len() + (roll >> 40) as usize % (4 << 20), b'\n');
            } else {
                text.extend((0..200).map(|_| b' ' + (next() % 90) as u8));
            }
        }
        let mut data = gzip(&text[..text.len() / 3]);
        data.extend_from_slice(&gzip(&text[text.len() / 3..]));
        let mut broken = Vec::new();
        for part in 1..4 {
            let at = data.len() * part / 4;
            broken.push(data[..at].to_vec());
            let mut flipped = data.clone();
            flipped[at] ^= 0x10;
            broken.push(flipped);
        }
        let near = CHUNK * MAX_INFLATE_RATIO;
        let cases = broken
            .iter()
            .flat_map(|object| [(object, usize::MAX - 1), (object, text.len())])
            .chain(
                [
                    text.len() - 1,
                    text.len() - near,
                    text.len() - 3 * near - 5,
                    text.len() / 2,
                ]
                .map(|limit| (&data, limit)),
            );
        for (object, limit) in cases {
            let batched = summary(object, limit, BATCH);
            assert_eq!(
                batched,
                summary(object, limit, CHUNK),
                "{} bytes, limit {limit}",
                object.len()
            );
        }
        assert_eq!(summary(&data, usize::MAX - 1, BATCH).0, Ending::Complete);
        assert_eq!(summary(&data, text.len() - 1, BATCH).0, Ending::TooLarge);
    }

    #[test]
    fn the_limit_counts_decoded_bytes() {
        let text = vec![b'a'; 5000];
        assert_eq!(run(&gzip(&text), 5000).0, Ending::Complete);
        assert_eq!(run(&gzip(&text), 4999).0, Ending::TooLarge);
    }
}
