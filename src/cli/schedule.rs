//! `mudrock schedule ...`: what the API's schedule endpoints do, from the
//! command line, on the service connection (an operator's tool, like
//! `project create`): create, list, show, pause, resume, delete, next fire
//! times, the tick ledger, trigger now, backfills.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use uuid::Uuid;

use super::service::connect_current;
use super::*;
use crate::schedule::{Catchup, DstFold, DstGap, Overlap, Spec, SpecInput};
use crate::service::backfills::{self, NewBackfill};
use crate::service::queue::{self, TriggerKind, TriggerRequest};
use crate::service::schedules::{self, NewSchedule, ScheduleError, SchedulePatch};

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Create a schedule on a pipeline; prints its id.
    Create(CreateArgs),
    /// A pipeline's schedules (JSON).
    List(PipelineArgs),
    /// One schedule (JSON).
    Show(IdArgs),
    /// Pause a schedule (its fire times are recorded as `paused`).
    Pause(PauseArgs),
    /// Resume a paused schedule.
    Resume(IdArgs),
    /// Delete a schedule (its runs stay).
    Delete(IdArgs),
    /// The next fire times, in the schedule's zone and UTC.
    Next(NextArgs),
    /// The tick ledger: every fire time and what became of it, newest first.
    Ticks(TicksArgs),
    /// Run the schedule's pipeline now; prints the run id.
    Trigger(IdArgs),
    /// Run the schedule over a past window; prints the backfill (JSON).
    Backfill(BackfillArgs),
    /// Cancel a backfill and its queued runs.
    CancelBackfill(IdArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Pipeline id.
    pub pipeline: Uuid,
    /// 5 fields (minute first), 6 (seconds first), or @hourly etc.
    #[arg(long)]
    pub cron: String,
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    #[arg(long, value_enum, default_value = "skip")]
    pub overlap: OverlapArg,
    #[arg(long, value_enum, default_value = "latest")]
    pub catchup: CatchupArg,
    #[arg(long)]
    pub start_at: Option<DateTime<Utc>>,
    #[arg(long)]
    pub end_at: Option<DateTime<Utc>>,
    #[arg(long, default_value_t = 0)]
    pub jitter_seconds: u32,
    /// What a wall time that does not exist does: shift or skip.
    #[arg(long, default_value = "shift")]
    pub dst_gap: String,
    /// Which occurrence of a repeated wall time fires: first, last, both.
    #[arg(long, default_value = "first")]
    pub dst_fold: String,
    #[arg(long)]
    pub max_lateness_seconds: Option<i32>,
    /// Create it paused.
    #[arg(long)]
    pub paused: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum OverlapArg {
    Skip,
    QueueOne,
    Allow,
    CancelOther,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum CatchupArg {
    None,
    Latest,
    All,
}

#[derive(Args, Debug)]
pub struct PipelineArgs {
    pub pipeline: Uuid,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    pub id: Uuid,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args, Debug)]
pub struct PauseArgs {
    pub id: Uuid,
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args, Debug)]
pub struct NextArgs {
    pub id: Uuid,
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args, Debug)]
pub struct TicksArgs {
    pub id: Uuid,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Only this outcome (fired, skipped_overlap, missed_late, paused,
    /// dst_skipped).
    #[arg(long)]
    pub outcome: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Args, Debug)]
pub struct BackfillArgs {
    pub id: Uuid,
    #[arg(long)]
    pub from: DateTime<Utc>,
    #[arg(long)]
    pub to: DateTime<Utc>,
    /// allow or queue_one.
    #[arg(long, value_enum, default_value = "allow")]
    pub overlap: OverlapArg,
    #[arg(long, default_value_t = 1)]
    pub max_concurrent: i32,
    #[command(flatten)]
    pub db: DbArgs,
}

fn overlap(o: OverlapArg) -> Overlap {
    match o {
        OverlapArg::Skip => Overlap::Skip,
        OverlapArg::QueueOne => Overlap::QueueOne,
        OverlapArg::Allow => Overlap::Allow,
        OverlapArg::CancelOther => Overlap::CancelOther,
    }
}

/// Prints a schedule error the way the API's 422 lists problems.
fn report(e: ScheduleError) -> i32 {
    match e {
        ScheduleError::Invalid(problems) => {
            for p in problems {
                eprintln!("error: {}: {}", p.field, p.message);
            }
            2
        }
        ScheduleError::Db(d) => {
            eprintln!("error: {d}");
            3
        }
    }
}

fn print_json(v: &impl serde::Serialize) -> i32 {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    0
}

fn db_of(c: &ScheduleCommand) -> &DbArgs {
    match c {
        ScheduleCommand::Create(a) => &a.db,
        ScheduleCommand::List(a) => &a.db,
        ScheduleCommand::Pause(a) => &a.db,
        ScheduleCommand::Next(a) => &a.db,
        ScheduleCommand::Ticks(a) => &a.db,
        ScheduleCommand::Backfill(a) => &a.db,
        ScheduleCommand::Show(a)
        | ScheduleCommand::Resume(a)
        | ScheduleCommand::Delete(a)
        | ScheduleCommand::Trigger(a)
        | ScheduleCommand::CancelBackfill(a) => &a.db,
    }
}

