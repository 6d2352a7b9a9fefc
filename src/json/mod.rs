//! Strict JSON (RFC 8259) reading without building a tree.
//!
//! The filter only needs a handful of fields from an event, but it must never forward a body it
//! could not judge, so everything it skips is still fully validated. Nesting is tracked with an
//! explicit bit stack instead of recursion: hostile input cannot overflow the wasm stack.
//!
//! The caller checks UTF-8 once for the whole input ([`Scanner::new`] takes `&str`); outside
//! strings JSON is ASCII, so that single check covers every string the scanner returns.

use std::borrow::Cow;
use std::cmp::Ordering;

// Natively only: in V8, building a block's eight 64-bit masks from 16-byte vectors costs more
// than it saves (measured with `make bench`'s in-V8 runs, in Node's V8 and in Envoy's: the 32 KB
// event no faster or 13% slower, the batch and the 1 KB event 10-25% slower), so the wasm module
// reads token by token.
#[cfg(not(target_arch = "wasm32"))]
mod blocks;

/// The input is not valid JSON, or nests deeper than [`MAX_DEPTH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// Deepest nesting accepted: objects and arrays inside one another, the outermost one included,
/// empty ones too.
pub const MAX_DEPTH: usize = 512;

/// How much of a container is read token by token before the rest is read block-wise (natively):
/// below about this size the token-by-token reading is as fast, having nothing to set up
/// (measured with `make bench`'s bodies).
pub const HAND_OVER_AFTER: usize = 192;

/// The digits of 2^1024 - 2^970, from which a decimal number rounds to an infinite double.
const ROUNDS_TO_INFINITY: &[u8; 309] = b"179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792";

/// `bytes` as text if they are UTF-8 (exactly as [`std::str::from_utf8`] decides). A body is
/// ASCII but for the odd string, so it is checked 64 bytes a step, and only the runs of 64-byte
/// blocks that hold other bytes go to the standard check (which goes a word at a time, and a word
/// is 4 bytes in the wasm module).
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    let ascii = |at: usize| {
        bytes
            .get(at..at + 64)
            .and_then(|b| <&[u8; 64]>::try_from(b).ok())
            .map(simd::is_ascii64)
    };
    let mut at = 0;
    while at < bytes.len() {
        // Four blocks a step while they are ASCII (one branch for the four).
        while let Some(Ok(blocks)) = bytes.get(at..at + 256).map(<&[u8; 256]>::try_from) {
            if !simd::is_ascii256(blocks) {
                break;
            }
            at += 256;
        }
        match ascii(at) {
            Some(true) => at += 64,
            // Blocks with other bytes, up to the next ASCII block or the end: a character cannot
            // straddle either edge (ASCII bytes are whole characters).
            _ => {
                let mut end = at + 64;
                loop {
                    match ascii(end) {
                        Some(false) => end += 64,
                        Some(true) => break,
                        None => {
                            end = bytes.len();
                            break;
                        }
                    }
                }
                let run = bytes.get(at..end)?;
                std::str::from_utf8(run).ok()?;
                at = end;
            }
        }
    }
    // SAFETY: every 64-byte block was checked to be ASCII, and every run between them (and the
    // tail) to be UTF-8; the runs start and end at ASCII bytes or the input's ends, so the whole
    // is UTF-8.
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// A cursor over a JSON text.
#[derive(Clone)]
pub struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The containers the reading methods are inside (entered by `object_start` or
    /// `array_start`, left by the `object_more` or `array_more` that reads their end): a value
    /// skipped in there may nest only as deep as [`MAX_DEPTH`] leaves room for below them.
    depth: usize,
}

/// The raw content of a JSON string (between the quotes, escapes not yet decoded).
#[derive(Debug, Clone, Copy)]
pub struct Str<'a> {
    raw: &'a [u8],
    escaped: bool,
}

impl<'a> Str<'a> {
    /// The bytes between the quotes, escapes not decoded.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether the string has escapes (its raw bytes are then not its text).
    pub fn is_escaped(&self) -> bool {
        self.escaped
    }

