//! A project's retention policy (`settings.retention`) and which of its
//! runs it keeps. Pure: the garbage collector ([`super::gc`]) applies it.
//!
//! ```json
//! "retention": {
//!   "keepLast": 20,          // per pipeline, newest first
//!   "keepDays": 30,          // finished less than 30 days ago
//!   "failed": { "keepLast": 5, "keepDays": 7 },   // failed runs' own rule
//!   "cacheUnusedDays": 14    // cache entries no kept run uses, unused this long
//! }
//! ```
//!
//! A run is kept when any rule keeps it (like restic's `--keep-last` and
//! `--keep-within`): it is pinned, among the last `keepLast` of its
//! pipeline, or younger than `keepDays`. With neither rule, nothing
//! expires. Failed runs are ranked among the pipeline's failed runs and
//! follow `failed` when given, else the main rule. Runs not finished are
//! never touched.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The most runs `keepLast` may name, and days `keepDays` may.
pub const MAX_KEEP_LAST: u32 = 1_000_000;
pub const MAX_KEEP_DAYS: u32 = 36_500;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    pub keep_last: Option<u32>,
    pub keep_days: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Retention {
    pub keep_last: Option<u32>,
    pub keep_days: Option<u32>,
    pub failed: Option<Rule>,
    pub cache_unused_days: Option<u32>,
}

impl Rule {
    fn check(&self, field: &str) -> Result<(), String> {
        if let Some(n) = self.keep_last
            && !(1..=MAX_KEEP_LAST).contains(&n)
        {
            return Err(format!(
                "{field}keepLast must be 1 to {MAX_KEEP_LAST}, not {n}"
            ));
        }
        if let Some(d) = self.keep_days
            && !(1..=MAX_KEEP_DAYS).contains(&d)
        {
            return Err(format!(
                "{field}keepDays must be 1 to {MAX_KEEP_DAYS}, not {d}"
            ));
        }
        Ok(())
    }

    /// Whether a finished run this rule applies to is kept: `rank` is 1
    /// for the newest of its kind in its pipeline.
    pub fn keeps(&self, rank: u64, finished_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        if self.keep_last.is_none() && self.keep_days.is_none() {
            return true;
        }
        self.keep_last.is_some_and(|n| rank <= u64::from(n))
            || self
                .keep_days
                .is_some_and(|d| finished_at > now - Duration::days(i64::from(d)))
    }
}

impl Retention {
    /// Reads `settings.retention` (absent: keep everything).
    pub fn from_settings(settings: &serde_json::Value) -> Result<Retention, String> {
        match settings.get("retention") {
            None | Some(serde_json::Value::Null) => Ok(Retention::default()),
            Some(v) => {
                let r: Retention = serde_json::from_value(v.clone()).map_err(|e| {
                    format!(
                        "retention: {}",
                        e.to_string().split(" at line ").next().unwrap_or("")
                    )
                })?;
                r.check()?;
                Ok(r)
            }
        }
    }

    pub fn check(&self) -> Result<(), String> {
        self.runs().check("retention.")?;
        if let Some(f) = &self.failed {
            f.check("retention.failed.")?;
        }
        if let Some(d) = self.cache_unused_days
            && !(1..=MAX_KEEP_DAYS).contains(&d)
        {
            return Err(format!(
                "retention.cacheUnusedDays must be 1 to {MAX_KEEP_DAYS}, not {d}"
            ));
        }
        Ok(())
    }

    /// The rule for runs that did not fail.
    pub fn runs(&self) -> Rule {
        Rule {
            keep_last: self.keep_last,
            keep_days: self.keep_days,
        }
    }

    /// The rule for a run with this status.
    pub fn rule_for(&self, failed: bool) -> Rule {
        match (failed, self.failed) {
            (true, Some(f)) => f,
            _ => self.runs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn any_rule_keeps_and_no_rule_keeps_all() {
        let now = Utc::now();
        let old = now - Duration::days(40);
        let r = Rule {
            keep_last: Some(2),
            keep_days: Some(30),
        };
        assert!(r.keeps(2, old, now));
        assert!(!r.keeps(3, old, now));
        assert!(r.keeps(3, now - Duration::days(29), now));
        assert!(Rule::default().keeps(1_000, old, now));
        let only_days = Rule {
            keep_last: None,
            keep_days: Some(1),
        };
        assert!(!only_days.keeps(1, old, now));
    }

    #[test]
    fn bad_policies_name_the_field() {
        for (v, msg) in [
            (
                json!({"keepLast": 0}),
                "retention.keepLast must be 1 to 1000000, not 0",
            ),
            (
                json!({"keepDays": 100000}),
                "retention.keepDays must be 1 to 36500, not 100000",
            ),
            (
                json!({"failed": {"keepLast": 0}}),
                "retention.failed.keepLast must be 1 to 1000000, not 0",
            ),
            (
                json!({"cacheUnusedDays": 0}),
                "retention.cacheUnusedDays must be 1 to 36500, not 0",
            ),
        ] {
            assert_eq!(
                Retention::from_settings(&json!({"retention": v})).unwrap_err(),
                msg
            );
        }
        let e = Retention::from_settings(&json!({"retention": {"keepLast": -3}})).unwrap_err();
        assert!(
            e.starts_with("retention: invalid value: integer `-3`"),
            "{e}"
        );
        let e = Retention::from_settings(&json!({"retention": {"keepLst": 3}})).unwrap_err();
        assert!(e.contains("unknown field `keepLst`"), "{e}");
        let r = Retention::from_settings(
            &json!({"retention": {"keepLast": 3, "failed": {"keepDays": 2}}}),
        )
        .unwrap();
        assert_eq!(
            r.rule_for(true),
            Rule {
                keep_last: None,
                keep_days: Some(2)
            }
        );
        assert_eq!(
            r.rule_for(false),
            Rule {
                keep_last: Some(3),
                keep_days: None
            }
        );
    }
}
