//! The per-user rate limit (`api.rate_limit_per_minute`): a fixed
//! one-minute window per user, in this process's memory (each API process
//! counts its own requests). Over the limit: 429 with `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::error::ApiError;

#[derive(Debug, Default)]
pub struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<Uuid, (u64, u32)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            windows: Mutex::default(),
        }
    }

    /// Counts one request of `user` at `now_secs` (seconds since the epoch).
    pub fn check_at(&self, user: Uuid, now_secs: u64) -> Result<(), ApiError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let minute = now_secs / 60;
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if w.len() > 100_000 {
            w.retain(|_, (m, _)| *m == minute);
        }
        let entry = w.entry(user).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 >= self.per_minute {
            let retry = 60 - now_secs % 60;
            return Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "more than {} requests in a minute (api.rate_limit_per_minute)",
                    self.per_minute
                ),
            )
            .retry_after(retry));
        }
        entry.1 += 1;
        Ok(())
    }

    pub fn check(&self, user: Uuid) -> Result<(), ApiError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.check_at(user, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_over_the_limit_waits_for_the_next_minute_and_others_do_not() {
        let l = RateLimiter::new(2);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let t = 1_000 * 60 + 10;
        assert!(l.check_at(a, t).is_ok());
        assert!(l.check_at(a, t + 1).is_ok());
        let e = l.check_at(a, t + 2).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code, e.retry_after),
            (429, "rate_limited", Some(48))
        );
        assert!(l.check_at(b, t + 2).is_ok(), "per user");
        assert!(l.check_at(a, t + 50).is_ok(), "a new minute");
        assert!(RateLimiter::new(0).check_at(a, t).is_ok(), "0 turns it off");
    }
}
