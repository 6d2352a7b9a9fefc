//! The request target as destinations may read it: the host without case, port or trailing dot,
//! and the path in each form a server might give it. `routes` rules and the endpoint's Segment
//! call are matched against every reading, so that no spelling of a path slips past a rule that
//! its destination would apply.

use crate::event::{folds_to, Call};

/// The host of an authority (`user@Host.Example.:443` → `host.example`) and its port, if any.
pub fn split_authority(authority: &str) -> (String, Option<&str>) {
    let (host, port) = host_and_port(authority);
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (ip_address(&host).unwrap_or(host), port)
}

/// The host of an authority as written (userinfo dropped) and its port, if any.
fn host_and_port(authority: &str) -> (&str, Option<&str>) {
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match hostport.rsplit_once(':') {
        // An empty port is no port (RFC 3986): `host:` is `host`.
        Some((h, "")) if !h.contains(':') || h.ends_with(']') => (h, None),
        // `[::1]:80` has a port; `[::1]` and `::1` do not.
        Some((h, p))
            if !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']')) =>
        {
            (h, Some(p))
        }
        _ => (hostport, None),
    }
}

/// One spelling for an IP address that a host names in any form a connecting client reads as
/// that address: `127.1`, `0x7f.0.0.1`, `0177.0.0.1` and `2130706433` are `127.0.0.1` to
/// `inet_aton` (glibc's `getaddrinfo`, and so curl, Python and Node) and to URL parsers;
/// `[::ffff:127.0.0.1]` reaches it over a dual-stack socket; `[2001:db8::1]` has several
/// spellings. A rule naming the address matches each of them.
fn ip_address(host: &str) -> Option<String> {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let groups = ipv6_groups(v6)?;
        // `::ffff:a.b.c.d`, IPv4-mapped: the IPv4 address itself.
        if groups[..6] == [0, 0, 0, 0, 0, 0xffff] {
            return Some(dotted((u32::from(groups[6]) << 16) | u32::from(groups[7])));
        }
        return Some(format!("[{}]", rfc5952(&groups)));
    }
    ipv4_number(host).map(dotted)
}

/// The eight groups of an IPv6 address: groups of one to four hex digits, one `::` standing for
/// the groups left out, and optionally an IPv4 address for the last two.
fn ipv6_groups(text: &str) -> Option<[u16; 8]> {
    let groups = |part: &str| -> Option<Vec<u16>> {
        let mut out = Vec::new();
        if part.is_empty() {
            return Some(out);
        }
        let pieces: Vec<&str> = part.split(':').collect();
        for (i, piece) in pieces.iter().enumerate() {
            if i + 1 == pieces.len() && piece.contains('.') {
                let v4 = ipv4_number(piece)?;
                out.extend([(v4 >> 16) as u16, v4 as u16]);
            } else if (1..=4).contains(&piece.len()) {
                out.push(u16::try_from(digits(piece, 16)?).ok()?);
            } else {
                return None;
            }
        }
        Some(out)
    };
    let (head, tail) = match find_pair(text, b"::") {
        Some(i) => {
            let (head, tail) = (text.get(..i)?, text.get(i + 2..)?);
            if find_pair(tail, b"::").is_some() {
                return None;
            }
            (groups(head)?, Some(groups(tail)?))
        }
        None => (groups(text)?, None),
    };
    let given = head.len() + tail.as_ref().map_or(0, Vec::len);
    if given > 8 || (tail.is_none() && given != 8) {
        return None;
    }
    let mut out = [0u16; 8];
    for (slot, g) in out.iter_mut().zip(&head) {
        *slot = *g;
    }
    if let Some(tail) = tail {
        for (slot, g) in out.iter_mut().skip(8 - tail.len()).zip(&tail) {
            *slot = *g;
        }
    }
    Some(out)
}

/// The address `inet_aton` reads in `host`: one to four parts, each decimal, octal (leading `0`)
/// or hex (`0x`), the last filling the bytes the others leave.
fn ipv4_number(host: &str) -> Option<u32> {
    // A name's last label starts with a letter (most hosts end here).
    if !host
        .rsplit('.')
        .next()?
        .starts_with(|c: char| c.is_ascii_digit())
    {
        return None;
    }
    let count = host.split('.').count();
    if count > 4 {
        return None;
    }
    let mut value: u64 = 0;
    for (i, part) in host.split('.').enumerate() {
        let n = match part.strip_prefix("0x") {
            // `0x` alone is 0 to inet_aton.
            Some("") => 0,
            Some(hex) => digits(hex, 16)?,
            None if part.len() > 1 && part.starts_with('0') => digits(part, 8)?,
            None => digits(part, 10)?,
        };
        // The last part fills what the others leave.
        let last = i + 1 == count;
        let room = if last { 8 * (4 - i as u32) } else { 8 };
        if n >= 1u64 << room {
            return None;
        }
        value = (value << room) | n;
    }
    u32::try_from(value).ok()
}

/// The number `text` spells in `radix`, if it is digits and nothing else (and fits 64 bits).
fn digits(text: &str, radix: u32) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.chars().try_fold(0u64, |n, c| {
        n.checked_mul(u64::from(radix))?
            .checked_add(u64::from(c.to_digit(radix)?))
    })
}

fn dotted(n: u32) -> String {
    let [a, b, c, d] = n.to_be_bytes();
    format!("{a}.{b}.{c}.{d}")
}

/// Whether `host` (as [`split_authority`] gives it) is a DNS name or an IP address: letters,
/// digits, `-`, `.`, `_`, or an IPv6 address in brackets.
pub fn is_host(host: &str) -> bool {
    match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').is_some_and(|v6| {
            !v6.is_empty()
                && v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }),
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        }
    }
}

/// Whether every reader splits `authority` alike: a host, optionally `:` and a port of digits,
/// and nothing else. Readers differ on the rest (`host:80:80`, `host:x`, Envoy's join of two
/// `Host` lines `host:80,other`): Express cuts at the first `:`, others keep the whole value.
pub fn is_plain_authority(authority: &str) -> bool {
    !authority.contains('@') && is_host(&split_authority(authority).0)
}

/// Whether every reader takes `authority` for the same host and port: a plain authority (see
/// [`is_plain_authority`]) whose port, if it has one, is written as a port is (1-65535, no
/// leading zero, not empty). Envoy chooses a virtual host by the authority as sent, so
/// `api.example.com:080`, `api.example.com:` or `api.example.com:80:80` can reach a catch-all
/// route while a receiver (or a forward proxy, which reads `080` as 80) takes it for
/// `api.example.com`'s.
/// An IP address must be in its usual spelling too (`127.0.0.1`, `[2001:db8::1]`): a virtual
/// host for `127.0.0.1` does not match `127.1`, which a forward proxy behind Envoy connects to
/// all the same.
pub fn is_canonical_authority(authority: &str) -> bool {
    is_usual_authority(authority) || reads_as_canonical(authority)
}

