//! Specification errors (each naming its field) and catch-up plans.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn input(cron: &str, tz: &str) -> SpecInput {
    SpecInput {
        cron: cron.into(),
        timezone: tz.into(),
        ..Default::default()
    }
}

fn problems(i: &SpecInput) -> Vec<(&'static str, String)> {
    let now = t("2026-06-01T00:00:00Z");
    Spec::validate(i, now)
        .err()
        .unwrap_or_else(|| panic!("{i:?} was accepted"))
        .into_iter()
        .map(|p| (p.field, p.message))
        .collect()
}

#[test]
fn each_bad_cron_field_is_named() {
    for (cron, field) in [
        ("61 * * * *", "minute"),
        ("0 24 * * *", "hour"),
        ("0 0 32 * *", "day-of-month"),
        ("0 0 0 * *", "day-of-month"),
        ("0 0 * 13 *", "month"),
        ("0 0 * * 8", "day-of-week"),
        ("60 0 0 * * *", "second"),
        ("0 60 0 * * *", "minute"),
        ("0 0 * JANUARY *", "month"),
    ] {
        let p = problems(&input(cron, "UTC"));
        assert_eq!(p.len(), 1, "{cron}: {p:?}");
        assert_eq!(p[0].0, "cron");
        assert!(
            p[0].1.starts_with(&format!("the {field} field")),
            "{cron}: {}",
            p[0].1
        );
    }
    let p = problems(&input("* * * *", "UTC"));
    assert!(p[0].1.contains("has 4 fields; expected 5"), "{p:?}");
    let p = problems(&input("@fortnightly", "UTC"));
    assert!(p[0].1.contains("is not a known macro"), "{p:?}");
    let p = problems(&input(&"1,".repeat(150), "UTC"));
    assert!(p[0].1.contains("limit schedule.cron"), "{p:?}");
}

#[test]
fn a_spec_that_never_fires_is_refused() {
    for cron in ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4 *"] {
        let p = problems(&input(cron, "UTC"));
        assert_eq!(p[0].0, "cron");
        assert!(
            p[0].1.ends_with("never fires (no date matches it)"),
            "{p:?}"
        );
    }
    // Possible, if rarely: 29 February.
    assert!(Spec::validate(&input("0 0 29 2 *", "UTC"), t("2026-06-01T00:00:00Z")).is_ok());
    // Nothing between now and the end.
    let mut i = input("0 0 1 1 *", "UTC");
    i.end_at = Some(t("2026-12-01T00:00:00Z"));
    let p = problems(&i);
    assert_eq!(p[0].0, "endAt");
    assert!(p[0].1.contains("never fires between"), "{p:?}");
}

