//! Skipping an object or array 64 bytes at a time.
//!
//! Reading a body token by token costs about ten cycles a token (a load, compares and branches
//! per token, a SIMD probe and a bit scan per string), and an event is a token every six or seven
//! bytes. Here each 64-byte block is first classified with SIMD into bit masks (quotes,
//! backslashes, control characters, brackets, colons, commas, white space), and the grammar is
//! then checked on the masks, 64 bytes per step (measured on a 32 KB event: about 3.3 GB/s with
//! AVX-512 against 2.3 token by token):
//!
//! - strings: the quotes not escaped by an odd run of backslashes open and close strings (a
//!   prefix XOR gives every byte inside one); no control character inside, no backslash outside,
//!   and every escaped character is a valid escape (`\u` ones through [`super::escape_end`]);
//! - brackets are walked one by one (they are few) on a stack of their kinds, which also tells
//!   whether each comma separates members or elements, and where the value ends;
//! - every token's successor (the next byte that is not white space, found with one addition
//!   that carries across white space) must be one the token allows: after `{` a key or `}`,
//!   after a key `:`, after `:` a value, after a value `,` or a closing bracket, after a comma a
//!   key (in an object) or a value (in an array), after `[` a value or `]`. A string is a key when
//!   it starts where a key must start (the same carrying addition takes that mark to its end);
//! - whatever else is outside strings is a number or `true`/`false`/`null`, read by the
//!   token-by-token scanner's own functions, and must end where the run of such bytes ends.
//!
//! The token-by-token reading hands a container over once it has read [`super::HAND_OVER_AFTER`]
//! bytes of it (smaller ones are as fast token by token, with nothing to set up), at a place where
//! a value is due, with the kinds of the containers still open. The block-wise reading accepts
//! exactly what the token-by-token one ([`super::Scanner::skip_value_stepwise`]) accepts, depth
//! limit included: `tests/skipping.rs` and the `json_skip` fuzz target hold the two to that.

use super::{escape_end, Invalid, Scanner, MAX_DEPTH};

/// One 64-byte block's bytes by class, bit `i` for byte `i`.
#[derive(Clone, Copy, Default)]
struct Classes {
    quote: u64,
    backslash: u64,
    /// Bytes below 0x20.
    control: u64,
    /// `{` and `[`.
    open: u64,
    /// `}` and `]`.
    close: u64,
    colon: u64,
    comma: u64,
    /// Space, tab, line feed, carriage return.
    space: u64,
}

/// What one block hands to the next.
#[derive(Default)]
struct Carry {
    /// All ones when the block before ended inside a string.
    in_string: u64,
    /// 1 when the block before ended with an odd run of backslashes.
    escaped: u64,
    /// 1 when the block before ended inside a number or literal.
    scalar: u64,
    /// 1 when the block before ended inside a key (its end is then in a later block).
    key: u64,
    /// 1 per rule when a token of the block before still awaits its successor.
    after_value_list: u64,
    after_array_open: u64,
    after_object_open: u64,
    after_object_comma: u64,
    after_key: u64,
    after_value: u64,
}

/// The open containers' kinds (one bit each, 1 for an object), their number, and how many may
/// be open at once.
struct Stack {
    kinds: [u64; MAX_DEPTH / 64 + 1],
    depth: usize,
    room: usize,
}

impl Stack {
    fn empty(room: usize) -> Self {
        Stack {
            kinds: [0; MAX_DEPTH / 64 + 1],
            depth: 0,
            room: room.min(MAX_DEPTH),
        }
    }

    fn top_is_object(&self) -> bool {
        let Some(i) = self.depth.checked_sub(1) else {
            return false;
        };
        self.kinds
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }
}

/// Skips the rest of the containers that are open at `at`, where a value is due (after `[`, a
/// comma in an array, or a key's colon), read that far token by token: `kinds` holds their kinds
/// (bit `i` for the `i`-th from the outside, 1 for an object), `depth` their number, `room` how
/// many may be open at once (empty ones count). Returns where the outermost one ends.
pub fn skip_rest(
    buf: &[u8],
    at: usize,
    kinds: &[u64; MAX_DEPTH / 64],
    depth: usize,
    room: usize,
) -> Result<usize, Invalid> {
    let mut stack = Stack::empty(room);
    for (to, from) in stack.kinds.iter_mut().zip(kinds) {
        *to = *from;
    }
    stack.depth = depth;
    let carry = Carry {
        after_value_list: 1,
        ..Carry::default()
    };
    dispatch(buf, at, stack, carry)
}

