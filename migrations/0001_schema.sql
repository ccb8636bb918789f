-- The platform's tables plus what execution needs (../shared/spec/service.md).
-- States are enums; invariants are named CHECKs so a violation names itself;
-- indexes follow the queries that use them (claiming, listing, scheduling).

CREATE TYPE project_role AS ENUM ('owner', 'editor', 'viewer');
CREATE TYPE run_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');
CREATE TYPE node_status AS ENUM ('pending', 'running', 'succeeded', 'cached', 'failed', 'skipped');
CREATE TYPE run_trigger AS ENUM ('api', 'schedule', 'cli', 'retry');
CREATE TYPE overlap_policy AS ENUM ('skip', 'queue_one', 'allow');
CREATE TYPE catchup_policy AS ENUM ('none', 'latest', 'all');

CREATE TABLE projects (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    description text,
    owner_id    uuid NOT NULL,
    settings    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projects_name_not_blank CHECK (btrim(name) <> ''),
    CONSTRAINT projects_settings_is_object CHECK (jsonb_typeof(settings) = 'object'),
    CONSTRAINT projects_max_concurrent_runs_positive
        CHECK (NOT settings ? 'maxConcurrentRuns'
               OR (jsonb_typeof(settings -> 'maxConcurrentRuns') = 'number'
                   AND (settings ->> 'maxConcurrentRuns')::numeric >= 1))
);
CREATE INDEX projects_owner_idx ON projects (owner_id);

CREATE TABLE project_permissions (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL,
    role       project_role NOT NULL,
    granted_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT project_permissions_one_role_per_user UNIQUE (project_id, user_id)
);
-- Policies look a caller's role up by (project, user): the unique index
-- above serves them; this one serves "my projects".
CREATE INDEX project_permissions_user_idx ON project_permissions (user_id, project_id);

CREATE TABLE pipelines (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id     uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name           text NOT NULL,
    description    text,
    version        text NOT NULL DEFAULT '1.0.0',
    dag_definition jsonb NOT NULL DEFAULT '{"nodes": [], "edges": []}',
    tags           text[] NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pipelines_name_not_blank CHECK (btrim(name) <> ''),
    CONSTRAINT pipelines_dag_is_object CHECK (jsonb_typeof(dag_definition) = 'object')
);
CREATE INDEX pipelines_project_idx ON pipelines (project_id, created_at DESC);

-- Every saved definition, immutable; runs point at the exact one they ran.
CREATE TABLE pipeline_versions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    pipeline_id     uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    revision        integer NOT NULL,
    version         text NOT NULL,
    dag_definition  jsonb NOT NULL,
    definition_hash text NOT NULL,
    created_by      uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pipeline_versions_revision_positive CHECK (revision >= 1),
    CONSTRAINT pipeline_versions_hash_is_blake3_hex CHECK (definition_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT pipeline_versions_one_per_revision UNIQUE (pipeline_id, revision)
);

CREATE FUNCTION pipeline_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pipeline versions are immutable; save a new version instead'
        USING ERRCODE = 'check_violation', CONSTRAINT = 'pipeline_versions_immutable';
END $$;
CREATE TRIGGER pipeline_versions_immutable BEFORE UPDATE ON pipeline_versions
    FOR EACH ROW EXECUTE FUNCTION pipeline_versions_immutable();

CREATE TABLE pipeline_schedules (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    pipeline_id    uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    cron           text NOT NULL,
    timezone       text NOT NULL DEFAULT 'UTC',
    enabled        boolean NOT NULL DEFAULT true,
    overlap_policy overlap_policy NOT NULL DEFAULT 'skip',
    catchup        catchup_policy NOT NULL DEFAULT 'latest',
    next_fire_at   timestamptz,
    last_fired_at  timestamptz,
    created_by     uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pipeline_schedules_cron_not_blank CHECK (btrim(cron) <> ''),
    CONSTRAINT pipeline_schedules_timezone_not_blank CHECK (btrim(timezone) <> '')
);
-- The scheduler's due query: enabled schedules by next fire time.
CREATE INDEX pipeline_schedules_due_idx ON pipeline_schedules (next_fire_at) WHERE enabled;
CREATE INDEX pipeline_schedules_pipeline_idx ON pipeline_schedules (pipeline_id);

