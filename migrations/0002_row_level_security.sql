-- Row-level security, Supabase-compatible: policies call auth.uid(). On plain
-- PostgreSQL (no `auth` schema) this creates auth.uid() reading the JWT
-- claims from `request.jwt.claims` (as PostgREST sets them) and the roles
-- anon, authenticated and service_role.
--
-- Who may do what (per project):
--   owner:    everything, including delete and permission management
--   editor:   create, read, update, trigger and cancel runs; no delete,
--             no permission management
--   viewer:   read only
--   stranger: nothing; the project is invisible
-- The API acts inside RLS as the caller (role authenticated); only the
-- worker and the scheduler use service_role, which bypasses RLS.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'auth') THEN
        CREATE SCHEMA auth;
        CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
            SELECT nullif(
                coalesce(
                    nullif(current_setting('request.jwt.claim.sub', true), ''),
                    nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
                ),
                ''
            )::uuid
        $f$;
    END IF;
END $$;

-- Roles are cluster-wide: tolerate another database (or a concurrent
-- migration in a test) having made them first.
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
    BEGIN
        ALTER ROLE service_role BYPASSRLS;
    EXCEPTION WHEN insufficient_privilege THEN
        NULL; -- Supabase already made it so.
    END;
END $$;

GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;

-- The caller's role in a project, or NULL. SECURITY DEFINER so that policies
-- on project_permissions can use it without recursing into themselves.
CREATE FUNCTION project_role_of(p uuid) RETURNS project_role
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT role FROM project_permissions WHERE project_id = p AND user_id = auth.uid()
$$;

