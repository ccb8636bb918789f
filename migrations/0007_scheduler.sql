-- Schedules in full: start/end, jitter, daylight-saving rules, lateness,
-- pause notes; the tick ledger (every fire time and what became of it);
-- backfills. The scheduler (service role) writes ticks and runs in one
-- transaction per schedule; the unique (schedule, scheduled_for) index on
-- runs makes a second run for a fire time impossible whatever the number
-- of schedulers.

-- Not usable in this transaction (PostgreSQL), only from the next one.
ALTER TYPE overlap_policy ADD VALUE IF NOT EXISTS 'cancel_other';
ALTER TYPE run_trigger ADD VALUE IF NOT EXISTS 'backfill';

CREATE TYPE dst_gap_policy AS ENUM ('shift', 'skip');
CREATE TYPE dst_fold_policy AS ENUM ('first', 'last', 'both');
CREATE TYPE tick_outcome AS ENUM ('fired', 'skipped_overlap', 'missed_late', 'paused', 'dst_skipped');
CREATE TYPE backfill_status AS ENUM ('running', 'done', 'cancelled');

ALTER TABLE pipeline_schedules
    ADD COLUMN start_at timestamptz,
    ADD COLUMN end_at timestamptz,
    ADD COLUMN jitter_seconds integer NOT NULL DEFAULT 0,
    ADD COLUMN dst_gap dst_gap_policy NOT NULL DEFAULT 'shift',
    ADD COLUMN dst_fold dst_fold_policy NOT NULL DEFAULT 'first',
    ADD COLUMN max_lateness_seconds integer,
    ADD COLUMN pause_note text,
    -- Fire times after this one have not been accounted for yet.
    ADD COLUMN cursor_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT pipeline_schedules_end_after_start
        CHECK (end_at IS NULL OR start_at IS NULL OR end_at > start_at),
    ADD CONSTRAINT pipeline_schedules_jitter_in_range CHECK (jitter_seconds BETWEEN 0 AND 604800),
    ADD CONSTRAINT pipeline_schedules_max_lateness_positive
        CHECK (max_lateness_seconds IS NULL OR max_lateness_seconds > 0),
    ADD CONSTRAINT pipeline_schedules_cron_length CHECK (length(cron) <= 200),
    ADD CONSTRAINT pipeline_schedules_pause_note_length CHECK (length(pause_note) <= 1000);

-- The scheduler's due query covers paused schedules too (their fire times
-- are recorded as `paused`): every schedule that has a next fire time.
DROP INDEX pipeline_schedules_due_idx;
CREATE INDEX pipeline_schedules_due_idx ON pipeline_schedules (next_fire_at)
    WHERE next_fire_at IS NOT NULL;

GRANT UPDATE (start_at, end_at, jitter_seconds, dst_gap, dst_fold, max_lateness_seconds,
              pause_note, cursor_at, updated_at) ON pipeline_schedules TO authenticated;
-- Editors manage schedules, deleting included (issue 15; 0002 had owners).
DROP POLICY pipeline_schedules_delete ON pipeline_schedules;
CREATE POLICY pipeline_schedules_delete ON pipeline_schedules FOR DELETE TO authenticated
    USING (can_write_project(project_of_pipeline(pipeline_id)));

