//! The seam between the request lifecycle and the proxy it runs in: what the filter asks of its
//! host, and nothing else. The proxy-wasm module and the Envoy dynamic module each implement it
//! in `filter/`; the native tests implement it with a fake.

use std::borrow::Cow;
use std::ops::Range;

use crate::config::Config;
use crate::decision::Reason;
use crate::metrics::Counter;
use crate::policy::RouteSetting;
use crate::target::{is_canonical_authority, split_authority};

/// A host operation failed (the host's own status code, for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

/// Log levels, as both hosts number them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

/// The request headers the filter uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestHeaders {
    /// Several `content-encoding` lines are joined with ", " (and so refused as stacked codings).
    pub content_encoding: Option<String>,
    /// Several `content-type` lines are joined with ", " (and so refused).
    pub content_type: Option<String>,
    pub content_length: Option<String>,
    pub path: String,
    pub authority: String,
    /// A `sec-gpc` header says `1` (Global Privacy Control: do not sell or share); see
    /// [`gpc_signal`].
    pub gpc: bool,
    /// The hosts that headers name for the request beside its authority, which receivers behind
    /// a proxy route by: `x-forwarded-host`, `x-original-host`, `x-forwarded-server` (Ktor's
    /// `XForwardedHeaders` takes it when there is no `x-forwarded-host`), and `forwarded`'s
    /// `host=`.
    pub named_hosts: Vec<String>,
    /// The paths that headers name for the request beside `:path`: `x-original-url` and
    /// `x-rewrite-url` (IIS, Symfony and Zend route by them).
    pub named_paths: Vec<String>,
    /// `:method` is `OPTIONS`.
    pub options: bool,
    /// An `access-control-request-method` line: with `OPTIONS`, a CORS preflight.
    pub cors_request_method: bool,
    /// An `upgrade` line or a `:protocol` pseudo-header (HTTP/2's extended CONNECT, which Envoy
    /// hands an HTTP/1.1 upstream as a GET with `upgrade`): the request asks to become another
    /// protocol's stream.
    pub upgrade: bool,
}

/// Whether one `sec-gpc` header line says `1`, as any receiver may read it: a line is read as
/// the list it joins (`1, 0` is two lines, `1` and `0`), and an element that is `1` once what
/// some reader trims around it is gone counts. Readers trim more than HTTP's spaces and tabs
/// (Envoy passes those through from HTTP/2): Java's `trim` every byte up to 0x20, Python's
/// `strip` and JavaScript's `trim` Latin-1's 0x85 and 0xA0 and, on values decoded as UTF-8,
/// every Unicode space. So every control byte and every byte beyond ASCII is trimmed here.
pub fn gpc_signal(value: &[u8]) -> bool {
    let trimmable = |b: &u8| *b <= 0x20 || *b >= 0x7f;
    value.split(|b| *b == b',').any(|element| {
        let start = element.iter().position(|b| !trimmable(b));
        let end = element.iter().rposition(|b| !trimmable(b));
        match (start, end) {
            (Some(start), Some(end)) => element.get(start..=end).is_some_and(reads_as_one),
            _ => false,
        }
    })
}

/// Whether a reader that compares the value with the number 1 reads it as 1: PHP's loose `==`
/// (`"01"`, `"1.0"`, `"+1"`, `"1e0"`, `"1."`), JavaScript's `Number` and `== 1` (also `"0x1"`,
/// `"0b1"`, `"0o1"`, `".1e1"`) and `parseInt`/`parseFloat`, which read a number at the start
/// and ignore the rest (`"1abc"`, `"1;q=1"`, `"1 1"`, `"1.9"`, `"10e-1x"`); Python's `int` and
/// `float`, Go's `ParseInt` (base 0) and Ruby's `to_i` take `_` between digits (`"0_1"`,
/// `"0x_1"`, `"0.1_0e1"`), Go's `ParseFloat` hexadecimal floats (`"0x.8p1"`). Counting more
/// values withdraws consent more often, never less.
fn reads_as_one(value: &[u8]) -> bool {
    // Every `_` dropped: more than those readers take, which only counts more values.
    let plain: Vec<u8>;
    let value = match value.contains(&b'_') {
        true => {
            plain = value.iter().copied().filter(|b| *b != b'_').collect();
            if reads_as_one_as_written(value) {
                return true;
            }
            &plain[..]
        }
        false => value,
    };
    reads_as_one_as_written(value)
}