/// [`is_canonical_authority`]'s full reading.
fn reads_as_canonical(authority: &str) -> bool {
    if !is_plain_authority(authority) || authority.ends_with(':') {
        return false;
    }
    let (host, port) = split_authority(authority);
    let port_plain = port.is_none_or(|p| !p.starts_with('0') && p.parse::<u16>().is_ok());
    port_plain && usual_address(&host, authority)
}

/// The authorities nearly every request carries, recognised without reading them as addresses:
/// a name whose last label starts with a letter, or an IPv4 address in four decimal parts
/// without leading zeros, each optionally with a port written as a port is. True only where
/// [`is_canonical_authority`]'s full reading says so too (a test compares them); anything else
/// is left to it.
fn is_usual_authority(authority: &str) -> bool {
    let bytes = authority.as_bytes();
    let (host, port) = match bytes.iter().rposition(|&b| b == b':') {
        Some(i) => (bytes.get(..i).unwrap_or_default(), bytes.get(i + 1..)),
        None => (bytes, None),
    };
    let number = |digits: &[u8]| {
        digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    // Digits, no leading zero, short enough to be read without overflow.
    let decimal = |digits: &[u8], most: usize| {
        (1..=most).contains(&digits.len())
            && digits.iter().all(u8::is_ascii_digit)
            && (digits.len() == 1 || digits.first() != Some(&b'0'))
    };
    let port_plain = port.is_none_or(|p| decimal(p, 5) && (1..=65535).contains(&number(p)));
    let last_label = host.rsplit(|&b| b == b'.').next().unwrap_or_default();
    let name = || {
        last_label.first().is_some_and(u8::is_ascii_alphabetic)
            && host
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    let dotted_quad = || {
        host.split(|&b| b == b'.').count() == 4
            && host
                .split(|&b| b == b'.')
                .all(|part| decimal(part, 3) && number(part) <= 255)
    };
    port_plain && (name() || dotted_quad())
}

/// Whether the host in `authority` (whose address reading is `host`, see [`split_authority`])
/// is written as addresses usually are, if it is one (IPv4 in four decimal parts, IPv6 as
/// RFC 5952 writes it: lower case, the longest run of zeros as `::`; not IPv4-mapped), and
/// without a trailing dot.
fn usual_address(host: &str, authority: &str) -> bool {
    let written = host_and_port(authority).0.to_ascii_lowercase();
    let name = written.as_str();
    // `api.example.com.` is the same name to resolvers and URL parsers, not to a virtual host
    // (where Envoy's `strip_trailing_host_dot` is off).
    if name.ends_with('.') {
        return false;
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        // An IPv4-mapped address reaches the IPv4 one, which a virtual host names so.
        // Nor one no reader parses (`[::00001]`): its readers are unknown.
        return ipv6_groups(v6).is_some_and(|groups| {
            groups[..6] != [0, 0, 0, 0, 0, 0xffff] && v6 == rfc5952(&groups)
        });
    }
    ipv4_number(name).is_none_or(|_| name == host)
}

/// An IPv6 address as RFC 5952 writes it.
fn rfc5952(groups: &[u16; 8]) -> String {
    // The longest run of two or more zero groups (the first of equals) becomes `::`.
    let (mut best, mut run) = ((0, 0), (0, 0));
    for (i, g) in groups.iter().enumerate() {
        run = if *g == 0 {
            (run.0, i + 1)
        } else {
            (i + 1, i + 1)
        };
        if run.1 - run.0 > best.1 - best.0 {
            best = run;
        }
    }
    let hex = |gs: &[u16]| {
        gs.iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    match best.1 - best.0 {
        0 | 1 => hex(groups),
        _ => format!(
            "{}::{}",
            hex(groups.get(..best.0).unwrap_or_default()),
            hex(groups.get(best.1..).unwrap_or_default())
        ),
    }
}

/// The ways a server may read a request path (query and fragment removed), distinct, in order:
/// as sent; as Envoy's `normalize_path` and `merge_slashes` give it (RFC 3986: unreserved
/// characters decoded, dot segments removed, then slashes merged); and as the most lenient server
/// reads it (every escape decoded, `\` taken for `/`, `;parameters` dropped, slashes merged, dot
/// segments removed).
pub fn path_readings(path: &str) -> Vec<String> {
    let path = path_only(path);
    let sent = path.to_string();
    if is_plain(path) {
        return vec![sent];
    }
    let rfc = merge_slashes(&remove_dot_segments(&decode_unreserved(path)));
    let lenient = remove_dot_segments(&merge_slashes(&lenient_decode(path)));
    // A proxy that decodes the path and hands it on to a server that decodes it again
    // (nginx's `proxy_pass …$uri`): `%252F` is a `/` to the second.
    let twice = remove_dot_segments(&merge_slashes(&lenient_decode_hops(path)));
    let mut readings = vec![sent];
    for r in [rfc, lenient, twice] {
        if !readings.contains(&r) {
            readings.push(r);
        }
    }
    readings
}

/// Whether a server that decodes every escape (`%2F`, `%5C`), takes `\` for `/` or drops
/// `;parameters` before it resolves dot segments serves another path than the one Envoy routed
/// on: in its RFC 3986 normal form (Envoy's `normalize_path`), the path has a dot segment once
/// so decoded (`/open/..%2fads/v1/track` is `/ads/v1/track` to nginx, `/.%2Fads/v1/track` too).
pub fn moves_when_decoded(path: &str) -> bool {
    let plain = path_only(path);
    if is_plain(plain) {
        return false;
    }
    // Not in normal form: Envoy without `normalize_path` and `merge_slashes` routes
    // `/open/../ads/v1/track`, `//ads/v1/track` or `/%61ds/v1/track` on the path as sent (an
    // ungated `/open/` route, a catch-all), and the destination serves `/ads/v1/track`.
    // (Escapes' hex digits in either case: Envoy's own normal form writes them in upper case.)
    let normal = normalize_path(plain);
    if !normal.eq_ignore_ascii_case(plain) {
        return true;
    }
    // Decoded once by the destination, or again by each proxy before it (`%252F`). `/a/.%2Fb`
    // is `/a/b` to nginx, which a route for `/a/b` matches and Envoy's did not.
    decodings(&normal)
        .iter()
        .any(|text| text.split('/').any(|seg| seg == "." || seg == ".."))
}

/// Whether a server that decodes the path before it splits off the query (a proxy handing on
/// its decoded `$uri`) finds a query or a fragment in it: `%3F` or `%23`, escaped once or more.
/// Envoy routes `/v1/track%3Fdata=…` as a path; the destination behind such a proxy reads
/// `/v1/track` and an event in `data`.
pub fn hides_a_query(path: &str) -> bool {
    // find-my-way (Fastify 4's router) ends a path at `;` as at `?`: what follows is its query.
    escapes(path, |b| matches!(b, b'?' | b'#' | b';'))
}

/// Whether a server that decodes the path reads another path in it: a `/` or `\` escaped once
/// or more (`/ads%2fv1/track` is on a catch-all route to Envoy, and `/ads/v1/track` to Go's
/// router, Flask, Django, Sinatra), or a control character (Starlette matches
/// `/v1/identify%0a` as `/v1/identify`: Python's `$` matches before a final line feed). Envoy's
/// `path_with_escaped_slashes_action: REJECT_REQUEST` refuses the first kind itself.
pub fn escapes_a_separator(path: &str) -> bool {
    escapes(path, |b| matches!(b, b'/' | b'\\' | 0..=0x1f | 0x7f))
}

/// Whether the path holds, as sent or decoded once or more, a letter that case-insensitive
/// routers fold onto an ASCII one (see [`fold_to_ascii`]): Envoy's `case_sensitive: false`
/// folds ASCII alone, so `/faceboo%E2%84%AA/v1/track` (the Kelvin sign) falls to another route,
/// while find-my-way (Fastify), lower-casing the decoded path as JavaScript does, and Go's
/// `EqualFold` run the `/facebook/v1/track` handler.
pub fn folds_onto_ascii(path: &str) -> bool {
    holds_beyond_ascii(path, |bytes| {
        FOLDED_ONTO_ASCII.iter().any(|(c, _)| holds_char(bytes, *c))
    })
}

/// Whether the path holds, as sent or decoded once or more, a character that a reader turns
/// into path syntax: Unicode normalisation (NFKC, and NFC for the Greek question mark) makes
/// `．．／`, `‥`, `＼`, `％2e`, `？`, `；` and their kind the ASCII characters, and Windows' best-fit
/// conversion to a code page makes `∕` and `⁄` a `/`, so `/open/．．／ads/v1/track` is
/// `/ads/v1/track` to a reader that normalises before it resolves the path. So does an overlong
/// UTF-8 form (`%C0%AE` for `.`, `%C0%AF` for `/`), which lenient decoders take for the
/// character it spells. No analytics endpoint's path holds any of them.
pub fn normalises_into_syntax(path: &str) -> bool {
    holds_beyond_ascii(path, |bytes| {
        bytes.utf8_chunks().any(|chunk| {
            chunk.valid().chars().any(|c| {
                let c = u32::from(c);
                NORMALISED_INTO_SYNTAX
                    .iter()
                    .any(|(from, to)| (*from..=*to).contains(&c))
            })
        }) || holds_overlong_utf8(bytes)
    })
}

/// Whether `found` holds for the path's bytes as sent or after one to [`DECODING_HOPS`]
/// decodings; never for an ASCII path without escapes.
fn holds_beyond_ascii(path: &str, found: impl Fn(&[u8]) -> bool) -> bool {
    let plain = path_only(path);
    if plain.is_ascii() && !has_escape(plain) {
        return false;
    }
    // Decoded as bytes, hop by hop: a hop may leave half a character escaped
    // (`%E2%84%25AA`), which a reader that decodes bytes completes on the next.
    let mut bytes = plain.as_bytes().to_vec();
    for _ in 0..=DECODING_HOPS {
        if found(&bytes) {
            return true;
        }
        if !bytes.contains(&b'%') {
            return false;
        }
        bytes = percent_decode_bytes(&bytes);
    }
    false
}

/// Whether `bytes` hold `c` in UTF-8.
fn holds_char(bytes: &[u8], c: char) -> bool {
    let mut utf8 = [0u8; 4];
    let c = c.encode_utf8(&mut utf8).as_bytes();
    bytes.windows(c.len()).any(|w| w == c)
}

/// Whether `bytes` hold a character's overlong UTF-8 form: a lead byte `C0` or `C1`, or `E0` or
/// `F0` followed by a byte that makes the sequence longer than the character needs.
fn holds_overlong_utf8(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| match *w {
        [0xC0 | 0xC1, next] => (0x80..=0xBF).contains(&next),
        [0xE0, next] => (0x80..=0x9F).contains(&next),
        [0xF0, next] => (0x80..=0x8F).contains(&next),
        _ => false,
    })
}

/// The characters whose Unicode compatibility form (NFKC) holds `.`, `/`, `\`, `%`, `?`, `#` or
/// `;` (every one such, as Python's `unicodedata` lists them: U+037E is `;` already under NFC,
/// U+2048 `?!`, U+2100 `a/c`, U+2488 `1.`), and the two that Windows' best-fit conversion makes
/// `/`, as ranges of code points.
const NORMALISED_INTO_SYNTAX: [(u32, u32); 28] = [
    (0x037E, 0x037E),   // Greek question mark: `;`
    (0x2024, 0x2026),   // dot leaders, ellipsis: `.`, `..`, `...`
    (0x2044, 0x2044),   // fraction slash: `/` to best-fit
    (0x2047, 0x2049),   // `??`, `?!`, `!?`
    (0x2100, 0x2101),   // `a/c`, `a/s`
    (0x2105, 0x2106),   // `c/o`, `c/u`
    (0x2215, 0x2215),   // division slash: `/` to best-fit
    (0x2488, 0x249B),   // `1.` to `20.`
    (0x33C2, 0x33C2),   // `a.m.`
    (0x33C7, 0x33C7),   // `Co.`
    (0x33D8, 0x33D8),   // `p.m.`
    (0xFE14, 0xFE14),   // vertical semicolon
    (0xFE16, 0xFE16),   // vertical question mark
    (0xFE19, 0xFE19),   // vertical ellipsis
    (0xFE30, 0xFE30),   // vertical two dot leader
    (0xFE52, 0xFE52),   // small full stop
    (0xFE54, 0xFE54),   // small semicolon
    (0xFE56, 0xFE56),   // small question mark
    (0xFE5F, 0xFE5F),   // small number sign
    (0xFE68, 0xFE68),   // small reverse solidus
    (0xFE6A, 0xFE6A),   // small percent sign
    (0xFF03, 0xFF03),   // fullwidth number sign
    (0xFF05, 0xFF05),   // fullwidth percent sign
    (0xFF0E, 0xFF0F),   // fullwidth full stop, solidus
    (0xFF1B, 0xFF1B),   // fullwidth semicolon
    (0xFF1F, 0xFF1F),   // fullwidth question mark
    (0xFF3C, 0xFF3C),   // fullwidth reverse solidus
    (0x1F100, 0x1F100), // `0.`
];

/// `ſ`, the Kelvin sign, `ı` and `İ`, each with the ASCII letter some case-insensitive
/// comparison takes it for.
const FOLDED_ONTO_ASCII: [(char, char); 4] = [
    ('\u{017F}', 's'),
    ('\u{212A}', 'k'),
    ('\u{0131}', 'i'),
    ('\u{0130}', 'i'),
];

/// Whether the path holds an IIS `%uNNNN` escape: http.sys decodes them by default
/// (`/open/%u002e%u002e/ads/v1/track` is `/ads/v1/track` to it), no other reader does, and
/// Envoy routes them as sent.
/// So is one a decoding proxy in front of it hands on (`%25u002e`).
pub fn has_a_wide_escape(path: &str) -> bool {
    let wide = |text: &str| {
        text.as_bytes().windows(6).any(|w| {
            w.first() == Some(&b'%')
                && matches!(w.get(1), Some(b'u' | b'U'))
                && w.get(2..)
                    .is_some_and(|d| d.iter().all(u8::is_ascii_hexdigit))
        })
    };
    has_escape(path) && (wide(path) || decodings(path).iter().any(|text| wide(text)))
}

/// Whether the path (query aside) holds an escape, once or more (`%2F`, `%252F`), of a byte
/// `hidden` takes. An escape still left after [`DECODING_HOPS`] decodings counts as one,
/// whatever it hides: what a further decoder makes of it is not followed, and no client sends
/// one.
fn escapes(path: &str, hidden: impl Fn(u8) -> bool) -> bool {
    let path = path_only(path);
    if !has_escape(path) {
        return false; // (what the loop finds too, without copying the path)
    }
    let mut text = path.as_bytes().to_vec();
    for hop in 0..=DECODING_HOPS {
        // After the last decoding followed, any escape counts.
        let beyond = hop == DECODING_HOPS;
        let mut found = false;
        let mut rest = text.as_slice();
        while let Some(at) = rest.iter().position(|&b| b == b'%') {
            // As [`percent_decode`] reads an escape.
            let digit = |i: usize| rest.get(at + i).copied().and_then(hex);
            found |= matches!((digit(1), digit(2)),
                (Some(h), Some(l)) if beyond || hidden(h * 16 + l));
            rest = rest.get(at + 1..).unwrap_or_default();
        }
        if found {
            return true;
        }
        if beyond || !text.contains(&b'%') {
            return false;
        }
        text = percent_decode(&String::from_utf8_lossy(&text));
    }
    false
}

/// Whether `text` holds a `%`. (For a path's few bytes a plain loop costs less than the
/// memchr-based searcher of `str::contains`.)
fn has_escape(text: &str) -> bool {
    text.bytes().any(|b| b == b'%')
}

/// How many servers in a row may decode a path (a proxy, then the destination, and two more
/// for good measure).
const DECODING_HOPS: usize = 4;

/// `path` as each of up to [`DECODING_HOPS`] servers in a row reads it, each decoding what the
/// one before handed on ([`lenient_decode`]), while escapes are left.
fn decodings(path: &str) -> Vec<String> {
    let mut out = vec![lenient_decode(path)];
    while out.len() < DECODING_HOPS {
        match out.last() {
            Some(text) if text.contains('%') => {
                let next = lenient_decode(text);
                out.push(next);
            }
            _ => break,
        }
    }
    out
}

/// [`lenient_decode`] as the last of [`DECODING_HOPS`] servers in a row reads it.
fn lenient_decode_hops(path: &str) -> String {
    decodings(path).pop().unwrap_or_default()
}

/// The paths a router may route `path` on: each of [`path_readings`]; each of those with the
/// letters that case-insensitive routers fold onto ASCII ones so folded (Go's `EqualFold`: `ſ`
/// and the Kelvin sign; .NET's `OrdinalIgnoreCase` and Java's `equalsIgnoreCase`: `ı`, `İ`);
/// and each with a format suffix taken off its last segment, as Rails' `(.:format)` and older
/// Spring take it (`/v1/track.json` is `/v1/track`). Distinct, in that order.
pub fn router_readings(path: &str) -> Vec<String> {
    let mut readings = path_readings(path);
    for i in 0..readings.len() {
        let Some(reading) = readings.get(i) else {
            break;
        };
        if reading.is_ascii() && !last_segment(reading).contains('.') {
            continue; // the usual path: nothing to fold, no suffix
        }
        let folded = fold_to_ascii(reading);
        let bare = without_format_suffix(&folded);
        for r in [folded.clone(), bare] {
            if !readings.contains(&r) {
                readings.push(r);
            }
        }
    }
    readings
}

/// `path` with `ſ`, `ı`, `İ` and the Kelvin sign written as the ASCII letters routers fold them
/// onto.
fn fold_to_ascii(path: &str) -> String {
    path.chars().map(ascii_fold).collect()
}

/// `ſ`, `ı`, `İ` and the Kelvin sign as the ASCII letters case-insensitive comparisons take them
/// for (Go's `EqualFold`, Java's `equalsIgnoreCase`, .NET's `OrdinalIgnoreCase`, JavaScript's
/// lower-casing); any other character as it is.
pub fn ascii_fold(c: char) -> char {
    FOLDED_ONTO_ASCII
        .iter()
        .find(|(from, _)| *from == c)
        .map_or(c, |(_, to)| *to)
}

/// `path` with its last segment (trailing slashes aside, as [`Endpoint::of_path`] reads it) cut
/// at its first `.` (a segment that is all suffix stays).
fn without_format_suffix(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    let (head, last) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
    match last.split_once('.') {
        Some((stem, _)) if !stem.is_empty() => format!("{head}/{stem}"),
        _ => path.to_string(),
    }
}

/// Where the two bytes `pair` first occur in `text`. (`str::find` with a string would bring
/// its general searcher into the module, 3 KB, for these two-byte patterns.)
fn find_pair(text: &str, pair: &[u8; 2]) -> Option<usize> {
    text.as_bytes().windows(2).position(|w| w == pair)
}

/// The path without its query and fragment.
fn path_only(path: &str) -> &str {
    match path.bytes().position(|b| matches!(b, b'?' | b'#')) {
        Some(end) => path.get(..end).unwrap_or(""),
        None => path,
    }
}

/// A path every server reads as sent: no escapes, backslashes, parameters, empty or dot
/// segments (the common case, decided without building the other readings).
fn is_plain(path: &str) -> bool {
    // One pass over the segments after the leading `/`: only the last may be empty (a trailing
    // slash).
    let Some((b'/', rest)) = path.as_bytes().split_first() else {
        return false;
    };
    let mut segments = rest.split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let plain = match segment {
            b"" => segments.peek().is_none(),
            b"." | b".." => false,
            _ => !segment.iter().any(|b| matches!(b, b'%' | b'\\' | b';')),
        };
        if !plain {
            return false;
        }
    }
    true
}

/// The path in RFC 3986 normal form (as Envoy's `normalize_path` + `merge_slashes` give it).
pub fn normalize_path(path: &str) -> String {
    merge_slashes(&remove_dot_segments(&decode_unreserved(path)))
}

/// What an endpoint's path says about the body it takes, by its last segment (Segment's HTTP
/// API: `/v1/track`, `/v1/batch`, `/v1/import`; analytics.js and the mobile libraries: `/v1/t`,
/// `/v1/p`, …, `/v1/b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The path names no Segment call.
    Unnamed,
    /// A single event of this call.
    Single(Call),
    /// A batch (`/batch`, `/b`, `/import`).
    Batch,
    /// The path's readings name different calls.
    Conflicting,
}