CREATE FUNCTION project_of_schedule(p_schedule uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT p.project_id FROM pipeline_schedules s JOIN pipelines p ON p.id = s.pipeline_id
     WHERE s.id = p_schedule
$$;
GRANT EXECUTE ON FUNCTION project_of_schedule(uuid) TO anon, authenticated, service_role;

-- A backfill: a schedule's fire times over a past window, run as one
-- object with its own overlap policy and concurrency.
CREATE TABLE schedule_backfills (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    schedule_id    uuid NOT NULL REFERENCES pipeline_schedules (id) ON DELETE CASCADE,
    from_at        timestamptz NOT NULL,
    to_at          timestamptz NOT NULL,
    overlap_policy overlap_policy NOT NULL DEFAULT 'allow',
    max_concurrent integer NOT NULL DEFAULT 1,
    -- How many fire times the window holds (counted at creation).
    fire_times     bigint NOT NULL DEFAULT 0,
    -- Fire times after this one have no run yet.
    cursor_at      timestamptz NOT NULL,
    status         backfill_status NOT NULL DEFAULT 'running',
    created_by     uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    CONSTRAINT schedule_backfills_window CHECK (to_at > from_at),
    CONSTRAINT schedule_backfills_concurrency CHECK (max_concurrent BETWEEN 1 AND 100),
    CONSTRAINT schedule_backfills_finished_iff_over
        CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX schedule_backfills_running_idx ON schedule_backfills (created_at) WHERE status = 'running';
CREATE INDEX schedule_backfills_schedule_idx ON schedule_backfills (schedule_id, created_at);

ALTER TABLE pipeline_runs ADD COLUMN backfill_id uuid REFERENCES schedule_backfills (id) ON DELETE SET NULL;
-- One run per fire time of a schedule, and separately per fire time of a
-- backfill (a backfill may run a time the schedule already ran).
DROP INDEX pipeline_runs_schedule_fire_uq;
CREATE UNIQUE INDEX pipeline_runs_schedule_fire_uq ON pipeline_runs (schedule_id, scheduled_for)
    WHERE schedule_id IS NOT NULL AND scheduled_for IS NOT NULL AND backfill_id IS NULL;
CREATE UNIQUE INDEX pipeline_runs_backfill_fire_uq ON pipeline_runs (backfill_id, scheduled_for)
    WHERE backfill_id IS NOT NULL;
-- Overlap: a pipeline's scheduled runs still queued or running.
CREATE INDEX pipeline_runs_scheduled_active_idx ON pipeline_runs (pipeline_id, scheduled_for)
    WHERE schedule_id IS NOT NULL AND status IN ('queued', 'running');

-- The tick ledger: every fire time of every schedule, with its outcome.
CREATE TABLE schedule_ticks (
    schedule_id   uuid NOT NULL REFERENCES pipeline_schedules (id) ON DELETE CASCADE,
    scheduled_for timestamptz NOT NULL,
    -- The wall-clock time in the schedule's zone that the cron matched
    -- (two fire times of a fold share it; a gap's does not exist).
    wall_time     timestamp NOT NULL,
    outcome       tick_outcome NOT NULL,
    run_id        uuid REFERENCES pipeline_runs (id) ON DELETE SET NULL,
    -- The fire time plus its jitter, for fired ticks.
    fire_at       timestamptz,
    reason        text,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    recorded_by   text,
    PRIMARY KEY (schedule_id, scheduled_for, wall_time),
    CONSTRAINT schedule_ticks_run_only_when_fired CHECK (outcome = 'fired' OR run_id IS NULL),
    CONSTRAINT schedule_ticks_reason_unless_fired CHECK (outcome = 'fired' OR reason IS NOT NULL)
);
-- Retention: the scheduler prunes by age.
CREATE INDEX schedule_ticks_recorded_idx ON schedule_ticks (recorded_at);

ALTER TABLE schedule_ticks ENABLE ROW LEVEL SECURITY;
ALTER TABLE schedule_backfills ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON schedule_ticks TO authenticated;
GRANT SELECT, INSERT ON schedule_backfills TO authenticated;
GRANT UPDATE (status, finished_at) ON schedule_backfills TO authenticated;
CREATE POLICY schedule_ticks_select ON schedule_ticks FOR SELECT TO authenticated
    USING (can_read_project(project_of_schedule(schedule_id)));
CREATE POLICY schedule_backfills_select ON schedule_backfills FOR SELECT TO authenticated
    USING (can_read_project(project_of_schedule(schedule_id)));
CREATE POLICY schedule_backfills_insert ON schedule_backfills FOR INSERT TO authenticated
    WITH CHECK (can_write_project(project_of_schedule(schedule_id)));
CREATE POLICY schedule_backfills_update ON schedule_backfills FOR UPDATE TO authenticated
    USING (can_write_project(project_of_schedule(schedule_id)))
    WITH CHECK (can_write_project(project_of_schedule(schedule_id)));
GRANT SELECT, INSERT, UPDATE, DELETE ON schedule_ticks, schedule_backfills TO service_role;