fn dispatch(buf: &[u8], start: usize, stack: Stack, carry: Carry) -> Result<usize, Invalid> {
    #[cfg(target_arch = "x86_64")]
    match x86::level() {
        // SAFETY: the CPU has what each one needs (checked by `level`).
        x86::Level::Avx512 => return unsafe { x86::skip_avx512(buf, start, stack, carry) },
        x86::Level::Avx2 => return unsafe { x86::skip_avx2(buf, start, stack, carry) },
        x86::Level::Baseline => {}
    }
    skip::<Portable>(buf, start, stack, carry)
}

/// Every block-wise implementation this CPU can run, by name, on the same input (for the tests,
/// which hold each one to the token-by-token reading).
pub fn skip_container_everywhere(
    buf: &[u8],
    start: usize,
) -> Vec<(&'static str, Result<usize, Invalid>)> {
    let fresh = || (Stack::empty(MAX_DEPTH), Carry::default());
    let (stack, carry) = fresh();
    #[allow(unused_mut)] // pushed to on x86-64 only
    let mut results = vec![("portable", skip::<Portable>(buf, start, stack, carry))];
    #[cfg(target_arch = "x86_64")]
    {
        let level = x86::level();
        if level != x86::Level::Baseline {
            // SAFETY: the CPU has AVX2 and PCLMULQDQ.
            let (stack, carry) = fresh();
            results.push(("avx2", unsafe { x86::skip_avx2(buf, start, stack, carry) }));
        }
        if level == x86::Level::Avx512 {
            // SAFETY: the CPU has AVX-512 F and BW besides.
            let (stack, carry) = fresh();
            results.push(("avx512", unsafe {
                x86::skip_avx512(buf, start, stack, carry)
            }));
        }
    }
    results
}

/// How a build classifies a block and takes a prefix XOR.
trait Simd {
    fn classify(block: &[u8; 64]) -> Classes;
    /// Bit `i` of the result is the XOR of bits `0..=i` of `x`.
    fn prefix_xor(x: u64) -> u64;
}

