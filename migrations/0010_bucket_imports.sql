-- Projects whose data lives in a bucket of their own choosing: a legacy
-- "bucket is a project" bucket registered by `mudrock import-bucket`
-- (NULL: the configured naming, `{bucket_prefix}{id}`). One project per
-- bucket.
ALTER TABLE projects ADD COLUMN bucket text;
ALTER TABLE projects ADD CONSTRAINT projects_bucket_unique UNIQUE (bucket);
ALTER TABLE projects ADD CONSTRAINT projects_bucket_name
    CHECK (bucket IS NULL OR bucket ~ '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$');

-- Each import: which project it made, and where it stands, so a second run
-- resumes (or finds nothing to do) instead of making another project.
CREATE TABLE bucket_imports (
    bucket      text PRIMARY KEY,
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    report      jsonb,
    CONSTRAINT bucket_imports_report_is_array CHECK (report IS NULL OR jsonb_typeof(report) = 'array')
);
ALTER TABLE bucket_imports ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON bucket_imports TO service_role;
