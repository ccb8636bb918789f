-- What the HTTP API and Supabase RPC (PostgREST) share: triggering a run,
-- cancelling one and reading its status as SQL functions, called as the
-- caller (role authenticated) so row-level security decides, with the same
-- Idempotency-Key rule everywhere. The CLI and the scheduler (service role)
-- call the same functions.

-- The request an idempotency key was first used with (blake3 of the
-- canonical body): the same key with another body is a conflict.
ALTER TABLE pipeline_runs ADD COLUMN request_hash text;
ALTER TABLE pipeline_runs ADD CONSTRAINT pipeline_runs_request_hash_is_blake3_hex
    CHECK (request_hash IS NULL OR request_hash ~ '^[0-9a-f]{64}$');

-- Puts the queue job of a run that was just inserted (in this transaction)
-- into apalis' table, shaped as apalis-postgres' own push: a ULID id, the
-- `mudrock.runs` queue, `{"run_id": ...}`, one attempt (mudrock retries
-- itself), the run id as idempotency key (one job per run). SECURITY
-- DEFINER because callers have no rights on the queue tables; it only
-- enqueues a queued run without a job, for a caller who may write its
-- project (or a service caller without claims).
CREATE FUNCTION mudrock_enqueue(p_run uuid) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF auth.uid() IS NOT NULL AND NOT can_write_project(project_of_run(p_run)) THEN
        RAISE EXCEPTION 'run % is not yours to queue', p_run
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pipeline_runs WHERE id = p_run AND status = 'queued') THEN
        RAISE EXCEPTION 'run % is not queued', p_run
            USING ERRCODE = 'check_violation', CONSTRAINT = 'mudrock_enqueue_queued_only';
    END IF;
    INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                             priority, metadata, idempotency_key)
    VALUES (apalis.generate_ulid(), 'mudrock.runs',
            convert_to(json_build_object('run_id', p_run)::text, 'UTF8'),
            'Pending', 0, 1, now(), 0, ''::hstore, p_run::text)
    ON CONFLICT DO NOTHING;
END $$;

-- Triggers a run of a pipeline's latest saved version (or `p_revision`):
-- the run row and its job in one transaction. With an idempotency key used
-- before on this pipeline, returns that run (created = false) when the
-- request hash matches, and fails with constraint
-- `pipeline_runs_idempotency_conflict` when it does not. SECURITY INVOKER:
-- the caller's row-level security decides whether the pipeline is visible
-- and the run may be inserted.
CREATE FUNCTION mudrock_trigger_run(
    p_pipeline uuid,
    p_idempotency_key text DEFAULT NULL,
    p_request_hash text DEFAULT NULL,
    p_trigger run_trigger DEFAULT 'api',
    p_revision integer DEFAULT NULL,
    p_schedule uuid DEFAULT NULL,
    p_scheduled_for timestamptz DEFAULT NULL,
    p_requested_by uuid DEFAULT NULL
) RETURNS TABLE (run_id uuid, created boolean)
    LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    v_project uuid;
    v_version uuid;
    v_found uuid;
    v_hash text;