CREATE TABLE pipeline_runs (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    pipeline_id         uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    project_id          uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    pipeline_version_id uuid NOT NULL REFERENCES pipeline_versions (id),
    trigger             run_trigger NOT NULL,
    schedule_id         uuid REFERENCES pipeline_schedules (id) ON DELETE SET NULL,
    -- The fire time a scheduled run is for: one run per (schedule, time).
    scheduled_for       timestamptz,
    idempotency_key     text,
    requested_by        uuid,
    status              run_status NOT NULL DEFAULT 'queued',
    attempt             integer NOT NULL DEFAULT 0,
    error               text,
    queued_at           timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    heartbeat_at        timestamptz,
    worker_id           text,
    cancel_requested    boolean NOT NULL DEFAULT false,
    CONSTRAINT pipeline_runs_attempt_not_negative CHECK (attempt >= 0),
    CONSTRAINT pipeline_runs_finished_iff_terminal
        CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CONSTRAINT pipeline_runs_running_has_started
        CHECK (status <> 'running' OR started_at IS NOT NULL),
    CONSTRAINT pipeline_runs_finished_after_started
        CHECK (finished_at IS NULL OR started_at IS NULL OR finished_at >= started_at),
    CONSTRAINT pipeline_runs_failed_has_error CHECK (status <> 'failed' OR error IS NOT NULL),
    CONSTRAINT pipeline_runs_idempotency_key_not_blank
        CHECK (idempotency_key IS NULL OR btrim(idempotency_key) <> '')
);
-- An Idempotency-Key returns the existing run: unique per pipeline.
CREATE UNIQUE INDEX pipeline_runs_idempotency_uq ON pipeline_runs (pipeline_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Each fire time of a schedule creates exactly one run.
CREATE UNIQUE INDEX pipeline_runs_schedule_fire_uq ON pipeline_runs (schedule_id, scheduled_for)
    WHERE schedule_id IS NOT NULL AND scheduled_for IS NOT NULL;
-- Claiming: the oldest queued runs first.
CREATE INDEX pipeline_runs_claim_idx ON pipeline_runs (queued_at) WHERE status = 'queued';
-- maxConcurrentRuns: running runs per project; lease expiry: by heartbeat.
CREATE INDEX pipeline_runs_running_idx ON pipeline_runs (project_id, heartbeat_at) WHERE status = 'running';
-- Listing a pipeline's runs, newest first.
CREATE INDEX pipeline_runs_pipeline_idx ON pipeline_runs (pipeline_id, queued_at DESC);

CREATE TABLE node_runs (
    run_id      uuid NOT NULL REFERENCES pipeline_runs (id) ON DELETE CASCADE,
    node_id     text NOT NULL,
    status      node_status NOT NULL DEFAULT 'pending',
    reason      text,
    cache_key   text,
    cache_hit   boolean NOT NULL DEFAULT false,
    rows        bigint,
    bytes       bigint,
    started_at  timestamptz,
    finished_at timestamptz,
    error       text,
    CONSTRAINT node_runs_pkey PRIMARY KEY (run_id, node_id),
    CONSTRAINT node_runs_cache_key_is_blake3_hex CHECK (cache_key IS NULL OR cache_key ~ '^[0-9a-f]{64}$'),
    CONSTRAINT node_runs_counts_not_negative CHECK ((rows IS NULL OR rows >= 0) AND (bytes IS NULL OR bytes >= 0)),
    CONSTRAINT node_runs_skipped_has_reason CHECK (status <> 'skipped' OR reason IS NOT NULL),
    CONSTRAINT node_runs_finished_after_started
        CHECK (finished_at IS NULL OR started_at IS NULL OR finished_at >= started_at)
);
