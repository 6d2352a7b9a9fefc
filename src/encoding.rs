//! Content-Encoding: compressed bodies are decompressed to be judged (never past the size cap),
//! and a rewritten body is compressed again the same way. Anything else is refused, unjudged.
//!
//! Built on miniz_oxide's raw inflate/deflate with the gzip framing (RFC 1952) done here: the
//! module stays small, and the filter sees exactly how many input bytes each stream used, so
//! trailing bytes are caught instead of ignored.

use miniz_oxide::deflate::{compress_to_vec, compress_to_vec_zlib};
use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

/// Compression level for rewritten bodies (zlib's default).
const LEVEL: u8 = 6;

/// The most gzip members one body may have. HTTP clients send one; several are read as one
/// body (as Go, Python and Node do), but each costs a header and a trailer to check, so a body
/// of thousands of empty members is refused instead of keeping the worker busy.
pub const MAX_GZIP_MEMBERS: usize = 64;

/// Output room a stream starts with; it doubles as needed, so the work is linear in the output.
const FIRST_ROOM: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    /// HTTP `deflate`: the zlib format (RFC 1950), refused when it also reads as raw DEFLATE.
    Deflate,
}

/// The body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Decompressed, it is larger than the cap.
    TooLarge,
    /// Corrupt, truncated, or followed by trailing bytes.
    Corrupt,
}

/// The content type nearly every event is sent with, answered without parsing it.
fn is_plain_json(content_type: &str) -> bool {
    content_type.eq_ignore_ascii_case("application/json")
}

