//! Counter ids for this worker's VM, defined at configure time; names come from
//! [`crate::metrics`]. Category counters are defined on first use, and only ever for categories
//! the configuration names.

use std::cell::RefCell;

use super::abi;
use crate::config::Config;
use crate::decision::Reason;
use crate::host::{Level, Metric};
use crate::metrics::{denied_category, dropped_by_reason, Counter};

pub struct Metrics {
    counters: [Option<u32>; Counter::ALL.len()],
    reasons: [Option<u32>; Reason::ALL.len()],
    /// Few entries (the configured categories): a list beats a hash map, in code size too.
    categories: RefCell<Vec<(String, Option<u32>)>>,
}

fn define(name: &str) -> Option<u32> {
    match abi::define_counter(name) {
        Ok(id) => Some(id),
        Err(e) => {
            abi::log(
                Level::Warn,
                &format!("cannot define metric {name} (host status {})", e.0),
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

    pub fn add(&self, metric: Metric<'_>, n: u64) {
        let id = match metric {
            Metric::Counter(c) => self.counters.get(c as usize).copied().flatten(),
            Metric::Dropped(r) => self.reasons.get(r.index()).copied().flatten(),
            // `category` comes from the configuration (route metadata or a rule), never an event.
            Metric::DeniedCategory(category) => self.category_id(category),
        };
        if let Some(id) = id {
            if n > 0 {
                abi::increment(id, n);
            }
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
