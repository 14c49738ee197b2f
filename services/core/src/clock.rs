//! Timestamps, as Unix microseconds.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static LAST: AtomicI64 = AtomicI64::new(0);

/// Returns the current time in Unix microseconds, strictly increasing within this process, so
/// that rows created one after the other sort in creation order by `created_at`.
pub fn now_micros() -> i64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = wall.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_strictly_increase() {
        let mut previous = super::now_micros();
        for _ in 0..10_000 {
            let next = super::now_micros();
            assert!(next > previous);
            previous = next;
        }
    }
}
