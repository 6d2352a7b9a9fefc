//! The batch rewrite: when some items of a `/v1/batch` body are denied, the allowed ones are
//! forwarded in a body that is the original with only the inside of the `batch` array replaced.
//!
//! What may differ from the client's bytes: the denied items are gone, and so is the white space
//! between items inside the array (items are joined by a bare `,`). Every byte before the `[` and
//! after the `]` and every byte of every kept item is the client's, in the client's order.

use crate::event::EventFacts;

/// One element of the `batch` array: its byte span, and what it says if it is an object.
#[derive(Debug, Clone)]
pub struct Item {
    pub start: usize,
    pub end: usize,
    /// `None` when the element is not an object.
    pub facts: Option<EventFacts>,
}

/// The body with the `batch` array (`[` at `array.0`, `]` at `array.1`) holding only `keep`.
pub fn rewrite(body: &[u8], array: (usize, usize), keep: &[&Item]) -> Vec<u8> {
    let (open, close) = array;
    let kept: usize = keep.iter().map(|i| i.end.saturating_sub(i.start) + 1).sum();
    let mut out = Vec::with_capacity(open + 1 + kept + body.len().saturating_sub(close));
    out.extend_from_slice(body.get(..=open).unwrap_or_default());
    for (n, item) in keep.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(body.get(item.start..item.end).unwrap_or_default());
    }
    out.extend_from_slice(body.get(close..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_outside_the_array_and_the_kept_items_verbatim() {
        let body = br#"{"sentAt":"x", "batch": [ {"a":1} ,	{"b":2}, {"c":3} ], "context":{}}"#;
        let find = |needle: &[u8]| {
            body.windows(needle.len())
                .position(|w| w == needle)
                .unwrap()
        };
        let item = |text: &[u8]| Item {
            start: find(text),
            end: find(text) + text.len(),
            facts: None,
        };
        let (a, c) = (item(br#"{"a":1}"#), item(br#"{"c":3}"#));
        let array = (find(b"["), find(b"]"));
        let out = rewrite(body, array, &[&a, &c]);
        assert_eq!(
            out,
            br#"{"sentAt":"x", "batch": [{"a":1},{"c":3}], "context":{}}"#.to_vec()
        );
        assert_eq!(
            rewrite(body, array, &[]),
            br#"{"sentAt":"x", "batch": [], "context":{}}"#.to_vec()
        );
    }
}