#[test]
fn time_zones_are_checked_with_a_suggestion() {
    let p = problems(&input("0 0 * * *", "Europe/Pariss"));
    assert_eq!(p[0].0, "timezone");
    assert!(p[0].1.contains("did you mean \"Europe/Paris\"?"), "{p:?}");
    let p = problems(&input("0 0 * * *", "europe/paris"));
    assert!(p[0].1.contains("did you mean \"Europe/Paris\"?"), "{p:?}");
    let p = problems(&input("0 0 * * *", "Mars/Olympus"));
    assert!(
        p[0].1.starts_with("unknown time zone \"Mars/Olympus\""),
        "{p:?}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut i = input("99 * * * *", "Nowhere/Town");
    i.start_at = Some(t("2027-01-01T00:00:00Z"));
    i.end_at = Some(t("2026-01-01T00:00:00Z"));
    i.jitter_secs = super::spec::MAX_JITTER_SECS + 1;
    let fields: Vec<_> = problems(&i).into_iter().map(|p| p.0).collect();
    assert_eq!(fields, ["cron", "timezone", "endAt", "jitterSeconds"]);
}

#[test]
fn jitter_must_be_shorter_than_the_interval_and_is_deterministic() {
    let mut i = input("*/5 * * * *", "UTC");
    i.jitter_secs = 300;
    let p = problems(&i);
    assert_eq!(p[0].0, "jitterSeconds");
    assert!(p[0].1.contains("not shorter than the 300 s"), "{p:?}");
    i.jitter_secs = 299;
    let spec = Spec::validate(&i, t("2026-06-01T00:00:00Z")).unwrap();
    let at = t("2026-06-01T00:05:00Z");
    let a = spec.jitter(b"seed", at, Some(at + Duration::minutes(5)));
    assert_eq!(a, spec.jitter(b"seed", at, Some(at + Duration::minutes(5))));
    assert!(a < Duration::seconds(299));
    // Different fire times get different delays (not all equal).
    let delays: std::collections::HashSet<_> = (0..20)
        .map(|k| spec.jitter(b"seed", at + Duration::minutes(5 * k), None))
        .collect();
    assert!(delays.len() > 1);
    // Never past the next fire time.
    let d = spec.jitter(b"seed", at, Some(at + Duration::seconds(2)));
    assert!(d <= Duration::seconds(1));
}

#[test]
fn start_and_end_bound_the_ticks() {
    let mut i = input("0 * * * *", "UTC");
    i.start_at = Some(t("2026-06-01T05:00:00Z"));
    i.end_at = Some(t("2026-06-01T08:00:00Z"));
    let spec = Spec::validate(&i, t("2026-06-01T00:00:00Z")).unwrap();
    let at: Vec<_> = spec
        .ticks_after(t("2026-06-01T00:00:00Z"))
        .map(|t| t.at)
        .collect();
    assert_eq!(
        at,
        [
            t("2026-06-01T05:00:00Z"),
            t("2026-06-01T06:00:00Z"),
            t("2026-06-01T07:00:00Z"),
            t("2026-06-01T08:00:00Z")
        ]
    );
}

fn plan(catchup: Catchup, max_lateness: Option<Duration>) -> Vec<(DateTime<Utc>, Decision)> {
    let spec = Spec::validate(&input("0 * * * *", "UTC"), t("2026-06-01T00:00:00Z")).unwrap();
    // Down for a day: the last tick seen was 2026-06-01T00:00Z.
    let p = plan_due(
        &spec,
        &PlanInput {
            cursor: t("2026-06-01T00:00:00Z"),
            now: t("2026-06-02T00:00:30Z"),
            enabled: true,
            pause_note: None,
            catchup,
            max_lateness,
            on_time_window: Duration::minutes(1),
            max_ticks: 1_000,
            seed: b"s",
        },
    );
    assert_eq!(p.cursor, t("2026-06-02T00:00:00Z"));
    assert_eq!(p.next_due, Some(t("2026-06-02T01:00:00Z")));
    p.decisions.into_iter().map(|(t, d)| (t.at, d)).collect()
}

fn fired(d: &[(DateTime<Utc>, Decision)]) -> Vec<DateTime<Utc>> {
    d.iter()
        .filter(|(_, d)| matches!(d, Decision::Fire { .. }))
        .map(|(at, _)| *at)
        .collect()
}

#[test]
fn a_day_of_downtime_with_each_catchup() {
    let all = plan(Catchup::All, None);
    assert_eq!(all.len(), 24, "every hourly tick accounted for");
    let f = fired(&all);
    assert_eq!(f.len(), 24);
    assert!(f.windows(2).all(|w| w[0] < w[1]), "in order");
    let latest = plan(Catchup::Latest, None);
    assert_eq!(latest.len(), 24);
    assert_eq!(fired(&latest), [t("2026-06-02T00:00:00Z")]);
    assert!(matches!(&latest[0].1, Decision::MissedLate(m) if m.contains("catchup is latest")));
    // The midnight tick is 30 s late: within the on-time window.
    let none = plan(Catchup::None, None);
    assert_eq!(fired(&none), [t("2026-06-02T00:00:00Z")]);
    assert!(matches!(&none[0].1, Decision::MissedLate(m) if m.contains("catchup is none")));
    // maxLateness 3 h at 00:00:30: 21:00 is 3h 0m 30s late, too late.
    let bounded = plan(Catchup::All, Some(Duration::hours(3)));
    assert_eq!(
        fired(&bounded),
        [
            t("2026-06-01T22:00:00Z"),
            t("2026-06-01T23:00:00Z"),
            t("2026-06-02T00:00:00Z")
        ]
    );
    assert!(
        matches!(&bounded[0].1, Decision::MissedLate(m) if m.contains("more than maxLateness 3h 0m 0s"))
    );
}

#[test]
fn a_paused_schedule_records_its_ticks_as_paused() {
    let spec = Spec::validate(&input("0 * * * *", "UTC"), t("2026-06-01T00:00:00Z")).unwrap();
    let p = plan_due(
        &spec,
        &PlanInput {
            cursor: t("2026-06-01T00:00:00Z"),
            now: t("2026-06-01T03:00:00Z"),
            enabled: false,
            pause_note: Some("migrating the warehouse"),
            catchup: Catchup::All,
            max_lateness: None,
            on_time_window: Duration::minutes(1),
            max_ticks: 2,
            seed: b"s",
        },
    );
    // Capped at max_ticks: the third waits for the next pass.
    assert_eq!(p.decisions.len(), 2);
    assert_eq!(p.cursor, t("2026-06-01T02:00:00Z"));
    assert_eq!(p.next_due, Some(t("2026-06-01T03:00:00Z")));
    assert!(p.decisions.iter().all(|(_, d)| matches!(d,
        Decision::Paused(m) if m == "the schedule is paused: migrating the warehouse")));
}

#[test]
fn dst_skips_reach_the_plan_with_their_reason() {
    let mut i = input("30 2 * * *", "America/New_York");
    i.dst_gap = DstGap::Skip;
    let spec = Spec::validate(&i, t("2026-03-01T00:00:00Z")).unwrap();
    let p = plan_due(
        &spec,
        &PlanInput {
            cursor: t("2026-03-08T00:00:00Z"),
            now: t("2026-03-08T12:00:00Z"),
            enabled: true,
            pause_note: None,
            catchup: Catchup::All,
            max_lateness: None,
            on_time_window: Duration::minutes(1),
            max_ticks: 10,
            seed: b"s",
        },
    );
    assert_eq!(p.decisions.len(), 1);
    let (tick, d) = &p.decisions[0];
    assert_eq!(tick.at, Utc.with_ymd_and_hms(2026, 3, 8, 7, 0, 0).unwrap());
    assert!(
        matches!(d, Decision::DstSkipped(m)
        if m == "2026-03-08 02:30:00 does not exist in America/New_York (clocks went forward) and dstGap is skip"),
        "{d:?}"
    );
}