#[inline(always)]
fn skip<S: Simd>(
    buf: &[u8],
    start: usize,
    mut stack: Stack,
    mut carry: Carry,
) -> Result<usize, Invalid> {
    // Escapes up to here were read whole (a `\u` high surrogate takes its low one with it).
    let mut escapes_read_to = 0usize;
    let mut base = start;
    // Each block is classified one round ahead of its checks, so that the CPU can work on the
    // next block's masks while this one's brackets are walked. (One call site, so that the
    // classification is inlined: the first round only classifies.)
    let mut pending: Option<Classified> = None;
    // Whether the innermost open container is an object.
    let mut in_object = stack.top_is_object();
    let mut ahead = start;
    loop {
        let classified = match ahead < buf.len() {
            true => Some(strings::<S>(buf, ahead, &mut carry)?),
            false => None,
        };
        ahead += 64;
        let Some(Classified {
            c,
            escaped,
            in_string,
        }) = std::mem::replace(&mut pending, classified)
        else {
            if pending.is_none() {
                return Err(Invalid); // the input ended inside the container
            }
            continue;
        };
        let string_open = c.quote & !escaped & in_string;
        let string_close = c.quote & !escaped & !in_string;

        // Brackets, one by one: where the value ends, and which commas are in an object.
        let open = c.open & !in_string;
        let close = c.close & !in_string;
        let mut object_span = 0u64;
        let mut open_object = 0u64;
        let mut end = None;
        let mut from = 0u32;
        let mut brackets = open | close;
        while brackets != 0 {
            let at = brackets.trailing_zeros();
            brackets &= brackets - 1;
            if in_object {
                object_span |= span(from, at);
            }
            from = at;
            let byte = buf.get(base + at as usize).copied().ok_or(Invalid)?;
            if byte == b'{' || byte == b'[' {
                in_object = byte == b'{';
                if stack.depth >= stack.room {
                    return Err(Invalid);
                }
                let word = stack.kinds.get_mut(stack.depth / 64).ok_or(Invalid)?;
                let bit = 1u64 << (stack.depth % 64);
                *word = if in_object { *word | bit } else { *word & !bit };
                stack.depth += 1;
                if in_object {
                    open_object |= 1u64 << at;
                }
            } else {
                if stack.depth == 0 || in_object != (byte == b'}') {
                    return Err(Invalid);
                }
                stack.depth -= 1;
                if stack.depth == 0 {
                    end = Some(at);
                    break;
                }
                in_object = stack.top_is_object();
            }
        }
        if end.is_none() && in_object {
            object_span |= span(from, 64);
        }
        // Only this value's bytes count: up to and including its closing bracket (a separate
        // copy of the checks for that last block keeps the others free of the limit).
        let strings = Strings {
            in_string,
            open: string_open,
            close: string_close,
        };
        let brackets = Brackets {
            open,
            close,
            open_object,
            object_span,
        };
        let (within, scalar) = match end {
            None if c.space & !in_string == 0 => (
                !0,
                grammar::<false>(&c, &strings, &brackets, !0, !0, &mut carry)?,
            ),
            None => (
                !0,
                grammar::<true>(&c, &strings, &brackets, !0, !0, &mut carry)?,
            ),
            Some(at) => {
                let within = span(0, at + 1);
                let scalar =
                    grammar::<true>(&c, &strings, &brackets, within, span(0, at), &mut carry)?;
                (within, scalar)
            }
        };
        let scalar_start = scalar.start;
        let scalar = scalar.all;

        // The rare bytes, one by one: escapes, numbers and literals.
        // An escaped quote is always a valid escape, and is the common one.
        let mut escapes = escaped & !c.quote & within;
        while escapes != 0 {
            let at = base + escapes.trailing_zeros() as usize;
            escapes &= escapes - 1;
            if at < escapes_read_to {
                continue; // the low half of a surrogate pair, read with its high half
            }
            escapes_read_to = escape_end(buf, at)?;
        }
        let mut scalars = scalar_start;
        while scalars != 0 {
            let at = scalars.trailing_zeros();
            scalars &= scalars - 1;
            // The run of number or literal bytes, when it ends inside this block.
            let len = (!(scalar >> at)).trailing_zeros();
            let run = buf.get(base + at as usize..base + (at + len) as usize);
            match run {
                Some(run) if at + len < 64 && scalar_run(run) => {}
                _ => scalar_at(buf, base + at as usize)?,
            }
        }

        if let Some(at) = end {
            return Ok(base + at as usize + 1);
        }
        base += 64;
    }
}

/// A block's classes, with the bytes escaped by backslashes and those inside strings.
struct Classified {
    c: Classes,
    escaped: u64,
    /// From each string's opening quote up to (not including) its closing one.
    in_string: u64,
}

/// Classifies the block at `base` (the input's last bytes padded with white space).
#[inline(always)]
fn strings<S: Simd>(buf: &[u8], base: usize, carry: &mut Carry) -> Result<Classified, Invalid> {
    let c = match buf.get(base..base + 64).map(<&[u8; 64]>::try_from) {
        Some(Ok(block)) => S::classify(block),
        _ => classify_tail::<S>(buf.get(base..).ok_or(Invalid)?),
    };
    let escaped = escaped_bytes(c.backslash, &mut carry.escaped);
    let in_string = S::prefix_xor(c.quote & !escaped) ^ carry.in_string;
    carry.in_string = ((in_string as i64) >> 63) as u64;
    Ok(Classified {
        c,
        escaped,
        in_string,
    })
}

/// Classifies the input's last bytes, padded with white space.
#[inline(never)]
fn classify_tail<S: Simd>(rest: &[u8]) -> Classes {
    let mut padded = [b' '; 64];
    for (to, from) in padded.iter_mut().zip(rest) {
        *to = *from;
    }
    S::classify(&padded)
}