fn reads_as_one_as_written(value: &[u8]) -> bool {
    let value = value.strip_prefix(b"+").unwrap_or(value);
    let digits = |text: &[u8], radix: u32| -> usize {
        text.iter()
            .take_while(|b| char::from(**b).is_digit(radix))
            .count()
    };
    // `0x`, `0b`, `0o` and their digits (Number; parseInt reads `0x`).
    if let [b'0', radix @ (b'x' | b'X' | b'b' | b'B' | b'o' | b'O'), rest @ ..] = value {
        let radix = match radix.to_ascii_lowercase() {
            b'x' => 16,
            b'b' => 2,
            _ => 8,
        };
        let n = digits(rest, radix);
        return (n > 0 && sole_one(rest.get(..n).unwrap_or_default()) == Some(Some(n - 1)))
            || (radix == 16 && hex_float_is_one(rest));
    }
    // The integer at the start (parseInt).
    let int_len = digits(value, 10);
    let int = value.get(..int_len).unwrap_or_default();
    if int_len > 0 && sole_one(int) == Some(Some(int_len - 1)) {
        return true;
    }
    // The decimal number at the start, `int.frac` then `e±exp` (parseFloat; PHP and Number
    // when it is the whole value), as a double: 1 when within half a unit in the last place of
    // 1 (`0.99999999999999999999` is 1 to them), which is taken here as within 1e-15, wider
    // (counting more values withdraws consent more often, never less). Read as `0.S × 10^E`:
    // S's digits without the leading zeros. (Rust's float parser would add 19 KB to the wasm
    // module.)
    let mut rest = value.get(int_len..).unwrap_or_default();
    let mut frac: &[u8] = &[];
    if let [b'.', more @ ..] = rest {
        let n = digits(more, 10);
        frac = more.get(..n).unwrap_or_default();
        rest = more.get(n..).unwrap_or_default();
    }
    let all = || int.iter().chain(frac.iter()).copied();
    let Some(first) = all().position(|d| d != b'0') else {
        return false;
    };
    let mut exponent = int_len as i64 - first as i64;
    if let [b'e' | b'E', more @ ..] = rest {
        exponent = exponent.saturating_add(signed_exponent(more).0);
    }
    // Fifteen digits after the first, zeros past the end.
    let next15 = || {
        all()
            .skip(first + 1)
            .chain(std::iter::repeat(b'0'))
            .take(15)
    };
    let lead = all().nth(first);
    (exponent == 1 && lead == Some(b'1') && next15().all(|d| d == b'0'))
        || (exponent == 0 && lead == Some(b'9') && next15().take(14).all(|d| d == b'9') && {
            // 0.999999999999999…: fifteen nines, the fifteenth within S.
            all().skip(first).take(15).count() == 15
        })
}

/// Of digits: `Some(None)` when all are zeros (or there are none), `Some(Some(i))` when the only
/// one that is not is a 1 at `i`, `None` otherwise.
/// Whether the hexadecimal float after `0x` (Go's `ParseFloat`: digits, an optional `.` and
/// digits, then `p` and a decimal power of two) rounds to 1 as a double: taken as any within
/// 2⁻⁵⁰ of 1, wider than a double's half unit (counting more values withdraws consent more
/// often, never less). Its significant digits are summed as a double and scaled by their power
/// of two.
fn hex_float_is_one(text: &[u8]) -> bool {
    let hex = |t: &[u8]| t.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let int_len = hex(text);
    let (int, mut rest) = text.split_at(int_len);
    let mut frac: &[u8] = &[];
    if let [b'.', more @ ..] = rest {
        let n = hex(more);
        (frac, rest) = more.split_at(n);
    }
    let [b'p' | b'P', more @ ..] = rest else {
        return false;
    };
    let (p, exp_digits) = signed_exponent(more);
    if exp_digits == 0 {
        return false;
    }
    let all: Vec<u8> = int.iter().chain(frac).copied().collect();
    let Some(first) = all.iter().position(|&d| d != b'0') else {
        return false;
    };
    // Sixteen significant digits (64 bits) are more than a double holds; the rest only round.
    let digit = |d: u8| f64::from(char::from(d).to_digit(16).unwrap_or(0));
    let used = all.get(first..).unwrap_or_default().iter().take(16);
    let count = used.len() as i64;
    let value = used.fold(0f64, |v, &d| v * 16.0 + digit(d));
    // value × 16^(place of the last digit used) × 2^p, the power split so that neither half
    // overflows where the whole does not.
    let place = int_len as i64 - first as i64 - count;
    let power = p.saturating_add(place.saturating_mul(4)).clamp(-4000, 4000) as i32;
    let x = value * 2f64.powi(power / 2) * 2f64.powi(power - power / 2);
    (x - 1.0).abs() <= 2f64.powi(-50)
}

