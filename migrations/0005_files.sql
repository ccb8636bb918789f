-- Files users upload into their project's bucket (under `shared/`), and
-- the bytes each project's bucket holds, for `storageQuota`.
--
-- A file's row is written as the caller before its bytes are stored, so
-- row-level security decides who may upload (owners, editors) and delete
-- (owners). `project_storage.used_bytes` follows uploads and deletions
-- through triggers; the worker reconciles it against a listing of the
-- bucket (which also holds run outputs and cache entries) after each run.

CREATE TABLE project_files (
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    key          text NOT NULL,
    size         bigint NOT NULL,
    content_type text,
    blake3       text,
    uploaded_by  uuid,
    uploaded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, key),
    CONSTRAINT project_files_key_under_shared CHECK (key LIKE 'shared/%'),
    CONSTRAINT project_files_size_not_negative CHECK (size >= 0)
);

CREATE TABLE project_storage (
    project_id    uuid PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    used_bytes    bigint NOT NULL DEFAULT 0,
    reconciled_at timestamptz,
    CONSTRAINT project_storage_used_not_negative CHECK (used_bytes >= 0)
);

ALTER TABLE project_files ENABLE ROW LEVEL SECURITY;
ALTER TABLE project_storage ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, DELETE ON project_files TO authenticated;
GRANT UPDATE (size, content_type, blake3, uploaded_by, uploaded_at) ON project_files TO authenticated;
GRANT SELECT ON project_storage TO authenticated;
GRANT ALL ON project_files, project_storage TO service_role;

CREATE POLICY project_files_select ON project_files FOR SELECT TO authenticated
    USING (can_read_project(project_id));
CREATE POLICY project_files_insert ON project_files FOR INSERT TO authenticated
    WITH CHECK (can_write_project(project_id));
CREATE POLICY project_files_update ON project_files FOR UPDATE TO authenticated
    USING (can_write_project(project_id)) WITH CHECK (can_write_project(project_id));
CREATE POLICY project_files_delete ON project_files FOR DELETE TO authenticated
    USING (owns_project(project_id));
CREATE POLICY project_storage_select ON project_storage FOR SELECT TO authenticated
    USING (can_read_project(project_id));

CREATE FUNCTION project_files_usage() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_project uuid := coalesce(NEW.project_id, OLD.project_id);
    v_delta bigint := coalesce(NEW.size, 0) - coalesce(OLD.size, 0);
BEGIN
    -- The project itself is going (a cascade): nothing to account.
    IF NOT EXISTS (SELECT 1 FROM projects WHERE id = v_project) THEN
        RETURN NULL;
    END IF;
    INSERT INTO project_storage (project_id, used_bytes) VALUES (v_project, greatest(v_delta, 0))
    ON CONFLICT (project_id) DO UPDATE
        SET used_bytes = greatest(project_storage.used_bytes + v_delta, 0);
    RETURN NULL;
END $$;
CREATE TRIGGER project_files_usage AFTER INSERT OR UPDATE OF size OR DELETE ON project_files
    FOR EACH ROW EXECUTE FUNCTION project_files_usage();
