//! Any text: every block-wise way of skipping an object or array (portable, AVX2, AVX-512, as
//! the CPU allows; from its start, or handed over by the token-by-token reading after a number of
//! bytes) must read it exactly as the token-by-token reading does: the same end, or the same
//! refusal. The first byte shifts the text against the 64-byte blocks, the second chooses where
//! the token-by-token reading hands over.
#![no_main]

use consent_gate::json::Scanner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [shift, after, rest @ ..] = data else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let text = format!("{}{text}", " ".repeat(usize::from(shift % 64)));
    let mut reference = Scanner::new(&text);
    let expected = reference.skip_value_stepwise().map(|()| reference.pos());
    let mut s = Scanner::new(&text);
    let got = s.skip_value_handing_over_after(usize::from(*after)).map(|()| s.pos());
    assert_eq!(got, expected, "handing over after {after} bytes");
    if !matches!(Scanner::new(&text).peek_token(), Some(b'{' | b'[')) {
        return;
    }
    for (name, got) in Scanner::new(&text).skip_container_everywhere() {
        assert_eq!(got, expected, "{name}");
    }
});