/// The exponent at the start of `text` (an optional sign, then decimal digits, saturating), and
/// how many digits it has.
fn signed_exponent(text: &[u8]) -> (i64, usize) {
    let (negative, digits) = match text {
        [b'-', m @ ..] => (true, m),
        [b'+', m @ ..] => (false, m),
        m => (false, m),
    };
    let mut e: i64 = 0;
    let mut n = 0;
    for d in digits.iter().take_while(|b| b.is_ascii_digit()) {
        e = e.saturating_mul(10).saturating_add(i64::from(d - b'0'));
        n += 1;
    }
    (if negative { -e } else { e }, n)
}

fn sole_one(digits: &[u8]) -> Option<Option<usize>> {
    let mut found = None;
    for (i, d) in digits.iter().enumerate() {
        match (d, found) {
            (b'0', _) => {}
            (b'1', None) => found = Some(i),
            _ => return None,
        }
    }
    Some(found)
}

impl RequestHeaders {
    /// Builds the struct from header lines (names lower-case, as both hosts hand them over).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Self {
        let mut h = RequestHeaders::default();
        for (name, value) in pairs {
            match name {
                b"content-length" => h.content_length = Some(lossy(value)),
                b":path" => h.path = lossy(value),
                b":authority" => h.authority = lossy(value),
                name => h.add_line(name, value),
            }
        }
        h
    }

    /// Takes in one line of the headers read line by line: `sec-gpc`, `content-encoding` and
    /// `content-type` (others are ignored). Their names are read as CGI, WSGI, PHP and Rack read
    /// them, with any character but a letter or digit as `-`: `Sec-GPC` and `Sec_GPC` are both
    /// `HTTP_SEC_GPC` to them, PHP turns the `.` of a server's `HTTP_SEC.GPC` into `_`, and
    /// lighttpd turns every other character into `_` (`Sec~GPC`). Envoy forwards such names.
    /// A browser's CORS preflight: `OPTIONS` with `Access-Control-Request-Method`. Without a
    /// body it carries no event, and a browser sends no event without it where one is needed.
    pub fn is_cors_preflight(&self) -> bool {
        self.options && self.cors_request_method
    }

    pub fn add_line(&mut self, name: &[u8], value: &[u8]) {
        let append = |to: &mut Option<String>| match to {
            Some(all) => {
                all.push_str(", ");
                all.push_str(&String::from_utf8_lossy(value));
            }
            None => *to = Some(lossy(value)),
        };
        if name == b":method" {
            self.options = value == b"OPTIONS";
        } else if cgi_name_is(name, b"access-control-request-method") {
            self.cors_request_method = true;
        } else if name == b":protocol" || cgi_name_is(name, b"upgrade") {
            self.upgrade = true;
        } else if cgi_name_is(name, b"sec-gpc") {
            // Any line saying `1` counts: a reader of either line must not see a preference.
            self.gpc |= gpc_signal(value);
        } else if cgi_name_is(name, b"content-encoding") {
            append(&mut self.content_encoding);
        } else if cgi_name_is(name, b"content-type") {
            append(&mut self.content_type);
        } else if cgi_name_is(name, b"x-forwarded-host")
            || cgi_name_is(name, b"x-original-host")
            || cgi_name_is(name, b"x-forwarded-server")
        {
            // A list: Express takes the first, Werkzeug's ProxyFix the last.
            self.named_hosts
                .extend(value.split(|b| *b == b',').map(|h| lossy(trimmed(h))));
        } else if cgi_name_is(name, b"forwarded") {
            // `for=…;host=…;proto=…, …` (RFC 7239), but Spring, Reactor Netty and Vert.x find
            // `host=` anywhere in the value (`xhost=`, inside a quoted `for`), and take what
            // follows up to `;`, `,` or a quote: every such `host=` counts.
            // A value longer than any authority, or more of them than any proxy chain sends,
            // is kept as an empty name (refused) and ends the scan: each is read at most
            // `LONGEST` bytes far, so a hostile header costs linear time and memory.
            const LONGEST: usize = 300;
            const MOST: usize = 64;
            let lower = value.to_ascii_lowercase();
            let mut at = 0;
            while let Some(found) = lower
                .get(at..)
                .and_then(|rest| rest.windows(5).position(|w| w == b"host="))
            {
                let start = at + found + 5;
                let rest = value.get(start..).unwrap_or_default();
                let rest = rest.strip_prefix(b"\"").unwrap_or(rest);
                let end = rest
                    .iter()
                    .take(LONGEST)
                    .position(|b| matches!(b, b';' | b',' | b'"'))
                    .or((rest.len() < LONGEST).then_some(rest.len()));
                match end {
                    Some(end) if self.named_hosts.len() < MOST => self
                        .named_hosts
                        .push(lossy(trimmed(rest.get(..end).unwrap_or_default()))),
                    _ => {
                        self.named_hosts.push(String::new());
                        break;
                    }
                }
                at = start;
            }
        } else if cgi_name_is(name, b"x-original-url") || cgi_name_is(name, b"x-rewrite-url") {
            self.named_paths.push(lossy(value));
        }
    }

    /// Whether a header names another host or path for the request than its own (see
    /// `named_hosts` and `named_paths`): a receiver that routes by it may take the request
    /// for another route's, which Envoy did not choose.
    pub fn names_another_target(&self) -> bool {
        // A named host readers split otherwise (`ads.example:1@api.example`: Express reads
        // `ads.example`) is another target too.
        let another_host = || {
            let host = split_authority(&self.authority).0;
            self.named_hosts
                .iter()
                .any(|h| !is_canonical_authority(h) || split_authority(h).0 != host)
        };
        (!self.named_hosts.is_empty() && another_host())
            || self.named_paths.iter().any(|p| *p != self.path)
    }
}