/// A block's strings.
struct Strings {
    /// From each string's opening quote up to (not including) its closing one.
    in_string: u64,
    open: u64,
    close: u64,
}

/// A block's brackets outside strings.
struct Brackets {
    open: u64,
    close: u64,
    /// The `{` among `open`.
    open_object: u64,
    /// The bytes whose innermost container is an object.
    object_span: u64,
}

/// A block's numbers and literals: all their bytes, and where each starts.
struct Scalars {
    all: u64,
    start: u64,
}

/// Checks every token's successor in one block, up to `within` (`before_end`: the same without
/// the value's own closing bracket, whose successor is not its business). `SPACED` is false for
/// a block with no white space outside strings (compact JSON, the usual body): each successor is
/// then the very next byte, and the carrying additions fold away (an event about 7% faster).
#[inline(always)]
fn grammar<const SPACED: bool>(
    c: &Classes,
    strings: &Strings,
    brackets: &Brackets,
    within: u64,
    before_end: u64,
    carry: &mut Carry,
) -> Result<Scalars, Invalid> {
    let space = match SPACED {
        true => c.space & !strings.in_string,
        false => 0,
    };
    let colon = c.colon & !strings.in_string & within;
    let comma = c.comma & !strings.in_string & within;
    let scalar = !(strings.in_string
        | strings.close
        | brackets.open
        | brackets.close
        | c.colon
        | c.comma
        | space)
        & within;
    let scalar_start = scalar & !((scalar << 1) | carry.scalar);
    let after_scalar = ((scalar << 1) | carry.scalar) & !scalar & within;
    carry.scalar = scalar >> 63;
    let value_start = brackets.open | strings.open | scalar_start;

    let mut bad = (c.control & strings.in_string) | (c.backslash & !strings.in_string);

    // The successors, rule by rule.
    let (after, next) = successors(
        colon | (comma & !brackets.object_span),
        carry.after_value_list,
        space,
    );
    carry.after_value_list = next;
    bad |= after & !value_start;
    let (after, next) = successors(
        brackets.open & within & !brackets.open_object,
        carry.after_array_open,
        space,
    );
    carry.after_array_open = next;
    bad |= after & !(value_start | brackets.close);
    let (after_object_open, next) =
        successors(brackets.open_object, carry.after_object_open, space);
    carry.after_object_open = next;
    bad |= after_object_open & !(strings.open | brackets.close);
    let (after_object_comma, next) = successors(
        comma & brackets.object_span,
        carry.after_object_comma,
        space,
    );
    carry.after_object_comma = next;
    bad |= after_object_comma & !strings.open;
    // A key's opening quote, carried to its closing one.
    let key_start = (after_object_open | after_object_comma) & strings.open;
    let (sum, overflow) = (key_start | carry.key).overflowing_add(strings.in_string);
    carry.key = u64::from(overflow);
    let key_end = sum & !strings.in_string & strings.close;
    let (after, next) = successors(key_end, carry.after_key, space);
    carry.after_key = next;
    bad |= after & !colon;
    let value_end = (strings.close & !key_end) | (brackets.close & before_end);
    let (after, next) = successors_of(
        (value_end << 1) | after_scalar,
        value_end >> 63,
        carry.after_value,
        space,
    );
    carry.after_value = next;
    bad |= after & !(comma | brackets.close);

    if bad & within != 0 {
        return Err(Invalid);
    }
    Ok(Scalars {
        all: scalar,
        start: scalar_start,
    })
}

/// Bits `from..to` (both at most 64).
#[inline(always)]
fn span(from: u32, to: u32) -> u64 {
    let below = |n: u32| 1u64.checked_shl(n).map_or(!0, |b| b - 1);
    below(to) & !below(from)
}

/// Where the tokens ending at the bits of `ends` are followed by their successor (the next byte
/// that is not `space`), and the carry for the next block.
#[inline(always)]
fn successors(ends: u64, carry_in: u64, space: u64) -> (u64, u64) {
    successors_of(ends << 1, ends >> 63, carry_in, space)
}

