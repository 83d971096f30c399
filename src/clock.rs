//! Wall-clock time behind a trait, so logic that stamps or schedules can be
//! tested without sleeping.
//!
//! Owns the only call to `Utc::now()` in the crate ([`SystemClock`]).
//! [`OffsetClock`] shifts it (`LITEWARDEN_CLOCK_OFFSET`); [`FakeClock`]
//! holds a settable instant for tests.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The real clock shifted by a fixed offset: `LITEWARDEN_CLOCK_OFFSET`
/// (`2d`, `-40d`) lets an operator or a test see what a clock that ran
/// ahead or behind does, without changing the machine's clock.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock {
    offset: TimeDelta,
}

impl OffsetClock {
    /// The real clock moved by `offset`.
    pub fn new(offset: TimeDelta) -> Self {
        Self { offset }
    }

    /// Parses an offset such as `2d`, `+90m` or `-40d` (humantime units).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (sign, amount) = match text.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, text.strip_prefix('+').unwrap_or(text)),
        };
        let duration = humantime::parse_duration(amount)
            .map_err(|e| format!("LITEWARDEN_CLOCK_OFFSET `{text}`: {e}"))?;
        let delta = TimeDelta::from_std(duration)
            .map_err(|_| format!("LITEWARDEN_CLOCK_OFFSET `{text}` is too large"))?;
        Ok(Self::new(delta * sign))
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        SystemClock.now() + self.offset
    }
}

/// A clock that only moves when told to, with millisecond resolution.
#[derive(Debug)]
pub struct FakeClock {
    millis: AtomicI64,
}

impl FakeClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            millis: AtomicI64::new(start.timestamp_millis()),
        }
    }

    /// Moves the clock by `delta` (may be negative).
    pub fn advance(&self, delta: TimeDelta) {
        self.millis
            .fetch_add(delta.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.millis.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_offsets_parse_with_a_sign() {
        let ahead = OffsetClock::parse("2d").unwrap().now() - SystemClock.now();
        assert!((ahead - TimeDelta::days(2)).num_seconds().abs() <= 1);
        let behind = OffsetClock::parse("-40d").unwrap().now() - SystemClock.now();
        assert!((behind + TimeDelta::days(40)).num_seconds().abs() <= 1);
        assert!(OffsetClock::parse("soon").is_err());
    }

    #[test]
    fn fake_clock_moves_only_when_advanced() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = FakeClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(TimeDelta::seconds(90));
        assert_eq!(clock.now(), start + TimeDelta::seconds(90));
    }
}