impl Endpoint {
    /// The endpoint named in any reading of `path` (case-insensitive): by its last segment, and
    /// by the segment after each `v1`, since a handler may take the segments after its own
    /// (CherryPy's `*args`, Go's `/v1/identify/` subtree pattern, Express's `app.use`):
    /// `/v1/identify/x` is an identify to such a receiver, `/v1/identify/track` two calls.
    pub fn of_path(path: &str) -> Endpoint {
        let plain = path_only(path);
        if is_plain(plain) {
            return named_in(plain);
        }
        path_readings(path)
            .iter()
            .fold(Endpoint::Unnamed, |found, reading| {
                found.and(named_in(reading))
            })
    }

    /// Two namings of one request together: either, if the other names nothing; conflicting
    /// if they differ.
    fn and(self, other: Endpoint) -> Endpoint {
        match (self, other) {
            (found, Endpoint::Unnamed) => found,
            (Endpoint::Unnamed, named) => named,
            (found, named) if found == named => found,
            _ => Endpoint::Conflicting,
        }
    }
}

fn last_segment(path: &str) -> &str {
    // (A predicate, not the char `'/'`: for a path's few bytes a plain loop is cheaper than
    // the memchr-based searcher.)
    path.trim_end_matches('/')
        .rsplit(is_slash)
        .next()
        .unwrap_or("")
}

