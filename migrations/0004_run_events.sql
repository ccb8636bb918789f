-- Run and node state changes as an append-only event log, for live
-- progress (Server-Sent Events) with resume: a client that reconnects with
-- the last id it saw gets every later event once.
--
-- Ids increase in commit order within a project: the trigger takes a
-- per-project transaction lock before the id is drawn, so an event that
-- commits later never has a smaller id than one a reader already passed.
-- Each insert notifies `mudrock_run_events` with the project id at commit.

CREATE TABLE run_events (
    id         bigserial PRIMARY KEY,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    run_id     uuid NOT NULL REFERENCES pipeline_runs (id) ON DELETE CASCADE,
    -- 'run' for the run's own status, 'node' for one node's.
    kind       text NOT NULL,
    node_id    text,
    status     text NOT NULL,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT run_events_kind_known CHECK (kind IN ('run', 'node')),
    CONSTRAINT run_events_node_has_id CHECK ((kind = 'node') = (node_id IS NOT NULL))
);
-- The two streams: one run's events, one project's events, after an id.
CREATE INDEX run_events_run_idx ON run_events (run_id, id);
CREATE INDEX run_events_project_idx ON run_events (project_id, id);

ALTER TABLE run_events ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON run_events TO authenticated;
GRANT ALL ON run_events TO service_role;
GRANT USAGE ON SEQUENCE run_events_id_seq TO service_role;
CREATE POLICY run_events_select ON run_events FOR SELECT TO authenticated
    USING (can_read_project(project_id));

CREATE FUNCTION run_events_append(p_project uuid, p_run uuid, p_kind text, p_node text,
                                  p_status text, p_data jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    -- Serialises a project's event ids with its commits (see above).
    PERFORM pg_advisory_xact_lock(hashtextextended('mudrock run events ' || p_project::text, 0));
    INSERT INTO run_events (project_id, run_id, kind, node_id, status, data)
    VALUES (p_project, p_run, p_kind, p_node, p_status, p_data);
    PERFORM pg_notify('mudrock_run_events', p_project::text);
END $$;

CREATE FUNCTION pipeline_runs_event() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status OR NEW.attempt IS DISTINCT FROM OLD.attempt THEN
        PERFORM run_events_append(NEW.project_id, NEW.id, 'run', NULL, NEW.status::text,
            jsonb_build_object('runId', NEW.id, 'pipelineId', NEW.pipeline_id, 'status', NEW.status,
                               'attempt', NEW.attempt, 'error', NEW.error));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER pipeline_runs_event AFTER INSERT OR UPDATE OF status, attempt ON pipeline_runs
    FOR EACH ROW EXECUTE FUNCTION pipeline_runs_event();

CREATE FUNCTION node_runs_event() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NEW.status <> 'pending' THEN
        PERFORM run_events_append(project_of_run(NEW.run_id), NEW.run_id, 'node', NEW.node_id,
            NEW.status::text,
            jsonb_build_object('runId', NEW.run_id, 'nodeId', NEW.node_id, 'status', NEW.status,
                               'reason', NEW.reason, 'rows', NEW.rows, 'cacheHit', NEW.cache_hit,
                               'error', NEW.error));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER node_runs_event AFTER UPDATE OF status ON node_runs
    FOR EACH ROW EXECUTE FUNCTION node_runs_event();