/// `value` without the spaces and tabs around it.
fn trimmed(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|b| !matches!(b, b' ' | b'\t'));
    let end = value.iter().rposition(|b| !matches!(b, b' ' | b'\t'));
    match (start, end) {
        (Some(start), Some(end)) => value.get(start..=end).unwrap_or_default(),
        _ => &[],
    }
}

/// Whether a header name (lower-case) is `want` to a reader that takes any character but a
/// letter or digit for `-`.
fn cgi_name_is(name: &[u8], want: &[u8]) -> bool {
    name.len() == want.len()
        && name
            .iter()
            .zip(want)
            .all(|(n, w)| n == w || (*w == b'-' && !n.is_ascii_alphanumeric()))
}

/// A header value as the filter keeps it.
pub fn lossy(value: &[u8]) -> String {
    // (Valid UTF-8, nearly always, is checked faster by `from_utf8` than by the lossy reading.)
    match std::str::from_utf8(value) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(value).into_owned(),
    }
}

/// A counter to add to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric<'a> {
    Counter(Counter),
    Dropped(Reason),
    /// Events denied for not consenting to this category (a name from the configuration).
    DeniedCategory(&'a str),
}

/// What the filter decided about one request, for the access log and auditors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `allow`, `deny`, `filter`, `would_deny`, `would_filter`, `ungated` or `exempt`.
    pub decision: &'static str,
    pub reason: Option<Reason>,
    /// The route's required categories, comma-separated.
    pub required: String,
    /// The required categories some event had not consented to, comma-separated.
    pub denied: String,
    pub events: u32,
    pub dropped: u32,
    /// The route's destination (`destination`), or "" when it names none.
    pub destination: String,
}

