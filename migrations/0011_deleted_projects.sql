-- A deleted project can be restored until garbage collection purges its
-- bucket ([gc] deleted_project_grace_days later). Deleting the row keeps
-- its bucket untouched and leaves here what a restore puts back: the
-- project, its permissions, its pipelines with every saved version
-- (schedules and run rows go; the runs' artifacts stay in the bucket).
CREATE TABLE deleted_projects (
    project_id  uuid PRIMARY KEY,
    name        text NOT NULL,
    description text,
    owner_id    uuid NOT NULL,
    settings    jsonb NOT NULL,
    bucket      text,
    created_at  timestamptz NOT NULL,
    deleted_at  timestamptz NOT NULL DEFAULT now(),
    snapshot    jsonb,
    purged_at   timestamptz,
    CONSTRAINT deleted_projects_purged_after_deleted CHECK (purged_at IS NULL OR purged_at >= deleted_at),
    CONSTRAINT deleted_projects_purged_has_no_snapshot CHECK (purged_at IS NULL OR snapshot IS NULL)
);
CREATE INDEX deleted_projects_due_idx ON deleted_projects (deleted_at) WHERE purged_at IS NULL;
ALTER TABLE deleted_projects ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON deleted_projects TO service_role;

CREATE FUNCTION projects_keep_deleted() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO deleted_projects (project_id, name, description, owner_id, settings, bucket, created_at, snapshot)
    VALUES (OLD.id, OLD.name, OLD.description, OLD.owner_id, OLD.settings, OLD.bucket, OLD.created_at,
        jsonb_build_object(
            'permissions', (SELECT coalesce(jsonb_agg(to_jsonb(pp)), '[]') FROM project_permissions pp WHERE pp.project_id = OLD.id),
            'pipelines', (SELECT coalesce(jsonb_agg(to_jsonb(p)), '[]') FROM pipelines p WHERE p.project_id = OLD.id),
            'versions', (SELECT coalesce(jsonb_agg(to_jsonb(v)), '[]') FROM pipeline_versions v
                         JOIN pipelines p ON p.id = v.pipeline_id WHERE p.project_id = OLD.id)))
    ON CONFLICT (project_id) DO UPDATE SET deleted_at = now(), snapshot = EXCLUDED.snapshot, purged_at = NULL;
    RETURN OLD;
END $$;
CREATE TRIGGER projects_keep_deleted BEFORE DELETE ON projects
    FOR EACH ROW EXECUTE FUNCTION projects_keep_deleted();

-- Puts a deleted, not yet purged, project back.
CREATE FUNCTION mudrock_restore_project(p uuid) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    d deleted_projects;
BEGIN
    SELECT * INTO d FROM deleted_projects WHERE project_id = p FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'project % was not deleted', p USING ERRCODE = 'no_data_found';
    END IF;
    IF d.purged_at IS NOT NULL THEN
        RAISE EXCEPTION 'project % was purged at %: it cannot be restored', p, d.purged_at
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    INSERT INTO projects (id, name, description, owner_id, settings, bucket, created_at)
    VALUES (d.project_id, d.name, d.description, d.owner_id, d.settings, d.bucket, d.created_at);
    INSERT INTO project_permissions
        SELECT * FROM jsonb_populate_recordset(NULL::project_permissions, d.snapshot -> 'permissions')
        ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role;
    INSERT INTO pipelines SELECT * FROM jsonb_populate_recordset(NULL::pipelines, d.snapshot -> 'pipelines');
    INSERT INTO pipeline_versions SELECT * FROM jsonb_populate_recordset(NULL::pipeline_versions, d.snapshot -> 'versions');
    DELETE FROM deleted_projects WHERE project_id = p;
END $$;
REVOKE ALL ON FUNCTION mudrock_restore_project(uuid) FROM PUBLIC;
