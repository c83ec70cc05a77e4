//! The one clock. Every stage that reads the time takes a `Clock`, so tests pass a fixed one.

use std::sync::Arc;

use jiff::Timestamp;

/// What the process stage, the relay and the sweeps read the time from.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system's wall clock.
pub fn system() -> Clock {
    Arc::new(Timestamp::now)
}

/// A clock stopped at `at`, for tests and replays.
pub fn fixed(at: Timestamp) -> Clock {
    Arc::new(move || at)
}
