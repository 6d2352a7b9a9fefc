//! Objects and arrays are skipped 64 bytes at a time (`src/json/blocks.rs`), from their start or
//! from wherever the token-by-token reading hands them over; that reading is the reference. Every
//! block-wise implementation this CPU can run (portable, AVX2, AVX-512), and every hand-over
//! point, must read every text exactly as the reference does: the same end, or the same refusal.
//! Block boundaries fall at every offset of the tricky cases, and random JSON is mutated so that
//! most inputs break somewhere deep inside.

use consent_gate::json::Scanner;
use proptest::prelude::*;

/// Checks every block-wise implementation against the reference on `text`; returns the
/// reference's reading (`Some(end)` or `None` when refused).
fn agree(text: &str) -> Option<usize> {
    let mut reference = Scanner::new(text);
    let expected = reference.skip_value_stepwise().map(|()| reference.pos());
    let mut probe = Scanner::new(text);
    if !matches!(probe.peek_token(), Some(b'{' | b'[')) {
        return expected.ok();
    }
    let everywhere = Scanner::new(text).skip_container_everywhere();
    assert!(!everywhere.is_empty());
    for (name, got) in everywhere {
        assert_eq!(got, expected, "{name} on {text:?}");
    }
    let mut public = Scanner::new(text);
    assert_eq!(
        public.skip_value().map(|()| public.pos()),
        expected,
        "{text:?}"
    );
    // Token by token first, block-wise from every kind of place on.
    for after in [0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144] {
        let mut s = Scanner::new(text);
        let got = s.skip_value_handing_over_after(after).map(|()| s.pos());
        assert_eq!(got, expected, "handing over after {after} bytes: {text:?}");
    }
    expected.ok()
}

/// `text` behind 0 to 130 spaces, so that every byte of it meets every block boundary.
fn at_every_offset(text: &str) -> Vec<Option<usize>> {
    (0..=130)
        .map(|pad| agree(&format!("{}{text}", " ".repeat(pad))).map(|end| end - pad))
        .collect()
}

fn accepted(text: &str) -> bool {
    let results = at_every_offset(text);
    assert!(
        results.windows(2).all(|w| w[0] == w[1]),
        "{text:?}: {results:?}"
    );
    results[0] == Some(text.len())
}

#[test]
fn valid_containers_are_skipped_to_their_end() {
    for text in [
        "{}",
        "[]",
        "[ ]",
        "{ }",
        "{\"a\":1}",
        "{ \"a\" : 1 , \"b\" : [ true , false , null ] }",
        "[{}, [], {\"\":\"\"}, [[]], -0, 0.5, 1e5, -1.5E-7, 1e+308, 1e-999]",
        "{\"a\":{\"b\":{\"c\":[1,{\"d\":\"e\"}]}}}",
        "[\"\\\"\", \"\\\\\", \"\\\\\\\"\", \"\\/\\b\\f\\n\\r\\t\", \"\\u00e9\\ud83d\\ude00\"]",
        "[\"é ü 😀 \u{7f}\"]",
        "[1\t,\n2\r,  3]",
        "[true,false,null,\"true\"]",
        "{\"k\":\"}\",\"]\":\"{[,:\"}",
    ] {
        assert!(accepted(text), "{text}");
    }
}

#[test]
fn invalid_containers_are_refused() {
    for text in [
        "{",
        "[",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,}",
        "[,]",
        "[1,]",
        "[,1]",
        "[1 2]",
        "[1:2]",
        "{\"a\":1 \"b\":2}",
        "{\"a\" \"b\"}",
        "{\"a\"::1}",
        "{1:2}",
        "{\"a\":1:2}",
        "[\"a\":1]",
        "[}",
        "{]",
        "[[]",
        "{\"a\":[}",
        "[01]",
        "[1.]",
        "[.5]",
        "[+1]",
        "[1e]",
        "[-]",
        "[tru]",
        "[truex]",
        "[nulll]",
        "[True]",
        "[1e999]",
        "[-1e309]",
        "[\"\\x\"]",
        "[\"\\u12\"]",
        "[\"\\ud800\"]",
        "[\"\\udc00\"]",
        "[\"\\ud800\\u0041\"]",
        "[\"\\u0041\\x\"]",
        "[\"\\ud83d\\ude00\\q\"]",
        "[\"\\ud83d\\ude00\\q\"]",
        "[\"a\tb\"]",
        "[\"a\u{1}b\"]",
        "[\"abc]",
        "[\\\"a\"]",
        "[1\\]",
        "[\u{1}]",
        "[é]",
        "[1,,2]",
        "{\"a\":1,,\"b\":2}",
        "[\"a\"\"b\"]",
        "[{}{}]",
        "[[][]]",
        "[1]]",
    ] {
        let results = at_every_offset(text);
        // Refused, or (for a trailing extra bracket) ended before it: never read past a fault.
        assert!(
            results.iter().all(|r| r.is_none() || *r < Some(text.len())),
            "{text:?}: {results:?}"
        );
    }
}

