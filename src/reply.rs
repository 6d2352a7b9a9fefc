//! The local reply the filter sends instead of forwarding: a small JSON document that says why,
//! built from the judgement and the route's policy alone (never from the event's content).

use crate::decision::{Judgement, Reason};
use crate::json::write_string;
use crate::policy::RoutePolicy;

/// A sentence for people reading the reply.
fn message(reason: Reason) -> &'static str {
    match reason {
        Reason::FilteredByEndUserConsent => {
            "the end user has not consented to the categories this destination requires"
        }
        Reason::MissingConsent => {
            "the event carries no consent preferences (context.consent.categoryPreferences, or context.consentManagement.deniedConsentIds)"
        }
        Reason::FilteredByIntegrations => {
            "the event's integrations object turns this destination off"
        }
        Reason::InvalidEvent => "the body is not an event whose consent can be read unambiguously",
        Reason::BodyTooLarge => {
            "the body (raw or decompressed) is larger than max_body_bytes, or its batch holds more than max_batch_items items"
        }
        Reason::UnsupportedContentEncoding => {
            "the content-encoding is not identity, gzip or deflate, or the content-type names a charset other than utf-8"
        }
        Reason::RouteConfigError => "this route's consent configuration is invalid",
        Reason::InternalError => "the filter could not carry out its decision",
    }
}

/// The categories named by the bits of `mask`, in the policy's order.
pub fn category_names(policy: &RoutePolicy, mask: u64) -> impl Iterator<Item = &str> {
    policy
        .categories
        .iter()
        .enumerate()
        .filter(move |(i, _)| *i < 64 && mask & (1u64 << i) != 0)
        .map(|(_, c)| c.as_str())
}

/// The JSON body of the local reply for `reason`.
pub fn body(reason: Reason, j: &Judgement, policy: Option<&RoutePolicy>) -> String {
    let mut out = String::with_capacity(160);
    out.push_str("{\"reason\":");
    write_string(&mut out, reason.code());
    // Segment's and RudderStack's clients read an error reply as `{"code", "message"}`; without
    // `code`, RudderStack's Python client takes a refusal for a network error and retries it.
    out.push_str(",\"code\":");
    write_string(&mut out, reason.code());
    out.push_str(",\"message\":");
    write_string(&mut out, message(reason));
    if let Some(policy) = policy {
        if j.denied_categories != 0 {
            out.push_str(",\"categories\":[");
            for (n, c) in category_names(policy, j.denied_categories).enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_string(&mut out, c);
            }
            out.push(']');
        }
    }
    if let Some(destination) = policy.and_then(|p| p.destination.as_deref()) {
        let off = j
            .dropped_by_reason
            .get(Reason::FilteredByIntegrations.index())
            .is_some_and(|&n| n > 0);
        if off {
            out.push_str(",\"destination\":");
            write_string(&mut out, destination);
        }
    }
    if j.is_batch {
        out.push_str(&format!(
            ",\"events\":{},\"dropped\":{},\"dropped_by_reason\":{{",
            j.events, j.dropped
        ));
        let mut first = true;
        for (r, n) in Reason::ALL.iter().zip(j.dropped_by_reason) {
            if n > 0 {
                if !first {
                    out.push(',');
                }
                first = false;
                write_string(&mut out, r.code());
                out.push_str(&format!(":{n}"));
            }
        }
        out.push('}');
    }
    out.push('}');
    out
}