fn is_slash(c: char) -> bool {
    c == '/'
}

/// The endpoint one reading of a path names (see [`Endpoint::of_path`]).
fn named_in(path: &str) -> Endpoint {
    let mut found = endpoint_named(last_segment(path), 1);
    let mut segments = path.trim_end_matches('/').split(is_slash).peekable();
    while let Some(segment) = segments.next() {
        match segments.peek() {
            // After `v1`, an abbreviation too (`/v1/i/x`).
            Some(next) if segment.eq_ignore_ascii_case("v1") => {
                found = found.and(endpoint_named(next, 1));
            }
            // A call's whole name before other segments, under any prefix: a handler mounted
            // there takes what follows (`/sdk/identify/x`, `/v2/identify/track`); Jitsu's
            // `/api/s/track` keeps its `s`.
            // (Whole names are 4 to 12 letters, a letter 1 to 3 bytes.)
            Some(_) if (4..=36).contains(&segment.len()) => {
                found = found.and(endpoint_named(segment, 4));
            }
            Some(_) => {}
            None => {}
        }
    }
    found
}

/// The endpoint `segment` names, by a name of at least `shortest` letters.
fn endpoint_named(segment: &str, shortest: usize) -> Endpoint {
    // RudderStack's gateway also takes calls that are none of Segment's six (`/v1/merge`,
    // `/v1/audiencelist`, `/internal/v1/extract`, `/v1/webhook`): it sets the event's `type`
    // from the path, whatever the body says, so a body that says `track` there is not a track
    // call. Its `retl` and `replay` take batches, as `batch` does.
    const NAMES: [(&str, Endpoint); 21] = [
        ("track", Endpoint::Single(Call::Track)),
        ("t", Endpoint::Single(Call::Track)),
        ("identify", Endpoint::Single(Call::Identify)),
        ("i", Endpoint::Single(Call::Identify)),
        ("page", Endpoint::Single(Call::Page)),
        ("p", Endpoint::Single(Call::Page)),
        ("screen", Endpoint::Single(Call::Screen)),
        ("s", Endpoint::Single(Call::Screen)),
        ("group", Endpoint::Single(Call::Group)),
        ("g", Endpoint::Single(Call::Group)),
        ("alias", Endpoint::Single(Call::Alias)),
        ("a", Endpoint::Single(Call::Alias)),
        ("batch", Endpoint::Batch),
        ("b", Endpoint::Batch),
        ("import", Endpoint::Batch),
        ("merge", Endpoint::Single(Call::Other)),
        ("audiencelist", Endpoint::Single(Call::Other)),
        ("extract", Endpoint::Single(Call::Other)),
        ("retl", Endpoint::Batch),
        ("replay", Endpoint::Batch),
        ("webhook", Endpoint::Single(Call::Other)),
    ];
    // Routers that fold case further than ASCII (Go's `strings.EqualFold`: `alia\u017f`) and
    // those that take a format suffix off the last segment (Rails' `(.:format)`, older Spring:
    // `identify.json`) route these to the call too.
    let stem = match segment.bytes().position(|b| b == b'.') {
        Some(dot) => segment.get(..dot).unwrap_or(segment),
        None => segment,
    };
    NAMES
        .iter()
        .filter(|(name, _)| name.len() >= shortest)
        .find(|(name, _)| folds_to(segment, name) || folds_to(stem, name))
        .map_or(Endpoint::Unnamed, |(_, e)| *e)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `text` with every `%XX` escape decoded (a `%` without two hex digits stays as it is).
pub fn percent_decode(text: &str) -> Vec<u8> {
    percent_decode_bytes(text.as_bytes())
}

fn percent_decode_bytes(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let (v, used) = match (
            c,
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => (h * 16 + l, 3),
            _ => (c, 1),
        };
        out.push(v);
        i += used;
    }
    out
}

