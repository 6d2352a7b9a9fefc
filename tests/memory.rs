//! Memory stays bounded on any input: the most a decision can allocate, measured with a counting
//! allocator on the worst requests the limits allow. The README states the bound this test holds:
//! at most 3 × `max_body_bytes` + 64 bytes per batch item + 1 MiB (compressor state), on top of
//! the body the host hands over.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use consent_gate::config::Config;
use consent_gate::decision::{judge, Action, Reason, Request};
use consent_gate::encoding::Encoding;
use consent_gate::policy::{Match, RoutePolicy};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// One measurement at a time (tests run on several threads).
static MEASURING: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Old and new blocks coexist while the data is copied.
        let now = CURRENT.fetch_add(new_size, Ordering::SeqCst) + new_size;
        PEAK.fetch_max(now, Ordering::SeqCst);
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most `judge` allocates (beyond what was live before it) for this request.
fn peak_of(config: &Config, encoding: Option<&str>, path: &str, body: &[u8]) -> (usize, Action) {
    let policy = RoutePolicy::new(vec!["Analytics".into()], Match::All);
    let req = Request {
        config,
        policy: &policy,
        content_encoding: encoding,
        path,
        gpc: false,
        form: false,
        preflight: false,
    };
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let j = judge(&req, body);
    let peak = PEAK.load(Ordering::SeqCst) - base;
    (peak, j.action)
}

fn bound(config: &Config) -> usize {
    3 * config.max_body_bytes + 64 * config.max_batch_items + (1 << 20)
}

/// A batch of `n` items, every other one consented, padded to about `size` bytes.
fn batch(n: usize, size: usize) -> Vec<u8> {
    let pad = "x".repeat((size / n).saturating_sub(110));
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"type":"track","messageId":"m{i}","p":"{pad}","context":{{"consent":{{"categoryPreferences":{{"Analytics":{}}}}}}}}}"#,
                i % 2 == 0
            )
        })
        .collect();
    format!(r#"{{"batch":[{}]}}"#, items.join(",")).into_bytes()
}

#[test]
fn the_worst_requests_stay_within_the_stated_bound() {
    for config in [
        Config::default(),
        Config::parse(r#"{"max_body_bytes":16777216,"max_batch_items":100000}"#).unwrap(),
    ] {
        let limit = config.max_body_bytes;
        let items = config.max_batch_items;
        let plain = batch(items, limit - 100_000);
        assert!(plain.len() <= limit, "{}", plain.len());
        for (encoding, body) in [
            (None, plain.clone()),
            (Some("gzip"), Encoding::Gzip.encode(plain.clone())),
            (Some("deflate"), Encoding::Deflate.encode(plain.clone())),
        ] {
            let (peak, action) = peak_of(&config, encoding, "/v1/batch", &body);
            assert!(
                matches!(action, Action::Rewrite(_)),
                "{encoding:?}: {action:?}"
            );
            assert!(
                peak <= bound(&config),
                "{encoding:?}, {limit} bytes: peak {peak} > bound {}",
                bound(&config)
            );
        }
        // A bomb: a small body that inflates past the cap is stopped at the cap.
        let bomb = Encoding::Gzip.encode(vec![b' '; 8 * limit]);
        let (peak, action) = peak_of(&config, Some("gzip"), "/v1/batch", &bomb);
        assert_eq!(action, Action::Reply(Reason::BodyTooLarge));
        assert!(peak <= bound(&config), "bomb: peak {peak}");
        // Millions of tiny items: stopped at max_batch_items.
        let tiny = Encoding::Gzip
            .encode(format!("{{\"batch\":[{}{{}}]}}", "{},".repeat(limit / 3 - 10)).into_bytes());
        let (peak, action) = peak_of(&config, Some("gzip"), "/v1/batch", &tiny);
        assert_eq!(action, Action::Reply(Reason::BodyTooLarge));
        assert!(peak <= bound(&config), "tiny items: peak {peak}");
    }
}