    /// The decoded text. Escapes were validated when the string was scanned.
    pub fn decode(&self) -> Cow<'a, str> {
        if !self.escaped {
            return match std::str::from_utf8(self.raw) {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => Cow::Owned(String::from_utf8_lossy(self.raw).into_owned()),
            };
        }
        Cow::Owned(unescape(self.raw))
    }

    /// Whether the decoded text equals `s` (no allocation unless the string has escapes).
    pub fn eq_str(&self, s: &str) -> bool {
        if self.escaped {
            self.decode() == s
        } else {
            same_bytes(self.raw, s.as_bytes())
        }
    }

    /// Index of the first name in `names` equal to the decoded text.
    pub fn position_in(&self, names: &[String]) -> Option<usize> {
        if self.escaped {
            let decoded = self.decode();
            names.iter().position(|n| *n == decoded)
        } else {
            names
                .iter()
                .position(|n| same_bytes(n.as_bytes(), self.raw))
        }
    }
}

/// `a == b`, without a call to `memcmp` up to 16 bytes (keys and the names they are compared
/// with are short): two overlapping loads a side. Every key of an event is compared with a few
/// names, and a `memcmp` call each was about a twentieth of a batch's time natively.
#[cfg(not(target_arch = "wasm32"))]
#[inline(always)]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    let word8 = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_ne_bytes)
    };
    let word4 = |s: &[u8], at: usize| {
        s.get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map(u32::from_ne_bytes)
    };
    match len {
        0 => true,
        1..=3 => {
            let byte = |s: &[u8], at: usize| s.get(at).copied();
            byte(a, 0) == byte(b, 0)
                && byte(a, len / 2) == byte(b, len / 2)
                && byte(a, len - 1) == byte(b, len - 1)
        }
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, len - 4) == word4(b, len - 4),
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, len - 8) == word8(b, len - 8),
        _ => a == b,
    }
}

/// In the wasm module, the slices' own comparison: as fast in V8, and smaller.
#[cfg(target_arch = "wasm32")]
#[inline(always)]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a == b
}

/// Bytes that end the fast run inside a string: the closing quote, a backslash, control characters.
#[allow(clippy::indexing_slicing)] // constant evaluation: an out-of-range index fails the build
const STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

fn is_string_stop(b: u8) -> bool {
    STRING_STOP.get(usize::from(b)).copied().unwrap_or(true)
}

/// Offset of the first string-stop byte in `bytes`. Strings are most of an event's bytes, so
/// this is most of the filter's time: the first sixteen bytes with SIMD inline (most strings end
/// there), then a long string's rest 32 bytes at a time with AVX2 where the CPU has it (checked
/// at run time), else sixteen at a time (SSE2 natively, simd128 in the wasm module).
#[inline(always)]
fn find_string_stop(bytes: &[u8]) -> Option<usize> {
    if let Some(first) = bytes.get(..16).and_then(|b| <&[u8; 16]>::try_from(b).ok()) {
        let hits = simd::stops16(first);
        if hits != 0 {
            return Some(hits.trailing_zeros() as usize);
        }
        return find_long_string_stop(bytes.get(16..)?).map(|p| p + 16);
    }
    find_string_stop_swar(bytes)
}

#[inline(never)] // long strings only: keeps the inlined string loop small
fn find_long_string_stop(bytes: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if simd::has_avx2() {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { simd::find_stop_avx2(bytes) };
    }
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 16) {
        let Ok(block) = <&[u8; 16]>::try_from(chunk) else {
            break;
        };
        let hits = simd::stops16(block);
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize);
        }
        at += 16;
    }
    find_string_stop_swar(bytes.get(at..)?).map(|p| at + p)
}

/// Eight bytes at a time in a `u64`, then byte by byte.
fn find_string_stop_swar(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Flags bytes of `x` that are below `n`; the lowest flagged byte is always a true one.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        let hits = below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            | below(w, 0x20);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = bytes.get(at..)?;
    tail.iter().position(|&b| is_string_stop(b)).map(|p| at + p)
}