CREATE FUNCTION can_read_project(p uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT project_role_of(p) IS NOT NULL
        OR EXISTS (SELECT 1 FROM projects WHERE id = p AND owner_id = auth.uid())
$$;

CREATE FUNCTION can_write_project(p uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce(project_role_of(p) IN ('owner', 'editor'), false)
$$;

CREATE FUNCTION owns_project(p uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce(project_role_of(p) = 'owner', false)
$$;

CREATE FUNCTION project_of_pipeline(pl uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT project_id FROM pipelines WHERE id = pl
$$;

CREATE FUNCTION project_of_run(r uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT project_id FROM pipeline_runs WHERE id = r
$$;

GRANT EXECUTE ON FUNCTION project_role_of(uuid), can_read_project(uuid), can_write_project(uuid),
    owns_project(uuid), project_of_pipeline(uuid), project_of_run(uuid)
    TO anon, authenticated, service_role;

-- The creator of a project is its first owner.
CREATE FUNCTION projects_owner_permission() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO project_permissions (project_id, user_id, role, granted_by)
    VALUES (NEW.id, NEW.owner_id, 'owner', NEW.owner_id)
    ON CONFLICT (project_id, user_id) DO UPDATE SET role = 'owner';
    RETURN NEW;
END $$;
CREATE TRIGGER projects_owner_permission AFTER INSERT ON projects
    FOR EACH ROW EXECUTE FUNCTION projects_owner_permission();

-- A project always keeps at least one owner (deleting the project itself
-- takes its permissions along).
CREATE FUNCTION project_permissions_keep_an_owner() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF OLD.role = 'owner'
       AND EXISTS (SELECT 1 FROM projects WHERE id = OLD.project_id)
       AND NOT EXISTS (SELECT 1 FROM project_permissions WHERE project_id = OLD.project_id AND role = 'owner') THEN
        RAISE EXCEPTION 'project % must keep at least one owner', OLD.project_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'project_permissions_keep_an_owner';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER project_permissions_keep_an_owner AFTER DELETE OR UPDATE OF role ON project_permissions
    FOR EACH ROW EXECUTE FUNCTION project_permissions_keep_an_owner();

ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE project_permissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipelines ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline_schedules ENABLE ROW LEVEL SECURITY;
ALTER TABLE pipeline_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE node_runs ENABLE ROW LEVEL SECURITY;

-- Table privileges say which statements a role may issue at all; the
-- policies below say on which rows. Columns that no caller may change
-- (ids, ownership, run bookkeeping) are left out of UPDATE grants.
GRANT SELECT, INSERT, DELETE ON projects, project_permissions, pipelines, pipeline_schedules, pipeline_runs
    TO authenticated;
GRANT SELECT, INSERT ON pipeline_versions TO authenticated;
GRANT SELECT ON node_runs TO authenticated;
GRANT UPDATE (name, description, settings, updated_at) ON projects TO authenticated;
GRANT UPDATE (role) ON project_permissions TO authenticated;
GRANT UPDATE (name, description, version, dag_definition, tags, updated_at) ON pipelines TO authenticated;
GRANT UPDATE (cron, timezone, enabled, overlap_policy, catchup, next_fire_at) ON pipeline_schedules TO authenticated;
GRANT UPDATE (cancel_requested) ON pipeline_runs TO authenticated;
GRANT ALL ON ALL TABLES IN SCHEMA public TO service_role;

-- projects
CREATE POLICY projects_select ON projects FOR SELECT TO authenticated
    USING (owner_id = auth.uid() OR can_read_project(id));
CREATE POLICY projects_insert ON projects FOR INSERT TO authenticated
    WITH CHECK (owner_id = auth.uid());
CREATE POLICY projects_update ON projects FOR UPDATE TO authenticated
    USING (can_write_project(id)) WITH CHECK (can_write_project(id));
CREATE POLICY projects_delete ON projects FOR DELETE TO authenticated
    USING (owns_project(id));

-- project_permissions: members see who has access; only owners change it.
CREATE POLICY project_permissions_select ON project_permissions FOR SELECT TO authenticated
    USING (can_read_project(project_id));
CREATE POLICY project_permissions_insert ON project_permissions FOR INSERT TO authenticated
    WITH CHECK (owns_project(project_id));
CREATE POLICY project_permissions_update ON project_permissions FOR UPDATE TO authenticated
    USING (owns_project(project_id)) WITH CHECK (owns_project(project_id));
CREATE POLICY project_permissions_delete ON project_permissions FOR DELETE TO authenticated
    USING (owns_project(project_id));

-- pipelines
CREATE POLICY pipelines_select ON pipelines FOR SELECT TO authenticated
    USING (can_read_project(project_id));
CREATE POLICY pipelines_insert ON pipelines FOR INSERT TO authenticated
    WITH CHECK (can_write_project(project_id));
CREATE POLICY pipelines_update ON pipelines FOR UPDATE TO authenticated
    USING (can_write_project(project_id)) WITH CHECK (can_write_project(project_id));
CREATE POLICY pipelines_delete ON pipelines FOR DELETE TO authenticated
    USING (owns_project(project_id));

-- pipeline_versions: saving a pipeline adds one; nobody changes or removes
-- one (they go with their pipeline).
CREATE POLICY pipeline_versions_select ON pipeline_versions FOR SELECT TO authenticated
    USING (can_read_project(project_of_pipeline(pipeline_id)));
CREATE POLICY pipeline_versions_insert ON pipeline_versions FOR INSERT TO authenticated
    WITH CHECK (can_write_project(project_of_pipeline(pipeline_id)));

-- pipeline_schedules
CREATE POLICY pipeline_schedules_select ON pipeline_schedules FOR SELECT TO authenticated
    USING (can_read_project(project_of_pipeline(pipeline_id)));
CREATE POLICY pipeline_schedules_insert ON pipeline_schedules FOR INSERT TO authenticated
    WITH CHECK (can_write_project(project_of_pipeline(pipeline_id)));
CREATE POLICY pipeline_schedules_update ON pipeline_schedules FOR UPDATE TO authenticated
    USING (can_write_project(project_of_pipeline(pipeline_id)))
    WITH CHECK (can_write_project(project_of_pipeline(pipeline_id)));
CREATE POLICY pipeline_schedules_delete ON pipeline_schedules FOR DELETE TO authenticated
    USING (owns_project(project_of_pipeline(pipeline_id)));

-- pipeline_runs: editors trigger (insert) and cancel (update
-- cancel_requested); owners may delete; the rest is the worker's.
CREATE POLICY pipeline_runs_select ON pipeline_runs FOR SELECT TO authenticated
    USING (can_read_project(project_id));
CREATE POLICY pipeline_runs_insert ON pipeline_runs FOR INSERT TO authenticated
    WITH CHECK (can_write_project(project_id) AND project_id = project_of_pipeline(pipeline_id));
CREATE POLICY pipeline_runs_update ON pipeline_runs FOR UPDATE TO authenticated
    USING (can_write_project(project_id)) WITH CHECK (can_write_project(project_id));
CREATE POLICY pipeline_runs_delete ON pipeline_runs FOR DELETE TO authenticated
    USING (owns_project(project_id));

-- node_runs: read-only for callers; written by the worker.
CREATE POLICY node_runs_select ON node_runs FOR SELECT TO authenticated
    USING (can_read_project(project_of_run(run_id)));
