-- The audit trail: who did what, to which project, when, with which
-- outcome, for every mutating API call and every data access.
--
-- Append-only: no API role may update or delete a row (no grants; a
-- trigger refuses UPDATE and DELETE for everyone, the table's owner
-- included, until it is disabled on purpose). Rows are added only through
-- mudrock_audit_head / mudrock_audit_append, which serialise appends per
-- project (an advisory lock held to the end of the transaction) and check
-- that each row continues its project's chain: `seq` is the next number and
-- `prev_hash` the previous row's `hash`. The hashes themselves are blake3,
-- computed by mudrock (service::audit), which `mudrock audit verify`
-- recomputes: an edited, removed or inserted row breaks the chain there.
--
-- Rows outlive their project (no foreign key): a deleted project's trail
-- stays. Rows about no project (a refused call on something that does not
-- exist) form their own chain, project_id NULL.

CREATE TYPE audit_outcome AS ENUM ('ok', 'refused', 'invalid', 'failed');

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  uuid,
    seq         bigint NOT NULL,
    at          timestamptz NOT NULL,
    user_id     uuid,
    role        text,
    action      text NOT NULL,
    target      text NOT NULL,
    request_id  text,
    outcome     audit_outcome NOT NULL,
    -- The response's status; NULL for a row written in the action's own
    -- transaction (before the response exists).
    status      smallint,
    prev_hash   text NOT NULL,
    hash        text NOT NULL,
    CONSTRAINT audit_log_seq_positive CHECK (seq >= 1),
    CONSTRAINT audit_log_hash_is_blake3_hex CHECK (hash ~ '^[0-9a-f]{64}$' AND prev_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT audit_log_action_bounded CHECK (length(action) <= 200),
    CONSTRAINT audit_log_target_bounded CHECK (length(target) <= 2000),
    CONSTRAINT audit_log_request_id_bounded CHECK (length(request_id) <= 200),
    CONSTRAINT audit_log_status_http CHECK (status IS NULL OR status BETWEEN 100 AND 599)
);
-- One chain per project (the NULL project's too): the owner's reads page
-- by seq, newest first; verify walks it oldest first.
CREATE UNIQUE INDEX audit_log_chain_idx
    ON audit_log ((coalesce(project_id, '00000000-0000-0000-0000-000000000000'::uuid)), seq);

CREATE FUNCTION audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only'
        USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'audit_log_append_only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The head of a project's chain (0 and 64 zeros when empty), with the
-- project's append lock taken until the transaction ends.
CREATE FUNCTION mudrock_audit_head(p uuid, OUT seq bigint, OUT hash text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('mudrock.audit:' || coalesce(p::text, ''), 0));
    SELECT a.seq, a.hash INTO seq, hash FROM audit_log a
        WHERE coalesce(a.project_id, '00000000-0000-0000-0000-000000000000'::uuid)
            = coalesce(p, '00000000-0000-0000-0000-000000000000'::uuid)
        ORDER BY a.seq DESC LIMIT 1;
    IF seq IS NULL THEN
        seq := 0;
        hash := repeat('0', 64);
    END IF;
END $$;

-- Appends one row; refuses one that does not continue the chain.
CREATE FUNCTION mudrock_audit_append(
    p uuid, p_seq bigint, p_at timestamptz, p_user uuid, p_role text, p_action text,
    p_target text, p_request_id text, p_outcome audit_outcome, p_status smallint,
    p_prev_hash text, p_hash text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    head record;
BEGIN
    SELECT * INTO head FROM mudrock_audit_head(p);
    IF p_seq <> head.seq + 1 OR p_prev_hash <> head.hash THEN
        RAISE EXCEPTION 'audit row % does not continue the chain of project % (head %)', p_seq, p, head.seq
            USING ERRCODE = 'check_violation', CONSTRAINT = 'audit_log_chain';
    END IF;
    INSERT INTO audit_log (project_id, seq, at, user_id, role, action, target, request_id,
                           outcome, status, prev_hash, hash)
    VALUES (p, p_seq, p_at, p_user, p_role, p_action, p_target, p_request_id,
            p_outcome, p_status, p_prev_hash, p_hash);
END $$;

REVOKE ALL ON FUNCTION mudrock_audit_head(uuid), mudrock_audit_append(uuid, bigint, timestamptz,
    uuid, text, text, text, text, audit_outcome, smallint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mudrock_audit_head(uuid), mudrock_audit_append(uuid, bigint, timestamptz,
    uuid, text, text, text, text, audit_outcome, smallint, text, text) TO authenticated, service_role;

-- The project a call's path names (`/v1/{kind}/{id}/...`), whoever may
-- see it: what an audit row is filed under.
CREATE FUNCTION mudrock_project_of(kind text, id uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT CASE kind
        WHEN 'projects' THEN id
        WHEN 'pipelines' THEN project_of_pipeline(id)
        WHEN 'runs' THEN project_of_run(id)
        WHEN 'schedules' THEN (SELECT pl.project_id FROM pipeline_schedules s
                               JOIN pipelines pl ON pl.id = s.pipeline_id WHERE s.id = mudrock_project_of.id)
        WHEN 'backfills' THEN (SELECT pl.project_id FROM schedule_backfills b
                               JOIN pipeline_schedules s ON s.id = b.schedule_id
                               JOIN pipelines pl ON pl.id = s.pipeline_id WHERE b.id = mudrock_project_of.id)
    END
$$;
REVOKE ALL ON FUNCTION mudrock_project_of(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mudrock_project_of(text, uuid) TO authenticated, service_role;

-- Owners read their project's trail; nobody else reads it through the API
-- roles, and no API role may change it.
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_log_owners_read ON audit_log FOR SELECT TO authenticated
    USING (project_id IS NOT NULL AND owns_project(project_id));
GRANT SELECT ON audit_log TO authenticated, service_role;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON audit_log FROM anon, authenticated, service_role;
