//! Retry policy: exponential backoff with full jitter, as recommended for
//! clients of shared servers (Elasticsearch, Splunk) so that many shippers
//! recovering from one outage do not retry in lockstep.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long to wait between attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    /// First delay.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// Longest delay.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// Growth factor per attempt.
    pub multiplier: f64,
    /// Attempts after the first before the records are dead-lettered with
    /// the last error; unset retries forever (the default: at-least-once
    /// means a transient outage never loses data).
    pub max_retries: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            max_retries: None,
        }
    }
}

impl Backoff {
    /// The ceiling of the delay before retry number `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = self
            .multiplier
            .max(1.0)
            .powi(attempt.saturating_sub(1).min(64) as i32);
        let secs = (self.initial.as_secs_f64() * exp).min(self.max.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// The delay before retry number `attempt` (1-based): uniformly random
    /// between half the ceiling and the ceiling ("equal jitter"), so that
    /// the delay still grows but shippers spread out.
    pub fn delay(&self, attempt: u32) -> Duration {
        let c = self.ceiling(attempt);
        let half = c / 2;
        let spread = (c - half).as_nanos() as u64;
        let jitter = if spread == 0 {
            0
        } else {
            rand::random_range(0..=spread)
        };
        half + Duration::from_nanos(jitter)
    }

    /// Whether retry number `attempt` (1-based) may happen.
    pub fn allows(&self, attempt: u32) -> bool {
        self.max_retries.is_none_or(|m| attempt <= m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
            max_retries: Some(3),
        };
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(4), Duration::from_millis(800));
        assert_eq!(b.ceiling(5), Duration::from_secs(1));
        assert_eq!(b.ceiling(500), Duration::from_secs(1));
        for attempt in 1..10 {
            let d = b.delay(attempt);
            assert!(
                d <= b.ceiling(attempt) && d >= b.ceiling(attempt) / 2,
                "{d:?}"
            );
        }
        assert!(b.allows(3));
        assert!(!b.allows(4));
        assert!(Backoff::default().allows(u32::MAX));
    }

    #[test]
    fn reads_durations_in_words() {
        let b: Backoff = serde_json::from_str(r#"{"initial":"250ms","max":"1m"}"#).unwrap();
        assert_eq!(b.initial, Duration::from_millis(250));
        assert_eq!(b.max, Duration::from_secs(60));
        assert!(serde_json::from_str::<Backoff>(r#"{"inital":"1s"}"#).is_err());
    }
}