/// The characters RFC 3986 calls unreserved: letters, digits, `-`, `.`, `_`, `~`.
pub fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-decodes the characters RFC 3986 calls unreserved; other escapes keep their meaning
/// and get upper-case hex digits.
fn decode_unreserved(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                let v = h * 16 + l;
                if is_unreserved(v) {
                    out.push(v);
                } else {
                    out.push(b'%');
                    out.extend((format!("{v:02X}")).bytes());
                }
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every escape decoded, backslashes as slashes, `;parameters` dropped from each segment.
fn lenient_decode(path: &str) -> String {
    let out: Vec<u8> = percent_decode(path)
        .into_iter()
        .map(|v| if v == b'\\' { b'/' } else { v })
        .collect();
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split('/')
        .map(|seg| seg.split(';').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("/")
}

fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

/// RFC 3986 section 5.2.4, on a path that is taken as absolute.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." | ".." => {
                if *seg == ".." {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`is_plain`] computes in one pass, as first written.
    fn is_plain_by_definition(path: &str) -> bool {
        path.starts_with('/')
            && !path.bytes().any(|b| matches!(b, b'%' | b'\\' | b';'))
            && !path.contains("//")
            && !path.split('/').any(|seg| seg == "." || seg == "..")
    }

    #[test]
    fn is_plain_is_its_definition() {
        // Every path of up to seven characters over the ones that matter.
        let alphabet = ['/', '.', 'a', '%', '\\', ';'];
        let mut paths = vec![String::new()];
        let mut checked = 0;
        for _ in 0..7 {
            paths = paths
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            for p in &paths {
                assert_eq!(is_plain(p), is_plain_by_definition(p), "{p:?}");
                checked += 1;
            }
        }
        assert!(checked > 300_000);
        assert!(is_plain("/v1/track") && is_plain("/") && is_plain("/v1/track/"));
        assert!(!is_plain("/v1//track") && !is_plain("/v1/./track") && !is_plain("v1/track"));
    }

    #[test]
    fn splits_authorities() {
        let h = split_authority;
        assert_eq!(h("api.example.com"), ("api.example.com".into(), None));
        assert_eq!(
            h("API.Example.COM:8443"),
            ("api.example.com".into(), Some("8443"))
        );
        assert_eq!(h("api.example.com."), ("api.example.com".into(), None));
        assert_eq!(
            h("api.example.com.:443"),
            ("api.example.com".into(), Some("443"))
        );
        assert_eq!(
            h("user:pw@api.example.com"),
            ("api.example.com".into(), None)
        );
        assert_eq!(h("[::1]:80"), ("[::1]".into(), Some("80")));
        assert_eq!(h("[0:0:0:0:0:0:0:1]"), ("[::1]".into(), None));
        // An empty port is no port.
        assert_eq!(h("api.example.com:"), ("api.example.com".into(), None));
        assert_eq!(h("api.example.com.:"), ("api.example.com".into(), None));
        assert_eq!(h("[::1]:"), ("[::1]".into(), None));
    }

    /// The shortcut for usual authorities says yes only where the full reading does, over
    /// every short string of the characters authorities are made of, and takes the usual ones.
    #[test]
    fn usual_authorities_are_canonical_ones() {
        for usual in [
            "api.example.com",
            "API.example.com:8080",
            "127.0.0.1:18080",
            "10.0.0.5",
        ] {
            assert!(is_usual_authority(usual), "{usual}");
        }
        let alphabet = [
            "a", "Z", "0", "1", "9", "5", "2", ".", ":", "-", "_", "x", "[", "]", "@",
        ];
        let mut texts = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = texts
                .iter()
                .filter(|t| t.len() == texts.last().map_or(0, String::len))
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            texts.extend(longer);
        }
        let seeds = [
            "127.0.0.1",
            "255.255.255.255",
            "1.2.3.4",
            "api.example.com",
            "a.b1",
        ];
        let ports = [
            "", ":", ":0", ":1", ":80", ":080", ":65535", ":65536", ":99999", ":123456",
        ];
        for seed in seeds {
            for port in ports {
                for variant in [
                    format!("{seed}{port}"),
                    format!("0{seed}{port}"),
                    format!("{seed}0{port}"),
                ] {
                    texts.push(variant);
                }
            }
        }
        texts.extend(
            [
                "256.0.0.1",
                "1.2.3.04",
                "1.2.3",
                "1.2.3.4.5",
                "1..3.4",
                "9999.1.1.1",
            ]
            .map(String::from),
        );
        assert!(texts.len() > 800_000);
        for text in &texts {
            if is_usual_authority(text) {
                assert!(reads_as_canonical(text), "{text:?}");
            }
        }
    }

    #[test]
    fn tells_an_authority_every_reader_reads_alike() {
        for plain in [
            "api.example.com",
            "API.example.com",
            "api.example.com:8080",
            "localhost:1",
            "localhost:65535",
            "10.0.0.5:443",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(is_canonical_authority(plain), "{plain}");
        }
        for plain in [
            "127.0.0.1:8080",
            "[2001:db8::1]",
            "[2001:DB8::1]",
            "[::1]:443",
            "[::]",
            "[2001:db8:0:1:1:1:1:1]",
            "[2001:0:0:1::1]",
            "[1::]",
        ] {
            assert!(is_canonical_authority(plain), "{plain}");
        }
        for odd in [
            "127.1",
            "127.1:8080",
            "[::ffff:127.0.0.1]",
            "api.example.com.",
            "API.example.com.:443",
            "127.0.0.1.",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "2130706433",
            "127.000.0.1",
            "[::ffff:7f00:1]",
            "[0:0:0:0:0:0:0:1]",
            "[2001:0db8::1]",
            "[2001:db8::0:1]",
            "[2001:db8:0:0:1::1]",
            "[::00001]",
            "[::1::1]",
            "[:::]",
            "[2001:0:0:1:0:0:0:1]",
            "",
            "api.example.com:",
            "api.example.com:080",
            "api.example.com:0",
            "api.example.com:65536",
            "api.example.com:80:80",
            "api.example.com:x",
            "u@api.example.com",
            "api.example.com,other.example",
            "[::1]:",
            "[::1]:0443",
        ] {
            assert!(!is_canonical_authority(odd), "{odd}");
        }
    }

    #[test]
    fn names_an_ip_address_once_in_whatever_form() {
        let host = |a: &str| split_authority(a).0;
        for same in [
            "127.0.0.1",
            "127.1",
            "127.0.1",
            "0x7f.0.0.1",
            "0X7F.0.0.1",
            "0177.0.0.1",
            "0177.0.0.01",
            "2130706433",
            "0x7f000001",
            "017700000001",
            "0000000000000000000177.0.0.1",
            "127.0.0.1.",
            "[::ffff:127.0.0.1]",
            "[::FFFF:7f00:1]",
            "[0:0:0:0:0:ffff:7f00:1]:8080",
        ] {
            assert_eq!(host(same), "127.0.0.1", "{same}");
        }
        for same in [
            "[2001:db8::1]",
            "[2001:0DB8:0:0::1]",
            "[2001:db8:0:0:0:0:0:1]",
        ] {
            assert_eq!(host(same), "[2001:db8::1]", "{same}");
        }
        // Not addresses: names, parts out of range, signs, too many parts, bad digits.
        for name in [
            "api.example.com",
            "256.0.0.1",
            "1.2.3.4.5",
            "1.256.3",
            "08.0.0.1",
            "+1.2.3.4",
            "1.-2.3.4",
            "0x1g.0.0.1",
            "4294967296",
            "1..2",
            "[::1::2]",
        ] {
            assert_eq!(host(name), name.to_ascii_lowercase(), "{name}");
        }
        assert_eq!(host("0x"), "0.0.0.0");
        assert_eq!(host("10.0.0.5"), "10.0.0.5");
        assert_eq!(host("10.5"), "10.0.0.5");
        assert_eq!(host("1.2.65535"), "1.2.255.255");
    }

    #[test]
    fn tells_characters_a_normaliser_makes_path_syntax() {
        for path in [
            "/open/\u{FF0E}\u{FF0E}\u{FF0F}ads/v1/track",
            "/open/%EF%BC%8E%EF%BC%8E/ads/v1/track",
            "/open/..%EF%BC%8Fads/v1/track",
            "/open/..%E2%88%95ads/v1/track",
            "/open/..%E2%81%84ads/v1/track",
            "/open/..%EF%BC%BCads/v1/track",
            "/open/%E2%80%A5/ads/v1/track",
            "/v1/track%EF%BC%9Fdata=e30",
            "/v1/track%CD%BEx",
            "/ads/v1/track%E2%81%88&data=e30",
            "/open/%E2%84%80/v1/track",
            "/open/%E2%92%88/v1/track",
            "/open/%F0%9F%84%80/v1/track",
            "/open/%EF%BC%85%32%65%EF%BC%85%32%65/ads",
            // Escaped again, or half of it: a byte-wise decoder completes it.
            "/open/%25EF%25BC%258E%25EF%25BC%258E/ads/v1/track",
            "/open/%EF%BC%258E/ads/v1/track",
            // Overlong UTF-8: `.`, `/`, and a three- and four-byte form.
            "/open/%C0%AE%C0%AE/ads/v1/track",
            "/open/..%C0%AFads/v1/track",
            "/open/..%E0%80%AFads/v1/track",
            "/open/..%F0%80%80%AFads/v1/track",
            "/open/%25C0%25AE%25C0%25AE/ads/v1/track",
        ] {
            assert!(normalises_into_syntax(path), "{path}");
        }
        for path in [
            "/v1/track",
            "/open/caf%C3%A9/v1/track",
            "/open/\u{e9}t\u{e9}/v1/track",
            "/open/%E2%82%AC/v1/track", // the euro sign
            "/open/%E0%A4%85/v1/track", // a three-byte form from E0 that is not overlong
            "/open/%F0%9F%98%80/v1/track",
            "/open/%C3%80/v1/track",
            "/v1/track?q=%EF%BC%8E",
        ] {
            assert!(!normalises_into_syntax(path), "{path}");
        }
    }

    #[test]
    fn tells_iis_wide_escapes() {
        for wide in [
            "/open/%u002e%u002e/ads/v1/track",
            "/a%U002Fb",
            "/%uFF0E",
            "/open/%25u002e%25u002e/ads/v1/track",
            "/open/%2525u002e/ads",
        ] {
            assert!(has_a_wide_escape(wide), "{wide}");
        }
        for plain in ["/v1/track", "/%u00", "/%uzzzz", "/%75002e", "/u002e"] {
            assert!(!has_a_wide_escape(plain), "{plain}");
        }
    }

    #[test]
    fn a_path_not_in_normal_form_moves() {
        for moves in [
            "/open/../ads/v1/track",
            "/./ads/v1/track",
            "//ads/v1/track",
            "/ads//v1/track",
            "/open/%2e%2e/ads/v1/track",
            "/%61ds/v1/track",
            "/ads/v1/%74rack?x=1",
            "/ads/v1/track/.",
            "/x/../v1/track",
            "/%2e%2e/v1/track",
        ] {
            assert!(moves_when_decoded(moves), "{moves}");
        }
        for stays in [
            "/ads/v1/track",
            "/ads/v1/track/",
            "/ads/v1/track?x=/../y",
            "/a%3ab",
            "/a%3Ab",
            "/a%20b",
            "/caf%C3%A9",
            "/",
        ] {
            assert!(!moves_when_decoded(stays), "{stays}");
        }
    }

    #[test]
    fn tells_a_path_that_moves_once_its_escapes_are_decoded() {
        for moves in [
            "/open/..%2fads/v1/track",
            "/open/..%2Fads",
            "/open/..%5cads",
            "/open/..\\ads",
            "/open/..;/ads",
            "/open/.%2e%2fads",
            "/open/%2e%2e%2fads?x=1",
            "/open/x%2f..%2f..%2fads",
            // Decoded by a proxy, then by the server behind it.
            "/zzz/..%252fads/v1/track",
            "/zzz/%252e%252e/ads/v1/track",
            "/zzz/..%25252fads",
            // A `.` segment moves the path too: Envoy routed on `/.%2Fads`, nginx serves `/ads`.
            "/.%2Fads/v1/track",
            "/.%252Fads/v1/track",
            "/projects/.%2Fa/v1/track",
        ] {
            assert!(moves_when_decoded(moves), "{moves}");
        }
        for hides in [
            "/v1/track%3F",
            "/v1/pixel/track%3Fdata=e30",
            "/v1/track%23x",
            "/v1/t%253Fx",
            // Fastify 4's router ends a path at `;`, decoded too.
            "/v1/track%3Bdata=e30",
            "/v1/track%253b",
        ] {
            assert!(hides_a_query(hides), "{hides}");
        }
        for escapes in [
            "/ads%2fv1/track",
            "/ads%5Cv1/track",
            "/ads%252Fv1/track",
            "/v1/identify%0a",
            "/v1/identify%0D",
            "/v1/%00track",
            "/v1/track%7f",
            "/v1/track%25250a",
            // Four decodings leave an escape: refused whatever a fifth would give.
            "/ads%252525252Fv1/track",
            "/v1/track%2525252541",
        ] {
            assert!(escapes_a_separator(escapes), "{escapes}");
            assert!(
                hides_a_query(escapes) || !escapes.contains("25252525"),
                "{escapes}"
            );
        }
        for plain in [
            "/v1/track",
            "/v1/%74rack",
            "/v1/tr%61ck%20",
            "/v1/100%",
            "/v1/%2",
            "/v1/%+5",
            "/v1/track?next=%2F",
        ] {
            assert!(!escapes_a_separator(plain), "{plain}");
        }
        for plain in [
            "/v1/track",
            "/v1/track?data=x",
            "/v1/a%2Fb",
            "/v1/%25",
            "/v1/100%",
        ] {
            assert!(!hides_a_query(plain), "{plain}");
        }
        for stays in [
            "/v1/track",
            "/v1%2ftrack",
            "/projects/group%2Fname/events",
            "/v1/track;jsessionid=1",
            "/v1/track?next=/../x",
        ] {
            assert!(!moves_when_decoded(stays), "{stays}");
        }
    }

    #[test]
    fn reads_paths_every_way() {
        assert_eq!(path_readings("/v1/track?x=/a#f"), vec!["/v1/track"]);
        assert_eq!(path_readings("//v1/track"), vec!["//v1/track", "/v1/track"]);
        assert_eq!(
            path_readings("/x/../v1/track"),
            vec!["/x/../v1/track", "/v1/track"]
        );
        assert_eq!(
            path_readings("/v1/./%74rack"),
            vec!["/v1/./%74rack", "/v1/track"]
        );
        assert_eq!(
            path_readings("/v1%2ftrack"),
            vec!["/v1%2ftrack", "/v1%2Ftrack", "/v1/track"]
        );
        assert_eq!(
            path_readings("/a/..%2f..%2fv1/track"),
            vec![
                "/a/..%2f..%2fv1/track",
                "/a/..%2F..%2Fv1/track",
                "/v1/track"
            ]
        );
        assert_eq!(
            path_readings("/v1\\track;jsessionid=1").last().unwrap(),
            "/v1/track"
        );
        assert_eq!(path_readings("/v1/track/..")[1], "/v1/");
        assert_eq!(path_readings("/../../x")[1], "/x");
        assert_eq!(normalize_path("/a//b/./c/../d/"), "/a/b/d/");
        assert_eq!(normalize_path("/%7euser/%41"), "/~user/A");
        assert_eq!(normalize_path("/%e2%82%ac"), "/%E2%82%AC");
    }

    #[test]
    fn names_the_endpoint() {
        let e = Endpoint::of_path;
        assert_eq!(e("/v1/track"), Endpoint::Single(Call::Track));
        assert_eq!(e("/v1/t"), Endpoint::Single(Call::Track));
        assert_eq!(e("/v1/TRACK/"), Endpoint::Single(Call::Track));
        assert_eq!(e("/v1/%74rack?x=1"), Endpoint::Single(Call::Track));
        assert_eq!(e("/v1/identify"), Endpoint::Single(Call::Identify));
        assert_eq!(e("/v1/batch"), Endpoint::Batch);
        assert_eq!(e("/v1/import"), Endpoint::Batch);
        assert_eq!(e("/v1/b"), Endpoint::Batch);
        assert_eq!(e("/collect"), Endpoint::Unnamed);
        assert_eq!(e("/"), Endpoint::Unnamed);
        // `/v1/track/..` is `/v1/` to a normalising server, and `..` to none of them is a call,
        // but a handler that takes the segments after its own (CherryPy's `*args`, Go's
        // `/v1/track/` pattern) serves it as track.
        assert_eq!(e("/v1/track/.."), Endpoint::Single(Call::Track));
        // So `/v1/identify/x` is an identify to such a handler, and `/v1/identify/track` two
        // calls.
        assert_eq!(e("/v1/identify/x"), Endpoint::Single(Call::Identify));
        assert_eq!(e("/ads/V1/batch/x/"), Endpoint::Batch);
        assert_eq!(e("/v1/identify/track"), Endpoint::Conflicting);
        assert_eq!(e("/v1/pixel/track"), Endpoint::Single(Call::Track));
        assert_eq!(e("/p/v1/track"), Endpoint::Single(Call::Track));
        assert_eq!(e("/v1/track;x=1"), Endpoint::Single(Call::Track));
        // Envoy reads `/v1/identify/track/`; a server that decodes `%2f` reads `/v1/identify/`.
        assert_eq!(e("/v1/identify/track/x%2f../.."), Endpoint::Conflicting);
        // A format suffix, and case folded beyond ASCII, as some routers read them.
        assert_eq!(e("/v1/identify.json"), Endpoint::Single(Call::Identify));
        assert_eq!(e("/v1/Batch.JSON"), Endpoint::Batch);
        assert_eq!(e("/v1/alia%C5%BF"), Endpoint::Single(Call::Alias));
        assert_eq!(e("/v1/%C4%B1dentify"), Endpoint::Single(Call::Identify));
        assert_eq!(e("/v1/trac%E2%84%AA"), Endpoint::Single(Call::Track));
        assert_eq!(e("/v1/tracking.json"), Endpoint::Unnamed);
        assert_eq!(e("/v1.2/collect"), Endpoint::Unnamed);
        // A call's whole name before other segments names it under any prefix (a handler
        // mounted at `/sdk/identify/` takes the rest); abbreviations only after `v1`.
        assert_eq!(e("/sdk/identify/track"), Endpoint::Conflicting);
        assert_eq!(e("/v2/identify/x"), Endpoint::Single(Call::Identify));
        assert_eq!(e("/sdk/Batch/x"), Endpoint::Batch);
        assert_eq!(e("/track/v1/track"), Endpoint::Single(Call::Track));
        assert_eq!(e("/api/s/track"), Endpoint::Single(Call::Track));
        assert_eq!(e("/sdk/i/x"), Endpoint::Unnamed);
        assert_eq!(e("/\u{17f}/track"), Endpoint::Single(Call::Track));
        assert_eq!(e("/identify-svc/track"), Endpoint::Single(Call::Track));
    }
}