/// `stops16(block)`: bit `i` set when `block[i]` is a string-stop byte; `is_ascii64(block)`: no
/// byte of the block is beyond ASCII.
mod simd {
    /// Whether 64 bytes are all ASCII.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub fn is_ascii64(block: &[u8; 64]) -> bool {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86-64 baseline; each load reads 16 of the 64 bytes and
        // allows any alignment.
        unsafe {
            let p = block.as_ptr().cast::<__m128i>();
            let any = _mm_or_si128(
                _mm_or_si128(_mm_loadu_si128(p), _mm_loadu_si128(p.add(1))),
                _mm_or_si128(_mm_loadu_si128(p.add(2)), _mm_loadu_si128(p.add(3))),
            );
            _mm_movemask_epi8(any) == 0
        }
    }

    /// Whether four 64-byte blocks are ASCII.
    #[inline(always)]
    pub fn is_ascii256(blocks: &[u8; 256]) -> bool {
        let mut any = 0u8;
        for block in blocks.chunks_exact(64) {
            if let Ok(block) = <&[u8; 64]>::try_from(block) {
                any |= u8::from(!is_ascii64(block));
            }
        }
        any == 0
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    pub fn is_ascii64(block: &[u8; 64]) -> bool {
        use std::arch::wasm32::*;
        // SAFETY: each load reads 16 of the 64 bytes; v128_load allows any alignment.
        unsafe {
            let p = block.as_ptr().cast::<v128>();
            let any = v128_or(
                v128_or(v128_load(p), v128_load(p.add(1))),
                v128_or(v128_load(p.add(2)), v128_load(p.add(3))),
            );
            u8x16_bitmask(any) == 0
        }
    }

    #[cfg(not(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )))]
    pub fn is_ascii64(block: &[u8; 64]) -> bool {
        block.is_ascii()
    }

    /// Whether the CPU has AVX2, asked once.
    #[cfg(target_arch = "x86_64")]
    pub fn has_avx2() -> bool {
        use std::sync::atomic::{AtomicU8, Ordering};
        static LEVEL: AtomicU8 = AtomicU8::new(0);
        match LEVEL.load(Ordering::Relaxed) {
            1 => false,
            2 => true,
            _ => {
                let yes = std::is_x86_feature_detected!("avx2");
                LEVEL.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                yes
            }
        }
    }

    /// The first string-stop byte, 32 bytes at a time.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1")]
    pub unsafe fn find_stop_avx2(bytes: &[u8]) -> Option<usize> {
        use std::arch::x86_64::*;
        let quote = _mm256_set1_epi8(b'"' as i8);
        let backslash = _mm256_set1_epi8(b'\\' as i8);
        let control = _mm256_set1_epi8(0x1f);
        let mut at = 0;
        while let Some(chunk) = bytes.get(at..at + 32) {
            // SAFETY: an unaligned load of exactly the 32 bytes of `chunk`.
            let v = unsafe { _mm256_loadu_si256(chunk.as_ptr().cast::<__m256i>()) };
            let stops = _mm256_or_si256(
                _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, backslash)),
                // v <= 0x1f (unsigned) exactly when min(v, 0x1f) == v.
                _mm256_cmpeq_epi8(_mm256_min_epu8(v, control), v),
            );
            let hits = _mm256_movemask_epi8(stops) as u32;
            if hits != 0 {
                return Some(at + hits.trailing_zeros() as usize);
            }
            at += 32;
        }
        super::find_string_stop_swar(bytes.get(at..)?).map(|p| at + p)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub fn stops16(block: &[u8; 16]) -> u32 {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86-64 baseline; the load reads exactly the 16 bytes of
        // `block` and allows any alignment.
        unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // v <= 0x1f (unsigned) exactly when min(v, 0x1f) == v.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
        }
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    pub fn stops16(block: &[u8; 16]) -> u32 {
        use std::arch::wasm32::*;
        // SAFETY: the load reads exactly the 16 bytes of `block`; v128_load allows any alignment.
        let v = unsafe { v128_load(block.as_ptr().cast::<v128>()) };
        let quote = u8x16_eq(v, u8x16_splat(b'"'));
        let backslash = u8x16_eq(v, u8x16_splat(b'\\'));
        let control = u8x16_lt(v, u8x16_splat(0x20));
        u32::from(u8x16_bitmask(v128_or(v128_or(quote, backslash), control)))
    }

    #[cfg(not(any(
        target_arch = "x86_64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )))]
    pub fn stops16(block: &[u8; 16]) -> u32 {
        match super::find_string_stop_swar(block) {
            Some(i) => 1 << i,
            None => 0,
        }
    }
}