pub(super) async fn schedule_cmd(c: ScheduleCommand) -> i32 {
    let pool = match connect_current(&db_of(&c).database_url).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 3;
        }
    };
    let now = Utc::now();
    let r: Result<i32, ScheduleError> = async {
        Ok(match c {
            ScheduleCommand::Create(a) => {
                let gap = match a.dst_gap.as_str() {
                    "shift" => DstGap::Shift,
                    "skip" => DstGap::Skip,
                    other => {
                        eprintln!("error: --dst-gap \"{other}\" is not shift or skip");
                        return Ok(2);
                    }
                };
                let fold = match a.dst_fold.as_str() {
                    "first" => DstFold::First,
                    "last" => DstFold::Last,
                    "both" => DstFold::Both,
                    other => {
                        eprintln!("error: --dst-fold \"{other}\" is not first, last or both");
                        return Ok(2);
                    }
                };
                let new = NewSchedule {
                    pipeline_id: a.pipeline,
                    spec: SpecInput {
                        cron: a.cron,
                        timezone: a.timezone,
                        start_at: a.start_at,
                        end_at: a.end_at,
                        jitter_secs: a.jitter_seconds,
                        dst_gap: gap,
                        dst_fold: fold,
                    },
                    enabled: !a.paused,
                    overlap: overlap(a.overlap),
                    catchup: match a.catchup {
                        CatchupArg::None => Catchup::None,
                        CatchupArg::Latest => Catchup::Latest,
                        CatchupArg::All => Catchup::All,
                    },
                    max_lateness_secs: a.max_lateness_seconds,
                    created_by: None,
                };
                println!("{}", schedules::create(&mut conn, &new, now).await?);
                0
            }
            ScheduleCommand::List(a) => print_json(&schedules::list(&mut conn, a.pipeline).await?),
            ScheduleCommand::Show(a) => match schedules::get(&mut conn, a.id).await? {
                Some(s) => print_json(&s),
                None => missing(a.id),
            },
            ScheduleCommand::Pause(a) => {
                let p = SchedulePatch {
                    enabled: Some(false),
                    pause_note: Some(a.note),
                    ..Default::default()
                };
                change(&mut conn, a.id, &p, now).await?
            }
            ScheduleCommand::Resume(a) => {
                let p = SchedulePatch {
                    enabled: Some(true),
                    pause_note: Some(None),
                    ..Default::default()
                };
                change(&mut conn, a.id, &p, now).await?
            }
            ScheduleCommand::Delete(a) => {
                if schedules::delete(&mut conn, a.id).await? {
                    0
                } else {
                    missing(a.id)
                }
            }
            ScheduleCommand::Next(a) => match schedules::get(&mut conn, a.id).await? {
                Some(s) => {
                    let spec = Spec::parse(&s.spec_input()).map_err(ScheduleError::Invalid)?;
                    for f in schedules::next_fire_times(&spec, s.cursor_at.max(now), a.count) {
                        println!(
                            "{}  {}{}",
                            f.utc.to_rfc3339(),
                            f.local,
                            if f.shifted {
                                "  (shifted: its wall time does not exist)"
                            } else {
                                ""
                            }
                        );
                    }
                    0
                }
                None => missing(a.id),
            },
            ScheduleCommand::Ticks(a) => {
                let rows = schedules::ticks(
                    &mut conn,
                    a.id,
                    None,
                    a.outcome.as_deref(),
                    a.limit.clamp(1, 10_000),
                )
                .await?;
                for t in rows {
                    let run = t.run_id.map(|r| r.to_string()).unwrap_or_default();
                    println!(
                        "{}  {:<16} {} {}",
                        t.scheduled_for.to_rfc3339(),
                        t.outcome,
                        run,
                        t.reason.unwrap_or_default()
                    );
                }
                0
            }
            ScheduleCommand::Trigger(a) => match schedules::get(&mut conn, a.id).await? {
                Some(s) => {
                    let mut req = TriggerRequest::new(s.pipeline_id, TriggerKind::Schedule);
                    req.schedule_id = Some(a.id);
                    match queue::trigger(&mut conn, &req).await {
                        Ok(t) => {
                            println!("{}", t.run_id);
                            0
                        }
                        Err(e) => {
                            eprintln!("error: {e}");
                            3
                        }
                    }
                }
                None => missing(a.id),
            },
            ScheduleCommand::Backfill(a) => match schedules::get(&mut conn, a.id).await? {
                Some(s) => {
                    let new = NewBackfill {
                        from: a.from,
                        to: a.to,
                        overlap: overlap(a.overlap),
                        max_concurrent: a.max_concurrent,
                        created_by: None,
                    };
                    print_json(&backfills::create(&mut conn, &s, &new, now).await?)
                }
                None => missing(a.id),
            },
            ScheduleCommand::CancelBackfill(a) => {
                match backfills::cancel(&mut conn, a.id, now).await? {
                    Some(n) => {
                        println!("cancelled, with {n} queued run(s)");
                        0
                    }
                    None => {
                        eprintln!("error: backfill {} is not running", a.id);
                        2
                    }
                }
            }
        })
    }
    .await;
    r.unwrap_or_else(report)
}

fn missing(id: Uuid) -> i32 {
    eprintln!("error: no schedule {id}");
    2
}

async fn change(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    p: &SchedulePatch,
    now: DateTime<Utc>,
) -> Result<i32, ScheduleError> {
    let Some(current) = schedules::get(conn, id).await? else {
        return Ok(missing(id));
    };
    Ok(match schedules::update(conn, &current, p, now).await? {
        Some(row) => print_json(&row),
        None => missing(id),
    })
}