impl Record {
    /// The plain-text form: `decision=deny reason=… required=… denied=… events=1 dropped=1`,
    /// then ` destination=…` on routes that name a destination.
    pub fn text(&self) -> String {
        let mut text = format!(
            "decision={} reason={} required={} denied={} events={} dropped={}",
            self.decision,
            self.reason.map_or("-", Reason::code),
            or_dash(&self.required),
            or_dash(&self.denied),
            self.events,
            self.dropped
        );
        if !self.destination.is_empty() {
            text.push_str(" destination=");
            text.push_str(&self.destination);
        }
        text
    }

    /// Writes the same text as [`Record::text`] at the end of `out`, and says where each field's
    /// value is in it: decision, reason, required, denied, events, dropped, destination (an empty
    /// range when the route names no destination). One buffer for the whole record: the dynamic
    /// module hands Envoy the fields as slices of it, without `fmt`.
    pub fn write_text(&self, out: &mut String) -> [Range<usize>; 7] {
        out.reserve(96 + self.required.len() + self.denied.len() + self.destination.len());
        let decision = push_field(out, "decision=", self.decision);
        let reason = push_field(out, " reason=", self.reason.map_or("-", Reason::code));
        let required = push_field(out, " required=", or_dash(&self.required));
        let denied = push_field(out, " denied=", or_dash(&self.denied));
        out.push_str(" events=");
        let events = push_decimal(out, self.events);
        out.push_str(" dropped=");
        let dropped = push_decimal(out, self.dropped);
        let destination = if self.destination.is_empty() {
            out.len()..out.len()
        } else {
            push_field(out, " destination=", &self.destination)
        };
        [
            decision,
            reason,
            required,
            denied,
            events,
            dropped,
            destination,
        ]
    }
}

/// Appends `label` then `value`; returns where `value` is.
fn push_field(out: &mut String, label: &str, value: &str) -> Range<usize> {
    out.push_str(label);
    let start = out.len();
    out.push_str(value);
    start..out.len()
}