// The scanner's small steps are forced inline: in Envoy's V8 a wasm call per string costs more
// than scanning the string (measured: 32 KB event 55 -> 20 us, 63 KB batch 150 -> 60 us).
impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Self {
        Scanner {
            buf: text.as_bytes(),
            pos: 0,
            depth: 0,
        }
    }

    /// Byte offset of the cursor.
    pub fn pos(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline(always)]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Skips white space and returns the next byte, without consuming it.
    pub fn peek_token(&mut self) -> Option<u8> {
        self.skip_ws();
        self.peek()
    }

    /// True when only white space is left.
    pub fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.buf.len()
    }

    #[inline(always)]
    fn eat(&mut self, b: u8) -> Result<(), Invalid> {
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// Consumes `{`; returns false for an empty object (its `}` consumed too).
    pub fn object_start(&mut self) -> Result<bool, Invalid> {
        self.eat(b'{')?;
        self.enter(b'}')
    }

    /// Reads a member's key and its colon.
    #[inline(always)]
    pub fn key(&mut self) -> Result<Str<'a>, Invalid> {
        self.skip_ws();
        let k = self.string()?;
        self.eat(b':')?;
        Ok(k)
    }

    /// Reads a member's key and its colon, the cursor at the key's opening quote.
    #[inline(always)]
    fn key_after_quote(&mut self) -> Result<(), Invalid> {
        self.pos += 1;
        self.string_rest()?;
        self.eat(b':')
    }

    /// After a member's value: true if another member follows (comma consumed), false at `}`.
    #[inline(always)]
    pub fn object_more(&mut self) -> Result<bool, Invalid> {
        self.more(b'}')
    }

    /// Consumes `[`; returns false for an empty array (its `]` consumed too).
    pub fn array_start(&mut self) -> Result<bool, Invalid> {
        self.eat(b'[')?;
        self.enter(b']')
    }

    /// Just after a container's opening bracket: false if it is empty (`close` consumed too),
    /// else the reading is now inside it.
    fn enter(&mut self, close: u8) -> Result<bool, Invalid> {
        if self.depth >= MAX_DEPTH {
            return Err(Invalid);
        }
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(false);
        }
        self.depth += 1;
        Ok(true)
    }

    /// After an element: true if another element follows (comma consumed), false at `]`.
    #[inline(always)]
    pub fn array_more(&mut self) -> Result<bool, Invalid> {
        self.more(b']')
    }

    #[inline(always)]
    fn more(&mut self, close: u8) -> Result<bool, Invalid> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                self.depth = self.depth.saturating_sub(1);
                Ok(false)
            }
            _ => Err(Invalid),
        }
    }

    /// Reads a string value (leading white space allowed).
    #[inline(always)]
    pub fn string(&mut self) -> Result<Str<'a>, Invalid> {
        self.eat(b'"')?;
        self.string_rest()
    }

    /// Reads the rest of a string whose opening quote was just consumed.
    #[inline(always)]
    fn string_rest(&mut self) -> Result<Str<'a>, Invalid> {
        let start = self.pos;
        let mut escaped = false;
        loop {
            let rest = self.buf.get(self.pos..).ok_or(Invalid)?;
            let run = find_string_stop(rest).ok_or(Invalid)?;
            self.pos += run;
            match self.peek() {
                Some(b'"') => {
                    let raw = self.buf.get(start..self.pos).ok_or(Invalid)?;
                    self.pos += 1;
                    return Ok(Str { raw, escaped });
                }
                Some(b'\\') => {
                    escaped = true;
                    self.pos = escape_end(self.buf, self.pos + 1)?;
                }
                _ => return Err(Invalid),
            }
        }
    }

    /// Reads a value; true only if it is the literal `true`.
    pub fn value_is_true(&mut self) -> Result<bool, Invalid> {
        self.skip_ws();
        if self.peek() == Some(b't') {
            self.literal(b"true")?;
            return Ok(true);
        }
        self.skip_value()?;
        Ok(false)
    }

    /// Reads `true`, `false` or `null`: `Some(bool)`, or `None` for null.
    pub fn literal_word(&mut self) -> Result<Option<bool>, Invalid> {
        self.skip_ws();
        match self.peek() {
            Some(b't') => self.literal(b"true").map(|()| Some(true)),
            Some(b'f') => self.literal(b"false").map(|()| Some(false)),
            Some(b'n') => self.literal(b"null").map(|()| None),
            _ => Err(Invalid),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Invalid> {
        if self.buf.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    #[inline(always)]
    fn digits(&mut self) -> Result<(), Invalid> {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        if self.pos == start {
            Err(Invalid)
        } else {
            Ok(())
        }
    }

    #[inline(always)]
    fn number(&mut self) -> Result<(), Invalid> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits()?,
            _ => return Err(Invalid),
        }
        // Up to 308 integer digits and no exponent, a number is below 1e308: in range.
        let mut may_overflow = self.pos - int_start > 308;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.digits()?;
            may_overflow = true;
        }
        if may_overflow {
            self.in_range(start)?;
        }
        Ok(())
    }

    /// A number too large for a double (`1e999`) is refused: Go's and serde_json's readers
    /// refuse it, Python's and JavaScript's read infinity. Decided from the digits, exactly, without
    /// a float parser (which would add a fifth to the wasm module). Rare: a cold path.
    #[cold]
    fn in_range(&self, start: usize) -> Result<(), Invalid> {
        let text = self.buf.get(start..self.pos).ok_or(Invalid)?;
        let text = text.strip_prefix(b"-").unwrap_or(text);
        let split = |t: &'a [u8], at: Option<usize>| match at {
            Some(at) => (
                t.get(..at).unwrap_or_default(),
                t.get(at + 1..).unwrap_or_default(),
            ),
            None => (t, &b""[..]),
        };
        let (mantissa, exponent) = split(text, text.iter().position(|&b| b | 0x20 == b'e'));
        let (int, frac) = split(mantissa, mantissa.iter().position(|&b| b == b'.'));
        let (negative, exponent) = match exponent {
            [b'-', rest @ ..] => (true, rest),
            [b'+', rest @ ..] => (false, rest),
            rest => (false, rest),
        };
        // Saturates far beyond any double's range; the digits were validated already.
        let exponent = exponent.iter().fold(0i64, |e, &d| {
            (e * 10 + i64::from(d.wrapping_sub(b'0'))).min(1 << 40)
        });
        let exponent = if negative { -exponent } else { exponent };
        let digits = int.iter().chain(frac).copied();
        let zeros = digits.clone().take_while(|&d| d == b'0').count();
        if zeros == int.len() + frac.len() {
            return Ok(()); // zero, whatever its exponent
        }
        // The power of ten of the first significant digit.
        let magnitude = int.len() as i64 - 1 - zeros as i64 + exponent;
        match magnitude.cmp(&308) {
            Ordering::Less => Ok(()),
            Ordering::Greater => Err(Invalid),
            Ordering::Equal => {
                // A double rounds to infinity from 2^1024 - 2^970 (halfway past the largest
                // double) up: compare the significant digits with that number's.
                let mut significant = digits.skip(zeros);
                for &limit in ROUNDS_TO_INFINITY {
                    match significant.next().unwrap_or(b'0').cmp(&limit) {
                        Ordering::Less => return Ok(()),
                        Ordering::Greater => return Err(Invalid),
                        Ordering::Equal => {}
                    }
                }
                Err(Invalid)
            }
        }
    }

    /// Reads a number and returns its text.
    pub fn number_text(&mut self) -> Result<&'a str, Invalid> {
        self.skip_ws();
        let start = self.pos;
        self.number()?;
        let raw = self.buf.get(start..self.pos).ok_or(Invalid)?;
        std::str::from_utf8(raw).map_err(|_| Invalid)
    }

    /// Reads a scalar that is not a string or number: `true`, `false` or `null`.
    fn word(&mut self) -> Result<(), Invalid> {
        match self.peek() {
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => Err(Invalid),
        }
    }

    /// Reads a number, `true`, `false` or `null`.
    #[inline(always)]
    fn scalar(&mut self) -> Result<(), Invalid> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.word(),
        }
    }

    /// Validates and skips one value of any kind, token by token; natively, the rest of an
    /// object or array that proves large (over [`HAND_OVER_AFTER`] bytes) 64 bytes at a time
    /// (`blocks`), which pays from about there on.
    #[inline]
    pub fn skip_value(&mut self) -> Result<(), Invalid> {
        // Most skipped values are strings and scalars: no container stack to set up for those.
        // Here rather than in `skip_any`, so that it is inlined into the caller (measured: 2-3%
        // slower on the batches as a call).
        self.skip_ws();
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                self.string_rest().map(|_| ())
            }
            Some(b'{' | b'[') => self.skip_value_handing_over_after(HAND_OVER_AFTER),
            _ => self.scalar(),
        }
    }

    /// [`Scanner::skip_value`], handing a container over to the block-wise reading once `bytes`
    /// of it have been read token by token (natively; for the tests, which try every distance).
    #[doc(hidden)]
    pub fn skip_value_handing_over_after(&mut self, bytes: usize) -> Result<(), Invalid> {
        // On a copy: nothing else can see the cursor, so it stays in a register.
        let mut s = Scanner {
            buf: self.buf,
            pos: self.pos,
            depth: self.depth,
        };
        let skipped = s.skip_any(bytes);
        self.pos = s.pos;
        skipped
    }

    /// The object or array at the cursor (after white space) skipped by every block-wise
    /// implementation the CPU can run; the cursor does not move. For the tests.
    #[cfg(not(target_arch = "wasm32"))]
    #[doc(hidden)]
    pub fn skip_container_everywhere(&mut self) -> Vec<(&'static str, Result<usize, Invalid>)> {
        self.skip_ws();
        blocks::skip_container_everywhere(self.buf, self.pos)
    }

    /// Validates and skips one value token by token: the reading that [`Scanner::skip_value`]'s
    /// block-wise skipping is held to in the tests.
    pub fn skip_value_stepwise(&mut self) -> Result<(), Invalid> {
        self.skip_value_handing_over_after(usize::MAX)
    }

    /// Token by token; natively, inside a container, from `hand_over` bytes on block-wise.
    #[inline(always)]
    fn skip_any(&mut self, hand_over: usize) -> Result<(), Invalid> {
        let mut open = BitStack::default();
        // How many containers this value may nest (itself included).
        let room = MAX_DEPTH.saturating_sub(self.depth);
        #[cfg(not(target_arch = "wasm32"))]
        let start = self.pos;
        #[cfg(target_arch = "wasm32")]
        let _ = hand_over;
        loop {
            // One value starts here.
            #[cfg(not(target_arch = "wasm32"))]
            if self.pos - start >= hand_over && open.len > 0 {
                self.pos = blocks::skip_rest(self.buf, self.pos, &open.bits, open.len, room)?;
                return Ok(());
            }
            self.skip_ws();
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    self.string_rest()?;
                }
                Some(b'{') => {
                    if open.len >= room {
                        return Err(Invalid);
                    }
                    self.pos += 1;
                    self.skip_ws();
                    match self.peek() {
                        Some(b'}') => self.pos += 1,
                        Some(b'"') => {
                            open.push(OBJECT)?;
                            self.key_after_quote()?;
                            continue;
                        }
                        _ => return Err(Invalid),
                    }
                }
                Some(b'[') => {
                    if open.len >= room {
                        return Err(Invalid);
                    }
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        open.push(ARRAY)?;
                        continue;
                    }
                }
                _ => self.scalar()?,
            }
            // A value ended: close every container that ends with it.
            loop {
                let Some(kind) = open.top() else {
                    return Ok(());
                };
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if kind == OBJECT {
                            self.skip_ws();
                            if self.peek() != Some(b'"') {
                                return Err(Invalid);
                            }
                            self.key_after_quote()?;
                        }
                        break;
                    }
                    Some(b'}') if kind == OBJECT => self.pos += 1,
                    Some(b']') if kind == ARRAY => self.pos += 1,
                    _ => return Err(Invalid),
                }
                open.pop();
            }
        }
    }
}