#[test]
fn backslash_runs_and_surrogates_meet_every_boundary() {
    for run in 0..6 {
        let backslashes = "\\".repeat(run);
        // An even run escapes nothing; an odd one escapes the quote after it.
        let text = format!("[\"a{backslashes}\", 1]");
        assert_eq!(accepted(&text), run % 2 == 0, "{text}");
        let text = format!("[\"a{backslashes}\"\", 1]");
        assert_eq!(accepted(&text), run % 2 == 1, "{text}");
        let text = format!("{{\"{backslashes}n\":\"{backslashes}u0041\"}}");
        assert!(accepted(&text) || run % 2 == 1, "{text}");
    }
    assert!(accepted(
        "[\"\\ud83d\\ude00\\ud83d\\ude00x\\ud83d\\ude00\"]"
    ));
    assert!(!accepted("[\"\\ud83d\\\\ude00\"]"));
    assert!(!accepted("[\"\\ud83d\"]"));
    let long = format!("{{\"k\":\"{}\\\"{}\"}}", "x".repeat(200), "\\\\".repeat(70));
    assert!(accepted(&long));
}

#[test]
fn scalars_and_white_space_meet_every_boundary() {
    assert!(accepted(
        "[123456789012345678901234567890.123456789e-12, -0.0, 0]"
    ));
    assert!(accepted(&format!(
        "[{}1{}]",
        " ".repeat(100),
        "\n".repeat(70)
    )));
    assert!(accepted(&format!("[{}]", ["true"; 40].join(","))));
    assert!(accepted(&format!("[{}]", "9".repeat(308))));
    assert!(!accepted(&format!("[{}]", "9".repeat(309))));
    assert!(accepted(&format!("[{}.5]", "9".repeat(200))));
    assert!(accepted("[179769313486231570814527423731704356798070567525844996598917476803157260780028538760589558632766878171540458953514382464234321326889464182768467546703537516986049910576551282076245490090389328944075868508455133942304583236903222948165808559332123348274797826204144723168738177180919299881250404026184124858368]"));
    assert!(!accepted("[179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792]"));
}

#[test]
fn nesting_is_bounded_as_the_reference_bounds_it() {
    // 512 containers inside one another, empty ones counted.
    for (depth, inner, ok) in [
        (511, "", true),
        (512, "1", true),
        (512, "", true),
        (513, "", false),
        (513, " ", false),
        (513, "1", false),
        (600, "", false),
    ] {
        let text = format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(accepted(&text), ok, "depth {depth} with {inner:?}");
        let text = format!(
            "{}{{{inner}}}{}",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        );
        let object_ok = depth <= 512 && inner.trim().is_empty();
        assert_eq!(
            accepted(&text),
            object_ok,
            "objects: depth {depth} with {inner:?}"
        );
    }
}

