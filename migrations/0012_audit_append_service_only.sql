-- Audit rows are appended as service_role only. Granted to `authenticated`
-- (0008), the two functions were callable by any signed-in user over
-- Supabase RPC (`/rpc/mudrock_audit_append`): reading a project's head and
-- hashing a row the way mudrock does, anyone could add a well-chained row,
-- under any user id, to any project's trail. The API now switches its
-- transaction to service_role for the append, after the caller's own work
-- (src/api/audit.rs), so the row still commits with the action or not at all.
REVOKE EXECUTE ON FUNCTION mudrock_audit_head(uuid), mudrock_audit_append(uuid, bigint, timestamptz,
    uuid, text, text, text, text, audit_outcome, smallint, text, text) FROM authenticated;