const OBJECT: bool = true;
const ARRAY: bool = false;

/// A stack of container kinds, one bit each, bounded by [`MAX_DEPTH`].
#[derive(Default)]
struct BitStack {
    bits: [u64; MAX_DEPTH / 64],
    len: usize,
}

impl BitStack {
    fn push(&mut self, kind: bool) -> Result<(), Invalid> {
        let word = self.bits.get_mut(self.len / 64).ok_or(Invalid)?;
        let mask = 1u64 << (self.len % 64);
        if kind {
            *word |= mask;
        } else {
            *word &= !mask;
        }
        self.len += 1;
        Ok(())
    }

    fn top(&self) -> Option<bool> {
        let i = self.len.checked_sub(1)?;
        let word = self.bits.get(i / 64)?;
        Some(word & (1u64 << (i % 64)) != 0)
    }

    fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }
}

/// Validates one escape sequence that starts at `pos` (just after its backslash), surrogate
/// pairs included; returns where it ends. A free function over the buffer and an offset, so that
/// the scanner calling it keeps its cursor in a register.
#[inline(never)] // rare: keeps the inlined string loop small
fn escape_end(buf: &[u8], mut pos: usize) -> Result<usize, Invalid> {
    let hex4 = |at: usize| -> Result<u32, Invalid> {
        let digits = buf.get(at..at + 4).ok_or(Invalid)?;
        digits
            .iter()
            .try_fold(0u32, |v, &d| Some(v * 16 + (d as char).to_digit(16)?))
            .ok_or(Invalid)
    };
    match buf.get(pos) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(pos + 1),
        Some(b'u') => {
            let unit = hex4(pos + 1)?;
            pos += 5;
            match unit {
                0xD800..=0xDBFF => {
                    // A high surrogate must be followed by an escaped low surrogate.
                    if buf.get(pos..pos + 2) != Some(b"\\u") {
                        return Err(Invalid);
                    }
                    match hex4(pos + 2)? {
                        0xDC00..=0xDFFF => Ok(pos + 6),
                        _ => Err(Invalid),
                    }
                }
                0xDC00..=0xDFFF => Err(Invalid),
                _ => Ok(pos),
            }
        }
        _ => Err(Invalid),
    }
}