/// As [`successors`], from the bytes just after the tokens (`next`) and whether one token's
/// next byte is in the following block (`past`).
#[inline(always)]
fn successors_of(next: u64, past: u64, carry_in: u64, space: u64) -> (u64, u64) {
    // Adding a bit at the start of a run of white space carries it to the run's end.
    let (sum, overflow) = (next | carry_in).overflowing_add(space);
    (sum & !space, past | u64::from(overflow))
}

/// The bytes escaped by an odd run of backslashes (simdjson's odd-backslash-sequence method).
#[inline(always)]
fn escaped_bytes(backslash: u64, carry: &mut u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    if backslash == 0 {
        let escaped = *carry;
        *carry = 0;
        return escaped;
    }
    let starts = backslash & !(backslash << 1);
    let even_start_mask = EVEN ^ *carry;
    let even_starts = starts & even_start_mask;
    let odd_starts = starts & !even_start_mask;
    let even_carries = backslash.wrapping_add(even_starts);
    let (odd_carries, overflow) = backslash.overflowing_add(odd_starts);
    let odd_carries = odd_carries | *carry;
    *carry = u64::from(overflow);
    let even_carry_ends = even_carries & !backslash;
    let odd_carry_ends = odd_carries & !backslash;
    (even_carry_ends & !EVEN) | (odd_carry_ends & EVEN)
}

/// Whether a whole run of bytes is `true`, `false`, `null` or a number that needs no range
/// check (false also when it is a number that does: [`scalar_at`] then decides).
#[inline(always)]
fn scalar_run(run: &[u8]) -> bool {
    let digits = |from: usize| {
        run.get(from..)
            .map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count())
    };
    match run {
        b"true" | b"false" | b"null" => return true,
        [b'-', b'0'..=b'9', ..] | [b'0'..=b'9', ..] => {}
        _ => return false,
    }
    let int_start = usize::from(run.first() == Some(&b'-'));
    let int = digits(int_start);
    // No leading zero; up to 308 integer digits is in range.
    if (int > 1 && run.get(int_start) == Some(&b'0')) || int > 308 {
        return false;
    }
    let mut at = int_start + int;
    if run.get(at) == Some(&b'.') {
        let frac = digits(at + 1);
        if frac == 0 {
            return false;
        }
        at += 1 + frac;
    }
    at == run.len()
}

/// A number or literal starting at `at` must end where the bytes that can belong to one end.
#[inline(never)]
fn scalar_at(buf: &[u8], at: usize) -> Result<(), Invalid> {
    let mut s = Scanner {
        buf,
        pos: at,
        depth: 0,
    };
    s.scalar()?;
    match buf.get(s.pos) {
        None
        | Some(b' ' | b'\t' | b'\n' | b'\r' | b'{' | b'}' | b'[' | b']' | b':' | b',' | b'"') => {
            Ok(())
        }
        Some(_) => Err(Invalid),
    }
}

/// Sixteen bytes at a time (SSE2 on x86-64), or byte by byte.
struct Portable;

impl Simd for Portable {
    #[inline(always)]
    fn classify(block: &[u8; 64]) -> Classes {
        let mut c = Classes::default();
        for (i, chunk) in block.chunks_exact(16).enumerate() {
            let Ok(chunk) = <&[u8; 16]>::try_from(chunk) else {
                continue;
            };
            let part = lanes16::classify(chunk);
            let shift = 16 * i as u32;
            c.quote |= u64::from(part.quote) << shift;
            c.backslash |= u64::from(part.backslash) << shift;
            c.control |= u64::from(part.control) << shift;
            c.open |= u64::from(part.open) << shift;
            c.close |= u64::from(part.close) << shift;
            c.colon |= u64::from(part.colon) << shift;
            c.comma |= u64::from(part.comma) << shift;
            c.space |= u64::from(part.space) << shift;
        }
        c
    }

    #[inline(always)]
    fn prefix_xor(mut x: u64) -> u64 {
        x ^= x << 1;
        x ^= x << 2;
        x ^= x << 4;
        x ^= x << 8;
        x ^= x << 16;
        x ^= x << 32;
        x
    }
}

