//! Time as an input: the scheduler reads "now" and waits through a
//! [`Clock`], so tests drive it through any number of fire times without
//! real waiting ([`ManualClock`]).

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

#[async_trait]
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// Returns at `until` or after `max`, whichever comes first (a manual
    /// clock: when it is moved past `until`, or never by `max`).
    async fn sleep_until(&self, until: DateTime<Utc>, max: Duration);
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    async fn sleep_until(&self, until: DateTime<Utc>, max: Duration) {
        let d = (until - Utc::now()).to_std().unwrap_or_default().min(max);
        tokio::time::sleep(d).await;
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    moved: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(at),
            moved: watch::channel(at).0,
        }
    }
    pub fn set(&self, at: DateTime<Utc>) {
        *self.now.lock().unwrap() = at;
        self.moved.send_replace(at);
    }
    pub fn advance(&self, by: chrono::Duration) {
        let at = *self.now.lock().unwrap() + by;
        self.set(at);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap()
    }
    async fn sleep_until(&self, until: DateTime<Utc>, max: Duration) {
        let mut rx = self.moved.subscribe();
        let reached = async {
            while *rx.borrow_and_update() < until {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        // `max` is real time here too: a manual clock that is never moved
        // must not hang its scheduler's shutdown checks.
        let _ = tokio::time::timeout(max, reached).await;
    }
}
