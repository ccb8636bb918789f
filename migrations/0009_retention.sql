-- Retention: runs a project keeps whatever its policy says (`pinned`, set
-- by editors through the API), and the index garbage collection ranks a
-- project's finished runs by (the policy lives in projects.settings ->
-- 'retention', checked by mudrock when settings are saved).

ALTER TABLE pipeline_runs ADD COLUMN pinned boolean NOT NULL DEFAULT false;
GRANT UPDATE (pinned) ON pipeline_runs TO authenticated;

CREATE INDEX pipeline_runs_retention_idx ON pipeline_runs (project_id, pipeline_id, finished_at DESC)
    WHERE finished_at IS NOT NULL;

-- Retention values are checked by mudrock; the database refuses the
-- absurd ones whatever wrote them.
ALTER TABLE projects ADD CONSTRAINT projects_retention_is_object
    CHECK (NOT settings ? 'retention' OR jsonb_typeof(settings -> 'retention') IN ('object', 'null'));