impl Encoding {
    /// Reads a `content-encoding` header value. `None` for encodings the filter cannot judge
    /// (`br`, `zstd`, unknown names, several stacked codings).
    pub fn from_header(value: Option<&str>) -> Option<Encoding> {
        let Some(value) = value else {
            return Some(Encoding::Identity);
        };
        // A byte beyond ASCII (a lone 0xA0 or 0x85, which a Latin-1 reader trims as white
        // space) leaves the value to each reader's guess.
        if !value.is_ascii() {
            return None;
        }
        let v = value.trim();
        if v.is_empty() || v.eq_ignore_ascii_case("identity") {
            Some(Encoding::Identity)
        } else if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") {
            Some(Encoding::Gzip)
        } else if v.eq_ignore_ascii_case("deflate") {
            Some(Encoding::Deflate)
        } else {
            None
        }
    }

    /// Whether a `content-type` header leaves the body's characters as UTF-8 for every reader:
    /// no header, or one without a `charset` parameter, or with `charset=utf-8` (any case,
    /// quoted or not). Readers that honour another charset read other text from the same bytes
    /// (`utf-7` turns `+ACI-` into a quote, so a string to the filter is JSON syntax to them), so
    /// any other charset, a parameter that only starts like one (`charset*`), or several
    /// `content-type` lines (joined with `, `) are refused.
    pub fn charset_is_utf8(content_type: Option<&str>) -> bool {
        let Some(value) = content_type else {
            return true;
        };
        if is_plain_json(value) {
            return true;
        }
        if !value.is_ascii() {
            return false;
        }
        if value.contains(',') {
            return false;
        }
        value.split(';').skip(1).all(|parameter| {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            let name = name.trim();
            let charset_like = name
                .as_bytes()
                .get(..7)
                .is_some_and(|start| start.eq_ignore_ascii_case(b"charset"));
            if !charset_like {
                return true;
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            name.eq_ignore_ascii_case("charset")
                && (value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8"))
        })
    }

    /// Whether some receiver reads the body as a form (`&`-separated fields, not JSON): its
    /// media type, as PHP reads it (cut at the first `;`, `,` or white space, so
    /// `application/x-www-form-urlencoded x` is one), holds `application/x-www-form-urlencoded`
    /// (Fastify's parsers match by substring: `…urlencoded-x`, `…urlencoded+json`), or the
    /// request has no media type at all (Rack reads a POST without one, or with an empty one,
    /// as a form).
    pub fn is_form(content_type: Option<&str>) -> bool {
        const FORM: &[u8] = b"application/x-www-form-urlencoded";
        let Some(value) = content_type else {
            return true;
        };
        if is_plain_json(value) {
            return false;
        }
        let media = value
            .trim_start()
            .split([';', ',', ' ', '\t'])
            .next()
            .unwrap_or_default();
        media.is_empty()
            || media
                .as_bytes()
                .windows(FORM.len())
                .any(|w| w.eq_ignore_ascii_case(FORM))
    }

    /// Whether some receiver reads the body as multipart form data: its media type holds
    /// `multipart/` anywhere, in any case. Django's `MultiPartParser` (Django REST framework's
    /// default) finds the boundary anywhere in the body, mid-line inside a JSON string too, and
    /// skips header lines it cannot read, so a JSON event can carry fields to it.
    pub fn is_multipart(content_type: Option<&str>) -> bool {
        const MULTIPART: &[u8] = b"multipart/";
        content_type.is_some_and(|value| {
            !is_plain_json(value)
                && value
                    .as_bytes()
                    .windows(MULTIPART.len())
                    .any(|w| w.eq_ignore_ascii_case(MULTIPART))
        })
    }

    /// Decompresses `raw`; the result never exceeds `limit` bytes (memory stays bounded even
    /// for a compression bomb).
    pub fn decode(self, raw: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
        match self {
            Encoding::Identity => Ok(raw.to_vec()),
            Encoding::Deflate => {
                let mut out = Vec::new();
                let mut state = Box::<DecompressorOxide>::default();
                let used = inflate(&mut state, raw, true, &mut out, limit)?;
                // miniz_oxide checks the Adler-32 trailer too, but not in fuzzing builds:
                // checking it here keeps the fuzzed path the shipped one.
                let trailer = used.checked_sub(4).and_then(|at| raw.get(at..used));
                if used != raw.len() || trailer != Some(&adler32(&out).to_be_bytes()[..]) {
                    return Err(DecodeError::Corrupt);
                }
                // Some readers take HTTP `deflate` for raw DEFLATE (Go's `compress/flate`, and
                // servers that fall back to it), and some decode JSON as it streams out, so
                // the raw stream need not end well. A zlib stream's first byte also starts a
                // raw stored block whose length check fails at once for compressors' output,
                // so read raw it yields nothing; but one can be built whose raw reading is
                // another event. Refused when the raw reading yields anything but white space
                // (lenient readers skip what comes before the object: a byte-order mark, and
                // Gson's `#`, `//` and `/* */` comments, so no first byte is safe), or white
                // space up to the cap.
                let mut raw_reading = Vec::new();
                let read = inflate(&mut state, raw, false, &mut raw_reading, limit);
                let blank = raw_reading.iter().all(|b| b" \t\r\n".contains(b));
                match blank && read != Err(DecodeError::TooLarge) {
                    true => Ok(out),
                    false => Err(DecodeError::Corrupt),
                }
            }
            Encoding::Gzip => {
                // Several gzip members are one body, as most HTTP servers read it.
                let mut out = Vec::new();
                let mut state = Box::<DecompressorOxide>::default();
                let mut rest = raw;
                for _ in 0..MAX_GZIP_MEMBERS {
                    rest = gunzip_member(&mut state, rest, &mut out, limit)?;
                    if rest.is_empty() {
                        return Ok(out);
                    }
                }
                Err(DecodeError::Corrupt)
            }
        }
    }

    /// Compresses a rewritten body with this encoding (identity hands it back without a copy).
    pub fn encode(self, plain: Vec<u8>) -> Vec<u8> {
        match self {
            Encoding::Identity => plain,
            Encoding::Deflate => compress_to_vec_zlib(&plain, LEVEL),
            Encoding::Gzip => {
                // No name, no time stamp, unknown OS: nothing about the client or the filter.
                let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
                out.extend_from_slice(&compress_to_vec(&plain, LEVEL));
                out.extend_from_slice(&crc32(&plain).to_le_bytes());
                out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
                out
            }
        }
    }
}

/// Decodes one gzip member, appending to `out`; returns the input after it.
fn gunzip_member<'a>(
    state: &mut DecompressorOxide,
    raw: &'a [u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<&'a [u8], DecodeError> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let header = raw.get(..10).ok_or(DecodeError::Corrupt)?;
    let flags = match header {
        [0x1f, 0x8b, 8, flags, ..] if flags & 0xe0 == 0 => *flags,
        _ => return Err(DecodeError::Corrupt),
    };
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = raw.get(at..at + 2).ok_or(DecodeError::Corrupt)?;
        at += 2 + usize::from(u16::from_le_bytes([
            len.first().copied().unwrap_or(0),
            len.get(1).copied().unwrap_or(0),
        ]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let text = raw.get(at..).ok_or(DecodeError::Corrupt)?;
            at += text
                .iter()
                .position(|&b| b == 0)
                .ok_or(DecodeError::Corrupt)?
                + 1;
        }
    }
    if flags & FHCRC != 0 {
        // zlib and Go refuse a member whose header CRC is wrong (Python skips it): so do we, or
        // the filter would judge a body those receivers never read.
        let header = raw.get(..at).ok_or(DecodeError::Corrupt)?;
        let crc16 = raw.get(at..at + 2).ok_or(DecodeError::Corrupt)?;
        if crc16 != &crc32(header).to_le_bytes()[..2] {
            return Err(DecodeError::Corrupt);
        }
        at += 2;
    }
    let data = raw.get(at..).ok_or(DecodeError::Corrupt)?;
    let start = out.len();
    let used = inflate(state, data, false, out, limit)?;
    let trailer = data.get(used..used + 8).ok_or(DecodeError::Corrupt)?;
    let word = |i: usize| {
        trailer
            .get(i..i + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
    };
    let member = out.get(start..).unwrap_or_default();
    if word(0) != Some(crc32(member)) || word(4) != Some(member.len() as u32) {
        return Err(DecodeError::Corrupt);
    }
    data.get(used + 8..).ok_or(DecodeError::Corrupt)
}

/// Inflates one complete stream (zlib-wrapped or raw deflate) from the start of `input`,
/// appending to `out` without letting it pass `limit`; returns the input bytes it used.
/// `state` is reset here: one decompressor serves every member of a body.
fn inflate(
    state: &mut DecompressorOxide,
    input: &[u8],
    zlib: bool,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<usize, DecodeError> {
    // No HAS_MORE_INPUT flag: the whole stream is here, so a truncated one is an error.
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF
        | if zlib {
            inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER | inflate_flags::TINFL_FLAG_COMPUTE_ADLER32
        } else {
            0
        };
    state.init();
    let base = out.len();
    // Room for one byte past what the cap allows: producing it proves the body is too large.
    let max_room = limit.saturating_sub(base).saturating_add(1);
    let mut room = FIRST_ROOM.min(max_room);
    let mut written = 0;
    let mut used = 0;
    loop {
        // The decompressor writes into out[base..] and needs all of it for back-references.
        // Exactly the room asked for: the output never takes more than the cap allows.
        out.reserve_exact((base + room).saturating_sub(out.len()));
        out.resize(base + room, 0);
        let rest = input.get(used..).ok_or(DecodeError::Corrupt)?;
        let target = out.get_mut(base..).ok_or(DecodeError::Corrupt)?;
        let (status, consumed, produced) = decompress(state, rest, target, written, flags);
        used += consumed;
        written += produced;
        match status {
            TINFLStatus::Done if written < max_room => {
                out.truncate(base + written);
                return Ok(used);
            }
            TINFLStatus::HasMoreOutput if room < max_room => {
                room = room.saturating_mul(2).min(max_room)
            }
            // On an error `out` keeps what was inflated before it (a streaming reader saw it).
            TINFLStatus::Done | TINFLStatus::HasMoreOutput => {
                out.truncate(base + written);
                return Err(DecodeError::TooLarge);
            }
            _ => {
                out.truncate(base + written);
                return Err(DecodeError::Corrupt);
            }
        }
    }
}

/// Adler-32, as zlib's trailer carries it.
fn adler32(data: &[u8]) -> u32 {
    // 5552 bytes: the most that can be summed before the sums could overflow a u32.
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

/// CRC-32 (IEEE), as gzip's trailer carries it.
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            #[allow(clippy::indexing_slicing)] // constant evaluation: out of range fails the build
            {
                table[i] = c;
            }
            i += 1;
        }
        table
    };
    !data.iter().fold(!0u32, |c, &b| {
        TABLE.get(usize::from((c as u8) ^ b)).copied().unwrap_or(0) ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_a_form_body_by_its_media_type() {
        for form in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-Urlencoded; charset=utf-8",
            " application/x-www-form-urlencoded ;x=y",
            // PHP cuts the media type at white space or `,` too.
            "application/x-www-form-urlencoded x",
            "application/x-www-form-urlencoded\tjson",
            "application/x-www-form-urlencoded,application/json",
            // Fastify's form parser matches the media type by substring.
            "application/x-www-form-urlencoded-x",
            "application/x-www-form-urlencoded+json",
            "x-application/x-www-form-urlencoded",
            // Rack reads a POST without a media type as a form.
            "",
            "  ",
            "; charset=utf-8",
        ] {
            assert!(Encoding::is_form(Some(form)), "{form:?}");
        }
        assert!(Encoding::is_form(None));
        for other in [
            "application/json",
            "Application/JSON",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/json x-www-form-urlencoded",
        ] {
            assert!(!Encoding::is_form(Some(other)), "{other}");
        }
        // Bytes beyond ASCII in either header leave it to each reader's guess: refused.
        let nbsp = "\u{a0}application/x-www-form-urlencoded";
        assert!(!Encoding::charset_is_utf8(Some(nbsp)));
        assert!(!Encoding::charset_is_utf8(Some("application/json\u{fffd}")));
        assert_eq!(Encoding::from_header(Some("\u{a0}gzip")), None);
        assert_eq!(Encoding::from_header(Some("gzip\u{85}")), None);
    }

    #[test]
    fn reads_the_header() {
        assert_eq!(Encoding::from_header(None), Some(Encoding::Identity));
        assert_eq!(
            Encoding::from_header(Some("identity")),
            Some(Encoding::Identity)
        );
        assert_eq!(Encoding::from_header(Some(" GZIP ")), Some(Encoding::Gzip));
        assert_eq!(Encoding::from_header(Some("x-gzip")), Some(Encoding::Gzip));
        assert_eq!(
            Encoding::from_header(Some("deflate")),
            Some(Encoding::Deflate)
        );
        for other in [
            "br",
            "zstd",
            "compress",
            "gzip, gzip",
            "gzip,br",
            "deflate, gzip",
        ] {
            assert_eq!(Encoding::from_header(Some(other)), None, "{other}");
        }
    }

    /// A body that zlib reads as one text and raw DEFLATE as another. The zlib header's first
    /// byte is also a raw stored block's header, and the lengths are chosen so that each
    /// reading's stored blocks hold bytes the other reading skips or has not reached. Zlib reads
    /// `prefix`, a string holding `raw_rest`, then `zlib_rest`; raw DEFLATE reads `prefix` and
    /// `raw_rest` (which must be valid inside a JSON string).
    fn zlib_and_raw_deflate(prefix: &[u8], raw_rest: &[u8], zlib_rest: &[u8]) -> Vec<u8> {
        // (0x58 * 256 + 0x09) % 31 == 0: a zlib header. Read raw, its bytes start a stored
        // block of length 0x0909 (0x09 0x09, both white space) holding zlib's own lengths;
        // the third byte (0x09) is zlib's one stored block, of length !0x0909.
        let (len1, len2, lenz) = (0x0909usize, 0x7d22usize, !0x0909u16);
        let mut content = prefix.to_vec();
        content.resize(len1 - 2, b' ');
        // Raw: a final stored block of length 0x7d22 (tab, then `"}` and !`"}` as its lengths);
        // zlib: white space, then a string opened with `"}`, and U+0742.
        content.extend_from_slice(b"\t\"}\xdd\x82");
        content.extend_from_slice(raw_rest);
        content.resize(len1 - 2 + 5 + len2, b' ');
        content.push(b'"');
        content.extend_from_slice(zlib_rest);
        content.resize(usize::from(lenz), b' ');
        let mut body = vec![0x58, 0x09, 0x09];
        body.extend_from_slice(&lenz.to_le_bytes());
        body.extend_from_slice(&(!lenz).to_le_bytes());
        body.extend_from_slice(&content);
        body.extend_from_slice(&adler32(&content).to_be_bytes());
        body
    }

    #[test]
    fn refuses_deflate_that_also_reads_as_raw_deflate() {
        let body = zlib_and_raw_deflate(
            br#"{"type":"track","event":"Order Completed","properties":{"note":"#,
            b" 1}}",
            br#"},"context":{"consent":{"categoryPreferences":{"Advertising":true}}}}"#,
        );
        // Zlib readers see a consented event, raw DEFLATE readers one without consent ...
        let read = |text: Vec<u8>| serde_json::from_slice::<serde_json::Value>(&text).unwrap();
        let zlib = read(miniz_oxide::inflate::decompress_to_vec_zlib(&body).unwrap());
        let raw = read(miniz_oxide::inflate::decompress_to_vec(&body).unwrap());
        assert_eq!(
            zlib["context"]["consent"]["categoryPreferences"]["Advertising"],
            true
        );
        assert_eq!(raw["properties"]["note"], 1);
        assert!(raw.get("context").is_none());
        // ... so the body is refused (a cap below its size refuses it first).
        assert_eq!(
            Encoding::Deflate.decode(&body, 1 << 20),
            Err(DecodeError::Corrupt)
        );
        assert_eq!(
            Encoding::Deflate.decode(&body, 1 << 10),
            Err(DecodeError::TooLarge)
        );
        // A raw reading that yields the event and goes on (here: its second block made
        // non-final, so the raw reader goes on into bytes that are no stream) is read by
        // readers that decode JSON as it streams out: refused too.
        let mut streaming = body.clone();
        let second = 7 + 0x0909 - 2;
        assert_eq!(streaming.get(second), Some(&b'\t'));
        streaming[second] = b' ';
        let n = streaming.len();
        let adler = adler32(&streaming[7..n - 4]).to_be_bytes();
        streaming[n - 4..].copy_from_slice(&adler);
        let zlib = read(miniz_oxide::inflate::decompress_to_vec_zlib(&streaming).unwrap());
        assert_eq!(
            zlib["properties"]["note"].as_str().map(|n| n.len() > 100),
            Some(true)
        );
        assert_eq!(
            Encoding::Deflate.decode(&streaming, 1 << 20),
            Err(DecodeError::Corrupt)
        );
        // A raw reading that starts a list of events.
        let start = br#"[{"type":1,"x":""#;
        let body = zlib_and_raw_deflate(start, b"", b"");
        // Read raw: two tabs (the stored block holds zlib's lengths), then `start`.
        assert!(
            miniz_oxide::inflate::decompress_to_vec(&body).is_ok_and(|raw| raw
                .strip_prefix(b"\t\t")
                .is_some_and(|r| r.starts_with(start)))
        );
        assert_eq!(
            Encoding::Deflate.decode(&body, 1 << 20),
            Err(DecodeError::Corrupt)
        );
        // A raw reading that starts with a comment: Gson, reading raw DEFLATE, skips `#` up to
        // the line's end and reads the object after it. The zlib header 08 5b is also a raw
        // stored block of 0x025b bytes, whose content starts at zlib's third length byte.
        let event =
            br#"{"type":"track","context":{"consent":{"categoryPreferences":{"Ads":true}}}}"#;
        let mut content = event.to_vec();
        content.resize(0x23fd, b' ');
        let mut body = vec![0x08, 0x5b, 0x02, 0xa4, 0xfd, 0x23, 0x02, 0xdc];
        body.extend_from_slice(&content);
        body.extend_from_slice(&adler32(&content).to_be_bytes());
        let zlib = read(miniz_oxide::inflate::decompress_to_vec_zlib(&body).unwrap());
        assert_eq!(
            zlib["context"]["consent"]["categoryPreferences"]["Ads"],
            true
        );
        let mut raw = Vec::new();
        let mut state = Box::<DecompressorOxide>::default();
        let _ = inflate(&mut state, &body, false, &mut raw, 1 << 20);
        assert!(raw.starts_with(b"#\x02\xdc{\"type\""), "{raw:?}");
        assert_eq!(
            Encoding::Deflate.decode(&body, 1 << 20),
            Err(DecodeError::Corrupt)
        );
        // An ordinary zlib stream is not a raw one.
        let plain = br#"{"type":"track"}"#.to_vec();
        let packed = Encoding::Deflate.encode(plain.clone());
        assert!(miniz_oxide::inflate::decompress_to_vec(&packed).is_err());
        assert_eq!(Encoding::Deflate.decode(&packed, 1 << 20), Ok(plain));
    }

    #[test]
    fn tells_multipart_anywhere_in_the_media_type() {
        for multipart in [
            "multipart/form-data; boundary=x",
            "Multipart/Mixed",
            "application/json, multipart/form-data",
            "application/json; x=multipart/",
        ] {
            assert!(Encoding::is_multipart(Some(multipart)), "{multipart}");
        }
        for other in [
            None,
            Some("application/json"),
            Some("Application/Json"),
            Some(""),
        ] {
            assert!(!Encoding::is_multipart(other), "{other:?}");
        }
    }

    #[test]
    fn only_utf_8_is_a_charset_every_reader_reads_alike() {
        let ok = |v: Option<&str>| Encoding::charset_is_utf8(v);
        for fine in [
            None,
            Some("application/json"),
            Some("APPLICATION/json"),
            Some("application/json; charset=utf-8"),
            Some("application/json;charset=UTF-8"),
            Some("application/json; charset=\"utf-8\""),
            Some("text/plain; charset=utf8"),
            Some("application/x-www-form-urlencoded"),
            Some("application/json; boundary=x"),
            Some(""),
        ] {
            assert!(ok(fine), "{fine:?}");
        }
        for refused in [
            "application/json; charset=utf-7",
            "application/json; charset=UTF-7",
            "application/json; charset=iso-8859-1",
            "application/json; charset=utf-16",
            "application/json; charset = utf-7",
            "application/json; charset=\"utf-7\"",
            "application/json; charset=utf-8; charset=utf-7",
            "application/json; charset*=utf-7''",
            "application/json; CHARSET=unicode_escape",
            "application/json; charset=",
            "application/json; charset",
            // Two content-type lines, joined by the host.
            "application/json, application/json; charset=utf-7",
        ] {
            assert!(!ok(Some(refused)), "{refused}");
        }
    }

    #[test]
    fn round_trips() {
        let body = br#"{"batch":[{"type":"track"}]}"#.repeat(50);
        for enc in [Encoding::Identity, Encoding::Gzip, Encoding::Deflate] {
            let packed = enc.encode(body.clone());
            assert_eq!(enc.decode(&packed, body.len()).unwrap(), body, "{enc:?}");
            if enc != Encoding::Identity {
                assert!(packed.len() < body.len());
            }
        }
    }

    #[test]
    fn caps_decompressed_size() {
        let bomb = Encoding::Gzip.encode(vec![b' '; 10_000_000]);
        assert!(bomb.len() < 20_000);
        assert_eq!(
            Encoding::Gzip.decode(&bomb, 1_048_576),
            Err(DecodeError::TooLarge)
        );
        let z = Encoding::Deflate.encode(vec![b' '; 2_000]);
        assert_eq!(
            Encoding::Deflate.decode(&z, 1_999),
            Err(DecodeError::TooLarge)
        );
        assert_eq!(
            Encoding::Deflate.decode(&z, 2_000).map(|v| v.len()),
            Ok(2_000)
        );
    }

    #[test]
    fn adler32_matches_the_reference_value() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(b""), 1);
        // Long enough for the sums to wrap: zlib's value for 100,000 bytes of 0xff.
        assert_eq!(adler32(&[0xff; 100_000]), 0x149A_302C);
    }

    #[test]
    fn crc32_matches_the_reference_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn reads_gzip_header_fields_and_several_members() {
        let a = Encoding::Gzip.encode(b"{\"a\":".to_vec());
        let b = Encoding::Gzip.encode(b"1}".to_vec());
        let mut both = a.clone();
        both.extend_from_slice(&b);
        assert_eq!(Encoding::Gzip.decode(&both, 100).unwrap(), b"{\"a\":1}");
        // FEXTRA + FNAME + FCOMMENT + FHCRC, as some clients write them.
        let mut fancy = vec![
            0x1f,
            0x8b,
            8,
            4 | 8 | 16 | 2,
            0,
            0,
            0,
            0,
            0,
            3,
            2,
            0,
            b'x',
            b'y',
        ];
        fancy.extend_from_slice(b"name.json\0comment\0");
        let header_crc = crc32(&fancy).to_le_bytes();
        fancy.extend_from_slice(&header_crc[..2]);
        fancy.extend_from_slice(&a[10..]);
        assert_eq!(Encoding::Gzip.decode(&fancy, 100).unwrap(), b"{\"a\":");
        // A wrong header CRC (a fuzzing finding: flate2, zlib and Go refuse it) is corrupt.
        let mut bad_header_crc = fancy.clone();
        let at = 10 + 2 + 2 + b"name.json\0comment\0".len();
        bad_header_crc[at] ^= 1;
        assert_eq!(
            Encoding::Gzip.decode(&bad_header_crc, 100),
            Err(DecodeError::Corrupt)
        );
        let mut reserved = a.clone();
        reserved[3] = 0x20;
        assert_eq!(
            Encoding::Gzip.decode(&reserved, 100),
            Err(DecodeError::Corrupt)
        );
        let mut bad_crc = a.clone();
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        assert_eq!(
            Encoding::Gzip.decode(&bad_crc, 100),
            Err(DecodeError::Corrupt)
        );
    }

    #[test]
    fn bounds_the_number_of_gzip_members() {
        let member = Encoding::Gzip.encode(b"x".to_vec());
        let body = member.repeat(MAX_GZIP_MEMBERS);
        assert_eq!(
            Encoding::Gzip.decode(&body, 1 << 20).map(|v| v.len()),
            Ok(MAX_GZIP_MEMBERS)
        );
        let many = member.repeat(MAX_GZIP_MEMBERS + 1);
        assert_eq!(
            Encoding::Gzip.decode(&many, 1 << 20),
            Err(DecodeError::Corrupt)
        );
    }

    #[test]
    fn decoding_work_is_linear_in_the_body() {
        // 40,000 empty members (~800 KB): refused after the first few, not after a quadratic
        // amount of work. Counted in decoded bytes handled, not in time.
        let empty = Encoding::Gzip.encode(Vec::new());
        let body = empty.repeat(40_000);
        let mut out = Vec::new();
        let mut state = Box::<DecompressorOxide>::default();
        let mut rest = &body[..];
        let mut members = 0;
        while !rest.is_empty() && members < 1000 {
            rest = gunzip_member(&mut state, rest, &mut out, 1 << 20).unwrap();
            members += 1;
            // Room reserved per member is bounded, whatever is left of the body.
            assert!(out.capacity() <= FIRST_ROOM * 2, "{}", out.capacity());
        }
        assert_eq!(
            Encoding::Gzip.decode(&body, 1 << 20),
            Err(DecodeError::Corrupt)
        );
    }

    #[test]
    fn rejects_corrupt_truncated_and_trailing_data() {
        let body = br#"{"type":"track","event":"x"}"#.repeat(20);
        for enc in [Encoding::Gzip, Encoding::Deflate] {
            let packed = enc.encode(body.clone());
            let truncated = &packed[..packed.len() - 5];
            assert_eq!(
                enc.decode(truncated, 1 << 20),
                Err(DecodeError::Corrupt),
                "{enc:?} truncated"
            );
            let mut trailing = packed.clone();
            trailing.extend_from_slice(b"junk");
            assert_eq!(
                enc.decode(&trailing, 1 << 20),
                Err(DecodeError::Corrupt),
                "{enc:?} trailing"
            );
            assert_eq!(
                enc.decode(&body, 1 << 20),
                Err(DecodeError::Corrupt),
                "{enc:?} plain"
            );
            assert_eq!(
                enc.decode(b"", 1 << 20),
                Err(DecodeError::Corrupt),
                "{enc:?} empty"
            );
        }
    }
}