/// Appends `n` in decimal (without going through `fmt`); returns where it is.
fn push_decimal(out: &mut String, n: u32) -> Range<usize> {
    let start = out.len();
    let mut divisor = 1_000_000_000;
    while divisor > 1 && n < divisor {
        divisor /= 10;
    }
    while divisor > 0 {
        out.push(char::from(b'0' + ((n / divisor) % 10) as u8));
        divisor /= 10;
    }
    start..out.len()
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// What the request lifecycle needs from the proxy, for one request.
pub trait Host {
    /// What to check when every request with a body ends before any of it reached the filter
    /// (appended to that warning): the wasm filter needs `allow_on_headers_stop_iteration`.
    const BODY_NEVER_ARRIVES_HINT: &'static str = "";
    /// The request headers (read once per request).
    fn request_headers(&mut self) -> Result<RequestHeaders, HostError>;
    /// The route's name, or "" when it has none.
    fn route_name(&mut self) -> String;
    /// What the route itself says about consent (route metadata, or per-route configuration).
    /// `Err` names what is wrong with it.
    fn route_setting(&mut self, config: &Config) -> Result<RouteSetting, String>;
    /// The whole request body buffered so far: `size` bytes, as the last body callback said.
    fn request_body(&mut self, size: usize) -> Result<Cow<'_, [u8]>, HostError>;
    /// Replaces the buffered request body (and fixes `content-length`).
    fn replace_request_body(&mut self, body: &[u8]) -> Result<(), HostError>;
    /// Answers the request locally; the upstream sees nothing.
    fn send_reply(
        &mut self,
        status: u16,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HostError>;
    fn set_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Removes every line of a response header (none is fine).
    fn remove_response_header(&mut self, name: &str) -> Result<(), HostError>;
    /// Removes every line of a response trailer (none is fine).
    fn remove_response_trailer(&mut self, name: &str) -> Result<(), HostError>;
    fn add(&mut self, metric: Metric<'_>, n: u64);
    /// Leaves the decision record where the access log can read it.
    fn record(&mut self, record: &Record) -> Result<(), HostError>;
    fn log(&mut self, level: Level, message: &str);
    /// Whether a line at `level` would be printed (lets the filter skip building it).
    fn log_enabled(&mut self, level: Level) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpc_line_says_1_as_every_reader_reads_it() {
        for yes in ["1", " 1", "1 ", "\t1\t", "1, 0", "0,1", "1,1"] {
            assert!(gpc_signal(yes.as_bytes()), "{yes:?}");
        }
        // What Java's `trim`, Python's `strip` (Latin-1 or UTF-8) or JavaScript's `trim` take off.
        for yes in [
            &b"\xa01"[..],
            b"1\x85",
            b"\x0b1\x1f",
            b"\x001",
            b"\xc2\xa01",
            b"\xe2\x80\x831\xe3\x80\x80",
            b"\xef\xbb\xbf1",
            b"0,\xa01",
        ] {
            assert!(gpc_signal(yes), "{yes:?}");
        }
        // Numbers a loose comparison (PHP's `==`, JavaScript's `== 1`, `Number`, `parseInt`,
        // `parseFloat`) reads as 1.
        for yes in [
            "01",
            "1.0",
            "+1",
            "1e0",
            "1.",
            ".1e1",
            "10e-1",
            "0x1",
            "0X01",
            "0b1",
            "0o1",
            "1abc",
            "1;q=1",
            "1 1",
            "1.9",
            "1e1",
            "1\u{a0}1",
            "001,0",
            // Rounded to the nearest double, as they read it.
            "0.99999999999999999999",
            "0.10000000000000000001e1",
            "9.9999999999999999e-1",
            "100000000000000000001e-20",
        ] {
            assert!(gpc_signal(yes.as_bytes()), "{yes:?}");
        }
        for no in [
            "",
            "0",
            "true",
            "\"1\"",
            "yes",
            "\u{a0}",
            "10",
            "-1",
            "2",
            "0.1",
            "0x10",
            "e1",
            "0.999",
            "0.9999999999999",
            "2.0",
            ".",
            "+",
            "0x",
            "x1",
            "0x.8p2",
            "0x.8",
            "0x3p0",
            "0x.fffp0",
            "_",
            "2_0e-1x",
        ] {
            assert!(!gpc_signal(no.as_bytes()), "{no:?}");
        }
        // Digits with `_` between them (Python's `int`/`float`, Go's `ParseInt` base 0, Ruby's
        // `to_i`) and hexadecimal floats (Go's `ParseFloat`).
        for yes in [
            "0_1",
            "+0_1",
            "00_1",
            "0_0_1",
            "0_1.0",
            "0_1e0",
            "0.1_0e1",
            "0x_1",
            "0o_1",
            "0b_1",
            "1_0e-1",
            "0x.8p1",
            "0x.08p5",
            "0x2p-1",
            "0x10p-4",
            "0X1P+0",
            "0x0.4p2",
            "0x_.8p1",
            // Rounded to 1 as a double (Go's ParseFloat, Python's float.fromhex).
            "0x.fffffffffffffffp0",
            "0x0.fffffffffffffffp0",
            "0x1fffffffffffffffp-61",
            // Within 2⁻⁵⁰ of 1: wider than rounding, on the side of counting.
            "0x1.0000000000001p0",
        ] {
            assert!(gpc_signal(yes.as_bytes()), "{yes:?}");
        }
        // The wasm build reads header values through `from_utf8_lossy`: the same answer.
        let h = RequestHeaders::from_pairs([(&b"sec-gpc"[..], &b"\xa01"[..])]);
        assert!(h.gpc);
        let h = RequestHeaders::from_pairs([(&b"sec-gpc"[..], &b" 1"[..])]);
        assert!(h.gpc);
    }

    #[test]
    fn a_hostile_forwarded_header_costs_linear_time_and_memory() {
        let with = |value: String| {
            let mut h = RequestHeaders {
                authority: "api.example.com".into(),
                path: "/v1/track".into(),
                ..RequestHeaders::default()
            };
            h.add_line(b"forwarded", value.as_bytes());
            h
        };
        // 60 KB of `host=` without a separator: each value runs to the end.
        let h = with("host=".repeat(12_000));
        assert!(h.named_hosts.len() <= 1, "{}", h.named_hosts.len());
        assert!(h.names_another_target());
        // Thousands of short ones: the first 64 are read, then it is refused.
        let h = with("host=api.example.com;".repeat(3_000));
        assert_eq!(h.named_hosts.len(), 65);
        assert!(h.names_another_target());
        // A few, the request's own host: it passes.
        let h = with("for=a;host=api.example.com, for=b;host=\"API.example.com\"".into());
        assert!(!h.names_another_target(), "{:?}", h.named_hosts);
    }

    #[test]
    fn header_names_are_read_as_cgi_and_php_read_them() {
        // CGI, WSGI, PHP and Rack: `Sec_GPC` is `HTTP_SEC_GPC`, as `Sec-GPC` is.
        let h = RequestHeaders::from_pairs([
            (&b"sec-gpc"[..], &b"0"[..]),
            (&b"sec_gpc"[..], &b"1"[..]),
            (
                &b"content_type"[..],
                &b"application/x-www-form-urlencoded"[..],
            ),
            (&b"content-type"[..], &b"application/json"[..]),
            (&b"content_encoding"[..], &b"gzip"[..]),
        ]);
        assert!(h.gpc);
        assert_eq!(
            h.content_type.as_deref(),
            Some("application/x-www-form-urlencoded, application/json")
        );
        assert_eq!(h.content_encoding.as_deref(), Some("gzip"));
        // PHP turns the `.` of `HTTP_SEC.GPC` into `_`; lighttpd every character but a letter
        // or digit.
        for name in ["sec.gpc", "sec~gpc", "sec+gpc", "sec'gpc", "sec|gpc"] {
            let h = RequestHeaders::from_pairs([(name.as_bytes(), &b"1"[..])]);
            assert!(h.gpc, "{name}");
        }
        // Only in place of `-`: other names are other headers.
        let h = RequestHeaders::from_pairs([
            (&b"secgpc"[..], &b"1"[..]),
            (&b"sec0gpc"[..], &b"1"[..]),
            (&b"sec_gpc_"[..], &b"1"[..]),
            (&b"sec-gp_"[..], &b"1"[..]),
            (&b"x-sec-gpc"[..], &b"1"[..]),
            (&b"content-types"[..], &b"text/plain"[..]),
        ]);
        assert!(!h.gpc);
        assert_eq!(h.content_type, None);
    }

    #[test]
    fn write_text_says_where_each_value_is() {
        let mut record = Record {
            decision: "deny",
            reason: Some(Reason::FilteredByEndUserConsent),
            required: "Advertising,Analytics".into(),
            denied: String::new(),
            events: 12,
            dropped: 0,
            destination: String::new(),
        };
        let mut out = String::from("prefix ");
        let at = record.write_text(&mut out);
        let text = record.text();
        assert_eq!(
            text,
            "decision=deny reason=FILTERED_BY_END_USER_CONSENT required=Advertising,Analytics denied=- events=12 dropped=0"
        );
        assert_eq!(&out["prefix ".len()..], text);
        let values: Vec<&str> = at.iter().map(|r| &out[r.clone()]).collect();
        assert_eq!(
            values,
            [
                "deny",
                "FILTERED_BY_END_USER_CONSENT",
                "Advertising,Analytics",
                "-",
                "12",
                "0",
                ""
            ]
        );
        record.destination = "Google Ads".into();
        record.events = u32::MAX;
        let mut out = String::new();
        let at = record.write_text(&mut out);
        assert_eq!(out, record.text());
        assert!(out.ends_with(" events=4294967295 dropped=0 destination=Google Ads"));
        assert_eq!(&out[at[4].clone()], "4294967295");
        assert_eq!(&out[at[6].clone()], "Google Ads");
    }

    #[test]
    fn write_text_is_text() {
        let reasons = [
            None,
            Some(Reason::MissingConsent),
            Some(Reason::InternalError),
        ];
        for (i, reason) in reasons.into_iter().enumerate() {
            for n in [0u32, 1, 9, 10, 99, 100, 65_535, 1_000_000_000, u32::MAX] {
                let record = Record {
                    decision: ["allow", "filter", "would_deny"][i],
                    reason,
                    required: ["", "A", "A,B"][i].into(),
                    denied: ["", "", "B"][i].into(),
                    events: n,
                    dropped: n / 3,
                    destination: ["", "D", "Google Ads"][i].into(),
                };
                let mut out = String::new();
                record.write_text(&mut out);
                assert_eq!(out, record.text());
            }
        }
    }
}
