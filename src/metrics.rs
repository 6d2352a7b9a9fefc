//! Metric names. The glue defines them as Envoy counters; Envoy shows them in `/stats` as
//! `wasmcustom.<name>` and in `/stats/prometheus` with dots turned into underscores.
//!
//! Category counters are named only after categories the configuration names (route metadata or
//! `routes` rules), never after anything in an event, so traffic cannot create metrics.

use crate::decision::Reason;

pub const PREFIX: &str = "consent_gate";

/// Request counters, one each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Requests on gated routes that the filter judged.
    RequestsJudged,
    /// Judged requests forwarded untouched.
    RequestsAllowed,
    /// Batches forwarded with some items removed.
    RequestsFiltered,
    /// Requests answered with a local reply.
    RequestsDenied,
    /// Items seen in batches.
    BatchItemsSeen,
    /// Items dropped from batches (whether the batch was rewritten or refused).
    BatchItemsDropped,
    /// Requests on routes without a consent policy, let through ungated.
    RequestsUngated,
    /// Requests on routes that opt out with `exempt: true`.
    RequestsExempt,
    /// Requests on gated routes that ended (client gone, timeout) before their body was
    /// complete: never judged, never forwarded.
    RequestsIncomplete,
}

impl Counter {
    pub const ALL: [Counter; 9] = [
        Counter::RequestsJudged,
        Counter::RequestsAllowed,
        Counter::RequestsFiltered,
        Counter::RequestsDenied,
        Counter::BatchItemsSeen,
        Counter::BatchItemsDropped,
        Counter::RequestsUngated,
        Counter::RequestsExempt,
        Counter::RequestsIncomplete,
    ];

    pub fn name(self) -> String {
        let short = match self {
            Counter::RequestsJudged => "requests_judged",
            Counter::RequestsAllowed => "requests_allowed",
            Counter::RequestsFiltered => "requests_filtered",
            Counter::RequestsDenied => "requests_denied",
            Counter::BatchItemsSeen => "batch_items_seen",
            Counter::BatchItemsDropped => "batch_items_dropped",
            Counter::RequestsUngated => "requests_ungated",
            Counter::RequestsExempt => "requests_exempt",
            Counter::RequestsIncomplete => "requests_incomplete",
        };
        format!("{PREFIX}.{short}")
    }
}

/// Events (single events and batch items) dropped for `reason`.
pub fn dropped_by_reason(reason: Reason) -> String {
    format!("{PREFIX}.events_dropped.{}", reason.code())
}

/// The family of denied-category counters: one counter with a `category` label where the host
/// supports labels (the dynamic module), one counter per category otherwise.
pub fn denied_category_family() -> String {
    format!("{PREFIX}.events_denied_category")
}

/// Events dropped because `category` was required and not consented. The name ends with the
/// category as configured, so that no two categories share a counter (`Data Sharing` and
/// `Data_Sharing`, `広告` and `宣伝`); only `.`, which separates a name's parts in Envoy, and `%`
/// are written as escapes (`%2E`, `%25`). (The dynamic module gives the category as a label.)
pub fn denied_category(category: &str) -> String {
    let mut name = format!("{PREFIX}.events_denied_category.");
    for c in category.chars() {
        match c {
            '.' => name.push_str("%2E"),
            '%' => name.push_str("%25"),
            c => name.push(c),
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_safe() {
        assert_eq!(
            Counter::RequestsJudged.name(),
            "consent_gate.requests_judged"
        );
        assert_eq!(
            dropped_by_reason(Reason::MissingConsent),
            "consent_gate.events_dropped.MISSING_CONSENT"
        );
        assert_eq!(
            denied_category("C0004"),
            "consent_gate.events_denied_category.C0004"
        );
        assert_eq!(
            denied_category("Ads.v2 x%"),
            "consent_gate.events_denied_category.Ads%2Ev2 x%25"
        );
        // One counter per category: no two names meet.
        let names = [
            "Data Sharing",
            "Data_Sharing",
            "Data.Sharing",
            "Data%2ESharing",
            "広告",
            "宣伝",
        ];
        let counters: std::collections::BTreeSet<String> =
            names.iter().map(|c| denied_category(c)).collect();
        assert_eq!(counters.len(), names.len(), "{counters:?}");
    }
}