/// Sixteen bytes' classes, bit `i` for byte `i`.
mod lanes16 {
    #[derive(Default)]
    pub struct Classes16 {
        pub quote: u16,
        pub backslash: u16,
        pub control: u16,
        pub open: u16,
        pub close: u16,
        pub colon: u16,
        pub comma: u16,
        pub space: u16,
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub fn classify(chunk: &[u8; 16]) -> Classes16 {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86-64 baseline; the load reads exactly the 16 bytes of
        // `chunk` and allows any alignment.
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let eq = |b: u8| _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8))) as u16;
            // `{`/`[` and `}`/`]` differ only in 0x20.
            let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
            let folded_eq =
                |b: u8| _mm_movemask_epi8(_mm_cmpeq_epi8(folded, _mm_set1_epi8(b as i8))) as u16;
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            Classes16 {
                quote: eq(b'"'),
                backslash: eq(b'\\'),
                control: _mm_movemask_epi8(control) as u16,
                open: folded_eq(b'{'),
                close: folded_eq(b'}'),
                colon: eq(b':'),
                comma: eq(b','),
                space: eq(b' ') | eq(b'\t') | eq(b'\n') | eq(b'\r'),
            }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn classify(chunk: &[u8; 16]) -> Classes16 {
        let mut c = Classes16::default();
        for (i, &b) in chunk.iter().enumerate() {
            let bit = 1u16 << i;
            match b {
                b'"' => c.quote |= bit,
                b'\\' => c.backslash |= bit,
                b'{' | b'[' => c.open |= bit,
                b'}' | b']' => c.close |= bit,
                b':' => c.colon |= bit,
                b',' => c.comma |= bit,
                _ => {}
            }
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                c.space |= bit;
            }
            if b < 0x20 {
                c.control |= bit;
            }
        }
        c
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Carry, Classes, Invalid, Simd, Stack};
    use std::arch::x86_64::*;

    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Level {
        Baseline,
        /// AVX2 and carry-less multiplication.
        Avx2,
        /// Also AVX-512 with byte compares into mask registers.
        Avx512,
    }

    /// What the CPU offers, asked once.
    pub fn level() -> Level {
        use std::sync::atomic::{AtomicU8, Ordering};
        static LEVEL: AtomicU8 = AtomicU8::new(0);
        match LEVEL.load(Ordering::Relaxed) {
            1 => Level::Baseline,
            2 => Level::Avx2,
            3 => Level::Avx512,
            _ => {
                let avx2 = std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("pclmulqdq");
                let avx512 = avx2
                    && std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw");
                let (level, code) = match (avx512, avx2) {
                    (true, _) => (Level::Avx512, 3),
                    (false, true) => (Level::Avx2, 2),
                    _ => (Level::Baseline, 1),
                };
                LEVEL.store(code, Ordering::Relaxed);
                level
            }
        }
    }

    /// # Safety
    /// The CPU must have AVX2 and PCLMULQDQ.
    #[target_feature(enable = "avx2,pclmulqdq,bmi1")]
    pub unsafe fn skip_avx2(
        buf: &[u8],
        start: usize,
        stack: Stack,
        carry: Carry,
    ) -> Result<usize, Invalid> {
        super::skip::<Avx2>(buf, start, stack, carry)
    }

    /// # Safety
    /// The CPU must have AVX-512 F and BW, AVX2 and PCLMULQDQ.
    #[target_feature(enable = "avx512f,avx512bw,avx2,pclmulqdq,bmi1")]
    pub unsafe fn skip_avx512(
        buf: &[u8],
        start: usize,
        stack: Stack,
        carry: Carry,
    ) -> Result<usize, Invalid> {
        super::skip::<Avx512>(buf, start, stack, carry)
    }

    struct Avx512;

    impl Simd for Avx512 {
        #[inline(always)]
        fn classify(block: &[u8; 64]) -> Classes {
            // SAFETY: only reached from `skip_avx512`, whose caller checked the CPU.
            unsafe { classify_avx512(block) }
        }

        #[inline(always)]
        fn prefix_xor(x: u64) -> u64 {
            // SAFETY: as above.
            unsafe { prefix_xor_clmul(x) }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn classify_avx512(block: &[u8; 64]) -> Classes {
        // SAFETY: an unaligned load of exactly the block's 64 bytes.
        let v = unsafe { _mm512_loadu_si512(block.as_ptr().cast::<__m512i>()) };
        let eq = |b: u8| _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b as i8));
        let folded = _mm512_or_si512(v, _mm512_set1_epi8(0x20));
        let space = _mm512_cmpeq_epi8_mask(_mm512_shuffle_epi8(space_table512(), v), v);
        Classes {
            quote: eq(b'"'),
            backslash: eq(b'\\'),
            control: _mm512_cmplt_epu8_mask(v, _mm512_set1_epi8(0x20)),
            open: _mm512_cmpeq_epi8_mask(folded, _mm512_set1_epi8(b'{' as i8)),
            close: _mm512_cmpeq_epi8_mask(folded, _mm512_set1_epi8(b'}' as i8)),
            colon: eq(b':'),
            comma: eq(b','),
            space,
        }
    }

    /// Per low nibble, the one white-space byte with it (0 where none): a byte is white space
    /// when the table, looked up by its low nibble, gives the byte itself back.
    const SPACE_BY_NIBBLE: [i8; 16] = [
        b' ' as i8,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        b'\t' as i8,
        b'\n' as i8,
        0,
        0,
        b'\r' as i8,
        0,
        0,
    ];

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn space_table512() -> __m512i {
        // SAFETY: reads exactly the table's 16 bytes.
        _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(SPACE_BY_NIBBLE.as_ptr().cast()) })
    }

    struct Avx2;

    impl Simd for Avx2 {
        #[inline(always)]
        fn classify(block: &[u8; 64]) -> Classes {
            // SAFETY: only reached from `skip_avx2`, whose caller checked the CPU.
            unsafe { classify_avx2(block) }
        }

        #[inline(always)]
        fn prefix_xor(x: u64) -> u64 {
            // SAFETY: as above.
            unsafe { prefix_xor_clmul(x) }
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn classify_avx2(block: &[u8; 64]) -> Classes {
        let half = |offset: usize| {
            // SAFETY: an unaligned load of 32 of the block's 64 bytes (offset is 0 or 32).
            let v = unsafe { _mm256_loadu_si256(block.as_ptr().add(offset).cast::<__m256i>()) };
            let eq = |b: u8| _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b as i8));
            let bits = |m: __m256i| u64::from(_mm256_movemask_epi8(m) as u32);
            let folded = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
            // SAFETY: reads exactly the table's 16 bytes.
            let table = _mm256_broadcastsi128_si256(unsafe {
                _mm_loadu_si128(SPACE_BY_NIBBLE.as_ptr().cast())
            });
            let space = _mm256_cmpeq_epi8(_mm256_shuffle_epi8(table, v), v);
            Classes {
                quote: bits(eq(b'"')),
                backslash: bits(eq(b'\\')),
                control: bits(_mm256_cmpeq_epi8(
                    _mm256_min_epu8(v, _mm256_set1_epi8(0x1f)),
                    v,
                )),
                open: bits(_mm256_cmpeq_epi8(folded, _mm256_set1_epi8(b'{' as i8))),
                close: bits(_mm256_cmpeq_epi8(folded, _mm256_set1_epi8(b'}' as i8))),
                colon: bits(eq(b':')),
                comma: bits(eq(b',')),
                space: bits(space),
            }
        };
        let (lo, hi) = (half(0), half(32));
        let join = |a: u64, b: u64| a | (b << 32);
        Classes {
            quote: join(lo.quote, hi.quote),
            backslash: join(lo.backslash, hi.backslash),
            control: join(lo.control, hi.control),
            open: join(lo.open, hi.open),
            close: join(lo.close, hi.close),
            colon: join(lo.colon, hi.colon),
            comma: join(lo.comma, hi.comma),
            space: join(lo.space, hi.space),
        }
    }

    #[target_feature(enable = "pclmulqdq")]
    #[inline]
    unsafe fn prefix_xor_clmul(x: u64) -> u64 {
        // Carry-less multiplication by all ones XORs every bit into all the bits above it.
        let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1), 0);
        _mm_cvtsi128_si64(product) as u64
    }
}