#[test]
fn a_value_nests_only_as_deep_as_the_containers_around_it_leave_room_for() {
    // The reading methods' own containers count: inside `{"a":[…]}` two fewer levels are left.
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for (depth, ok) in [(510, true), (511, false)] {
        let text = format!("{{\"a\":[1,{}]}}", nested(depth));
        for after in [0, 1, 8, 34, 144, usize::MAX] {
            let mut s = Scanner::new(&text);
            assert!(s.object_start().unwrap());
            s.key().unwrap();
            assert!(s.array_start().unwrap());
            s.skip_value().unwrap();
            assert!(s.array_more().unwrap());
            let got = s.skip_value_handing_over_after(after).is_ok();
            assert_eq!(
                got, ok,
                "{depth} levels inside two, handed over after {after}"
            );
        }
    }
    // Leaving a container gives its level back: after `{"a":[1]}`, 511 levels fit beside it.
    for (depth, ok) in [(511, true), (512, false)] {
        let text = format!("[{{\"a\":[1]}},{}]", nested(depth));
        let mut s = Scanner::new(&text);
        assert!(s.array_start().unwrap());
        assert!(s.object_start().unwrap());
        s.key().unwrap();
        assert!(s.array_start().unwrap());
        s.skip_value().unwrap();
        assert!(!s.array_more().unwrap());
        assert!(!s.object_more().unwrap());
        assert!(s.array_more().unwrap());
        assert_eq!(
            s.skip_value().is_ok(),
            ok,
            "{depth} levels beside a closed object"
        );
    }
    // Entering a container is itself bounded.
    let text = format!("{}{}", "[".repeat(513), "]".repeat(513));
    let mut s = Scanner::new(&text);
    for _ in 0..512 {
        assert!(s.array_start().unwrap());
    }
    assert!(s.array_start().is_err());
}

/// JSON text with random white space, escapes and nesting.
fn json_text() -> impl Strategy<Value = String> {
    let ws = prop_oneof![Just(""), Just(""), Just(" "), Just("\n  "), Just("\t")];
    let string = prop::collection::vec(
        prop_oneof![
            "[a-z]{1,12}",
            Just("\\\"".to_string()),
            Just("\\\\".to_string()),
            Just("\\n".to_string()),
            Just("\\u00e9".to_string()),
            Just("\\ud83d\\ude00".to_string()),
            Just("é😀".to_string()),
            Just(" ".to_string()),
        ],
        0..6,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()));
    let leaf = prop_oneof![
        string.clone(),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("null".to_string()),
        r"-?(0|[1-9][0-9]{0,12})(\.[0-9]{1,6})?([eE][+-]?[0-9]{1,2})?",
    ];
    leaf.prop_recursive(6, 80, 8, move |inner| {
        let ws = ws.clone();
        prop_oneof![
            (
                prop::collection::vec((inner.clone(), ws.clone()), 0..8),
                ws.clone()
            )
                .prop_map(|(items, w)| {
                    let items: Vec<String> = items
                        .into_iter()
                        .map(|(v, s)| format!("{s}{v}{s}"))
                        .collect();
                    format!("[{w}{}]", items.join(","))
                }),
            (
                prop::collection::vec((string.clone(), inner, ws.clone()), 0..8),
                ws.clone()
            )
                .prop_map(|(members, w)| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(k, v, s)| format!("{s}{k}{s}:{s}{v}{s}"))
                        .collect();
                    format!("{{{w}{}}}", members.join(","))
                }),
        ]
    })
}

/// A few single-character edits, with characters that matter to JSON.
fn mutated(text: String, edits: Vec<(usize, u8, char)>) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for (at, kind, c) in edits {
        if chars.is_empty() {
            chars.push(c);
            continue;
        }
        let at = at % chars.len();
        match kind % 3 {
            0 => chars.insert(at, c),
            1 => {
                chars.remove(at);
            }
            _ => chars[at] = c,
        }
    }
    chars.into_iter().collect()
}

fn edit() -> impl Strategy<Value = (usize, u8, char)> {
    let c = prop::sample::select(vec![
        '{', '}', '[', ']', ':', ',', '"', '\\', ' ', '\n', '0', '1', '-', '.', 'e', '+', 't', 'u',
        'n', 'a', '\u{1}', '\u{1f}', 'é',
    ]);
    (any::<usize>(), any::<u8>(), c)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn block_wise_skipping_reads_json_as_the_reference_does(
        text in json_text(),
        pad in 0usize..64,
        wrap in any::<bool>(),
    ) {
        let text = if wrap { format!("[{text}]") } else { text };
        let padded = format!("{}{text}", " ".repeat(pad));
        if text.starts_with(['{', '[']) {
            prop_assert_eq!(agree(&padded), Some(padded.len()));
        }
    }

    #[test]
    fn block_wise_skipping_refuses_what_the_reference_refuses(
        text in json_text(),
        edits in prop::collection::vec(edit(), 1..4),
        pad in 0usize..64,
        tail in prop::sample::select(vec!["", " ", "]", "}", ",1", "x"]),
    ) {
        let text = format!("{}[{}{tail}", " ".repeat(pad), mutated(text, edits));
        agree(&text);
        agree(&format!("{text}]"));
    }
}
