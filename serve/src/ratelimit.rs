//! Rate limits, as the generic cell rate algorithm (GCRA): each key may make
//! `burst` requests at once and then one every `period / burst`. Memory is
//! one timestamp per active key; keys idle long enough to be back at full
//! burst are forgotten. Limits are per process: behind N replicas the
//! effective limit is N times higher, which is fine for abuse control.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One limit (say, logins per IP) over many keys.
#[derive(Debug)]
pub struct RateLimiter {
    /// Time between requests at the steady rate.
    interval: Duration,
    /// How far ahead of now the theoretical arrival time may run (the burst).
    tolerance: Duration,
    state: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// `count` requests per `period`, all of which may come at once.
    pub fn new(count: u32, period: Duration) -> Self {
        let count = count.max(1);
        let interval = period / count;
        Self {
            interval,
            tolerance: interval * (count - 1),
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `key`; `Err(seconds)` says how long until one
    /// would be allowed.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut state = self.state.lock().expect("rate limiter lock");
        if state.len() > 100_000 {
            state.retain(|_, tat| *tat > now);
        }
        let tat = state.get(key).copied().filter(|&t| t > now).unwrap_or(now);
        if tat > now + self.tolerance {
            let wait = tat - (now + self.tolerance);
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        state.insert(key.to_string(), tat + self.interval);
        Ok(())
    }

    /// Whether `key` may make a request now, without counting one (for
    /// limits that count only failures, such as password tries).
    pub fn peek(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let state = self.state.lock().expect("rate limiter lock");
        let tat = state.get(key).copied().filter(|&t| t > now).unwrap_or(now);
        if tat > now + self.tolerance {
            let wait = tat - (now + self.tolerance);
            return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        Ok(())
    }
}

/// Every limit the API applies, built from the configuration.
#[derive(Debug)]
pub struct Limits {
    /// Registrations per client IP.
    pub register_per_ip: RateLimiter,
    /// Login attempts per client IP.
    pub login_per_ip: RateLimiter,
    /// Login attempts per account.
    pub login_per_account: RateLimiter,
    /// Authenticated requests per user.
    pub api_per_user: RateLimiter,
    /// Beacon batches per playback session.
    pub beacons_per_session: RateLimiter,
    /// Beacon batches per client IP.
    pub beacons_per_ip: RateLimiter,
    /// New playback sessions per client IP.
    pub sessions_per_ip: RateLimiter,
}

impl Limits {
    /// The limits of `config`.
    pub fn new(config: &crate::config::LimitsConfig) -> Self {
        let minute = Duration::from_secs(60);
        Self {
            register_per_ip: RateLimiter::new(config.register_per_ip_per_hour, Duration::from_secs(3600)),
            login_per_ip: RateLimiter::new(config.login_per_ip_per_minute, minute),
            login_per_account: RateLimiter::new(config.login_per_account_per_minute, minute),
            api_per_user: RateLimiter::new(config.api_per_user_per_minute, minute),
            beacons_per_session: RateLimiter::new(config.beacons_per_session_per_minute, minute),
            beacons_per_ip: RateLimiter::new(config.beacons_per_ip_per_minute, minute),
            sessions_per_ip: RateLimiter::new(config.sessions_per_ip_per_minute, minute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_says_when_to_retry() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(limiter.check("1.2.3.4").is_ok());
        }
        let retry = limiter.check("1.2.3.4").expect_err("fourth request");
        assert!((1..=20).contains(&retry), "retry after {retry}s");
        assert!(limiter.check("5.6.7.8").is_ok(), "keys are independent");
    }
}
