//! Following a table from every replica: a loop that reads the rows changed since its last
//! look (`updated_at`, Unix microseconds), every row again now and then, and sooner when a
//! change made through this replica wakes it. The crons scheduler and the triggers subscriber
//! keep their timers and subscriptions in line with their tables this way, reading with
//! [`crate::Database::changed_since`].

use crate::clock::now_micros;
use crate::error::ApiError;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Every this often a follower reads every row rather than only the changed ones.
const FULL_READ: Duration = Duration::from_secs(30);
/// Rows changed this long before the last look are looked at again (clocks of replicas differ
/// a little; commits land out of order).
const OVERLAP_MICROS: i64 = 5_000_000;

/// Runs `pass` until `stopped` answers true: first with `since` 0 (read every live row), then
/// with the time of its last successful look less an overlap, and with 0 again every
/// [`FULL_READ`]. Between passes it waits `every`, or less when `wake` is notified. A failed
/// pass is logged, naming `table`, and the next one reads from the same point.
pub async fn follow<F, Fut>(table: &str, every: Duration, wake: &Notify, stopped: impl Fn() -> bool, mut pass: F)
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = Result<(), ApiError>>,
{
    let mut since = 0_i64;
    let mut last_full = Instant::now();
    while !stopped() {
        let full = since == 0 || last_full.elapsed() >= FULL_READ;
        let looked_at = now_micros();
        match pass(if full { 0 } else { since }).await {
            Ok(()) => {
                since = looked_at - OVERLAP_MICROS;
                if full {
                    last_full = Instant::now();
                }
            }
            Err(error) => tracing::warn!(%error, table, "cannot read the table; retrying"),
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(every) => {}
        }
    }
}
