//! Counter ids for this worker's VM, defined at configure time; names come from
//! [`crate::metrics`]. Category counters are defined on first use, and only ever for categories
//! the configuration names.

use std::cell::RefCell;

use super::host;
use crate::config::Config;
use crate::decision::Reason;
use crate::metrics::{denied_category, dropped_by_reason, Counter};

pub struct Metrics {
    counters: [Option<u32>; Counter::ALL.len()],
    reasons: [Option<u32>; Reason::ALL.len()],
    /// Few entries (the configured categories): a list beats a hash map, in code size too.
    categories: RefCell<Vec<(String, Option<u32>)>>,
}

fn define(name: &str) -> Option<u32> {
    match host::define_counter(name) {
        Ok(id) => Some(id),
        Err(e) => {
            log::warn!(
                "consent_gate: cannot define metric {name} (host status {})",
                e.0
            );
            None
        }
    }
}

impl Metrics {
    pub fn define(config: &Config) -> Metrics {
        let metrics = Metrics {
            counters: Counter::ALL.map(|c| define(&c.name())),
            reasons: Reason::ALL.map(|r| define(&dropped_by_reason(r))),
            categories: RefCell::new(Vec::new()),
        };
        // Rule categories are known now; route metadata ones appear with their first denial.
        for rule in &config.routes {
            for category in &rule.policy.categories {
                metrics.category_id(category);
            }
        }
        metrics
    }

    pub fn add(&self, counter: Counter, n: u64) {
        if let Some(Some(id)) = self.counters.get(counter as usize) {
            if n > 0 {
                host::increment(*id, n);
            }
        }
    }

    pub fn add_reason(&self, reason: Reason, n: u64) {
        if let Some(Some(id)) = self.reasons.get(reason.index()) {
            if n > 0 {
                host::increment(*id, n);
            }
        }
    }

    /// `category` must come from the configuration (route metadata or a rule), never an event.
    pub fn add_category(&self, category: &str, n: u64) {
        if let Some(id) = self.category_id(category) {
            host::increment(id, n);
        }
    }

    fn category_id(&self, category: &str) -> Option<u32> {
        let Ok(mut ids) = self.categories.try_borrow_mut() else {
            return None;
        };
        if let Some((_, id)) = ids.iter().find(|(c, _)| c == category) {
            return *id;
        }
        let id = define(&denied_category(category));
        ids.push((category.to_string(), id));
        id
    }
}