BEGIN
    IF p_idempotency_key IS NOT NULL THEN
        SELECT r.id, r.request_hash INTO v_found, v_hash FROM pipeline_runs r
         WHERE r.pipeline_id = p_pipeline AND r.idempotency_key = p_idempotency_key;
        IF v_found IS NOT NULL THEN
            IF v_hash IS DISTINCT FROM p_request_hash THEN
                RAISE EXCEPTION 'idempotency key "%" was used with a different request', p_idempotency_key
                    USING ERRCODE = 'unique_violation', CONSTRAINT = 'pipeline_runs_idempotency_conflict';
            END IF;
            RETURN QUERY SELECT v_found, false;
            RETURN;
        END IF;
    END IF;
    IF p_schedule IS NOT NULL AND p_scheduled_for IS NOT NULL THEN
        SELECT r.id INTO v_found FROM pipeline_runs r
         WHERE r.schedule_id = p_schedule AND r.scheduled_for = p_scheduled_for;
        IF v_found IS NOT NULL THEN
            RETURN QUERY SELECT v_found, false;
            RETURN;
        END IF;
    END IF;
    SELECT p.project_id INTO v_project FROM pipelines p WHERE p.id = p_pipeline;
    IF v_project IS NULL THEN
        RAISE EXCEPTION 'pipeline % does not exist', p_pipeline
            USING ERRCODE = 'no_data_found', CONSTRAINT = 'mudrock_trigger_pipeline_exists';
    END IF;
    SELECT v.id INTO v_version FROM pipeline_versions v
     WHERE v.pipeline_id = p_pipeline AND (p_revision IS NULL OR v.revision = p_revision)
     ORDER BY v.revision DESC LIMIT 1;
    IF v_version IS NULL THEN
        RAISE EXCEPTION 'pipeline % has no saved version%', p_pipeline,
            CASE WHEN p_revision IS NULL THEN '' ELSE ' ' || p_revision END
            USING ERRCODE = 'no_data_found', CONSTRAINT = 'mudrock_trigger_version_exists';
    END IF;
    -- A signed-in caller is who requested the run, whatever it passes.
    INSERT INTO pipeline_runs (pipeline_id, project_id, pipeline_version_id, trigger,
                               requested_by, idempotency_key, request_hash, schedule_id, scheduled_for)
    VALUES (p_pipeline, v_project, v_version, p_trigger, coalesce(auth.uid(), p_requested_by),
            p_idempotency_key, p_request_hash, p_schedule, p_scheduled_for)
    ON CONFLICT DO NOTHING
    RETURNING id INTO v_found;
    IF v_found IS NULL THEN
        -- A concurrent trigger with the same key won: return its run.
        RETURN QUERY SELECT t.run_id, t.created
            FROM mudrock_trigger_run(p_pipeline, p_idempotency_key, p_request_hash, p_trigger,
                                     p_revision, p_schedule, p_scheduled_for, p_requested_by) t;
        RETURN;
    END IF;
    PERFORM mudrock_enqueue(v_found);
    RETURN QUERY SELECT v_found, true;
END $$;

-- Settles a cancellation: a queued run whose cancellation was requested
-- becomes `cancelled` at once (a running one stops at its worker's next
-- node boundary). SECURITY DEFINER because callers may only set
-- `cancel_requested` (under row-level security); this moves nothing else.
CREATE FUNCTION mudrock_settle_cancel(p_run uuid) RETURNS boolean
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH moved AS (
        UPDATE pipeline_runs SET status = 'cancelled',
               finished_at = greatest(clock_timestamp(), started_at)
         WHERE id = p_run AND status = 'queued' AND cancel_requested
        RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM moved)
$$;

-- Asks a run to stop, as the caller: false when the run is finished or not
-- visible; row-level security decides whether the caller may.
CREATE FUNCTION mudrock_cancel_run(p_run uuid) RETURNS boolean
    LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    v_status run_status;
BEGIN
    UPDATE pipeline_runs SET cancel_requested = true
     WHERE id = p_run AND status IN ('queued', 'running')
    RETURNING status INTO v_status;
    IF v_status IS NULL THEN
        RETURN false;
    END IF;
    PERFORM mudrock_settle_cancel(p_run);
    RETURN true;
END $$;

-- A run's state with its nodes, as the caller may see it (NULL if not).
CREATE FUNCTION mudrock_run_status(p_run uuid) RETURNS jsonb
    LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT jsonb_build_object(
        'id', r.id, 'pipelineId', r.pipeline_id, 'projectId', r.project_id,
        'status', r.status, 'attempt', r.attempt, 'error', r.error,
        'queuedAt', r.queued_at, 'startedAt', r.started_at, 'finishedAt', r.finished_at,
        'nodes', coalesce((SELECT jsonb_agg(jsonb_build_object(
                    'nodeId', n.node_id, 'status', n.status, 'reason', n.reason,
                    'cacheHit', n.cache_hit, 'rows', n.rows, 'error', n.error)
                    ORDER BY n.node_id)
                 FROM node_runs n WHERE n.run_id = r.id), '[]'::jsonb))
    FROM pipeline_runs r WHERE r.id = p_run
$$;

REVOKE ALL ON FUNCTION mudrock_enqueue(uuid), mudrock_settle_cancel(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mudrock_enqueue(uuid), mudrock_settle_cancel(uuid)
    TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION mudrock_trigger_run(uuid, text, text, run_trigger, integer, uuid, timestamptz, uuid),
    mudrock_cancel_run(uuid), mudrock_run_status(uuid)
    TO authenticated, service_role;
GRANT UPDATE (request_hash) ON pipeline_runs TO service_role;