/// Decodes a string body whose escapes were already validated by [`Scanner::string`].
fn unescape(raw: &[u8]) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let simple = match raw.get(i + 1) {
            Some(b'b') => Some(0x08),
            Some(b'f') => Some(0x0c),
            Some(b'n') => Some(b'\n'),
            Some(b'r') => Some(b'\r'),
            Some(b't') => Some(b'\t'),
            Some(b'u') => None,
            Some(&other) => Some(other),
            None => break,
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
            continue;
        }
        let hex = |at: usize| -> u32 {
            raw.get(at..at + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .unwrap_or(0xFFFD)
        };
        let mut code = hex(i + 2);
        i += 6;
        if (0xD800..0xDC00).contains(&code) {
            let low = hex(i + 2);
            code = 0x10000 + ((code - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF);
            i += 6;
        }
        let ch = char::from_u32(code).unwrap_or('\u{FFFD}');
        let mut utf8 = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends `s` to `out` as a JSON string literal (quotes included).
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(text: &str) -> bool {
        let mut s = Scanner::new(text);
        s.skip_value().is_ok() && s.at_end()
    }

    #[test]
    fn accepts_valid_json() {
        for text in [
            "{}",
            "[]",
            "0",
            "-0.5e+10",
            "\"a\\u00e9\\ud83d\\ude00\"",
            " {\"a\": [1, {\"b\": null}, true, false, \"x\"]} ",
            "[[[[[]]]]]",
            "{\"\":\"\"}",
        ] {
            assert!(valid(text), "{text}");
        }
    }

    #[test]
    fn rejects_invalid_json() {
        for text in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "[1,]",
            "[1 2]",
            "01",
            "1.",
            "1e",
            "-",
            ".5",
            "+1",
            "tru",
            "nul",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"a\nb\"",
            "\"unterminated",
            "{'a':1}",
            "{a:1}",
            "{} {}",
            "NaN",
        ] {
            assert!(!valid(text), "{text:?}");
        }
    }

    #[test]
    fn numbers_too_large_for_a_double_are_refused() {
        // Go and serde_json refuse these, Python and JavaScript read infinity: read two ways.
        let digits_309 = "2".repeat(309);
        for text in [
            "1e999",
            "-2e308",
            "66e666666666",
            "0.1e310",
            "1.8e308",
            digits_309.as_str(),
        ] {
            assert!(!valid(text), "{text}");
            assert!(!valid(&format!("{{\"a\":[{text}]}}")), "{text}");
        }
        let (nines_308, ones_309) = ("9".repeat(308), "1".repeat(309));
        for text in [
            "1e-999",
            "0e999",
            "1.7976931348623157e308",
            "-1e308",
            &nines_308,
            &ones_309,
        ] {
            assert!(valid(text), "{text}");
        }
    }

    #[test]
    fn utf8_is_decided_as_the_standard_check_decides_it() {
        // Text beyond ASCII (valid, cut, or stray) at every place around the 64-byte steps.
        let pieces: [&[u8]; 7] = [
            "é".as_bytes(),
            "😀".as_bytes(),
            b"\x80",
            b"\xc3",
            b"\xf0\x9f\x98",
            b"\xed\xa0\x80", // a surrogate's encoding
            b"\xff",
        ];
        for len in [0, 1, 63, 64, 65, 127, 128, 200] {
            let base = vec![b'a'; len];
            assert_eq!(utf8(&base), std::str::from_utf8(&base).ok());
            for at in 0..=len {
                for piece in pieces {
                    let mut bytes = base.clone();
                    bytes.splice(at..at, piece.iter().copied());
                    assert_eq!(
                        utf8(&bytes).is_some(),
                        std::str::from_utf8(&bytes).is_ok(),
                        "{piece:?} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        let ok = "[".repeat(MAX_DEPTH) + "0" + &"]".repeat(MAX_DEPTH);
        assert!(valid(&ok));
        let deep = "[".repeat(MAX_DEPTH + 1) + "0" + &"]".repeat(MAX_DEPTH + 1);
        assert!(!valid(&deep));
        let hostile = "[".repeat(1_000_000);
        assert!(!valid(&hostile));
    }

    #[test]
    fn finds_string_stops_like_the_byte_table() {
        let mut text: Vec<u8> = (0u8..=255).collect();
        text.extend((0u8..=255).rev());
        for start in 0..text.len() {
            for len in [0, 1, 7, 8, 9, 17, 64] {
                let slice = &text[start..(start + len).min(text.len())];
                let expected = slice.iter().position(|&b| is_string_stop(b));
                assert_eq!(find_string_stop(slice), expected, "{slice:?}");
            }
        }
        let plain = b"abcdefghijklmnopqrstuvwxyz \xe2\x80\x94 ABCDEFGH\"";
        assert_eq!(find_string_stop(plain), Some(plain.len() - 1));
        // Long strings take the 32-byte path (AVX2 where the CPU has it): every offset.
        for stop in [b'"', b'\\', b'\n', 0x1f] {
            for at in 0..300 {
                let mut long = vec![b'x'; 320];
                long[at] = stop;
                assert_eq!(find_string_stop(&long), Some(at), "{stop} at {at}");
            }
        }
        assert_eq!(find_string_stop(&[b'x'; 320]), None);
    }

    #[test]
    fn compares_bytes_as_slices_do() {
        let text: Vec<u8> = (0u8..40).collect();
        for len in 0..text.len() {
            let a = &text[..len];
            assert!(same_bytes(a, a), "{len}");
            assert!(!same_bytes(a, &text[..len + 1]), "{len}");
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_bytes(a, &b), "{len} {at}");
            }
        }
    }

    #[test]
    fn decodes_escaped_strings() {
        let mut s = Scanner::new(r#""Adv\u0065rtising \"q\" \\ \/ \n \ud83d\ude00""#);
        let st = s.string().unwrap();
        assert_eq!(st.decode(), "Advertising \"q\" \\ / \n \u{1F600}");
        let mut s = Scanner::new(r#""Adv\u0065rtising""#);
        let st = s.string().unwrap();
        assert!(st.eq_str("Advertising"));
        assert!(!st.eq_str("advertising"));
        assert_eq!(st.position_in(&["X".into(), "Advertising".into()]), Some(1));
    }

    #[test]
    fn writes_escaped_strings() {
        let mut out = String::new();
        write_string(&mut out, "a\"b\\c\n\u{1}");
        assert_eq!(out, r#""a\"b\\c\n\u0001""#);
    }
}
