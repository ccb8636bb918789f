-- A run's status in one statement, as the caller: the API's hottest read
-- (clients poll it). It takes the caller's role and claims for its own
-- implicit transaction (set_config(..., true) ends with it), then reads
-- through mudrock_run_status under row-level security, exactly as a
-- request transaction would, in one round trip instead of four (BEGIN,
-- claims, read, COMMIT).
--
-- Impersonation guard: the claims are the caller's word, so the function
-- refuses to run when the current role is already one of the API roles —
-- a PostgREST RPC call (role anon or authenticated) cannot use it to read
-- as someone else. A session whose role may `SET ROLE authenticated` and
-- set `request.jwt.claims` itself (the API's login) gains nothing by it;
-- a session that may not is refused by PostgreSQL's own SET ROLE check.
-- So EXECUTE stays with PUBLIC: the API's login need not own it.
CREATE FUNCTION mudrock_run_status_as(p_claims text, p_run uuid) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp AS $$
BEGIN
    IF current_user IN ('anon', 'authenticated', 'service_role') THEN
        RAISE EXCEPTION 'mudrock_run_status_as is for the API''s own login'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM set_config('role', 'authenticated', true),
            set_config('request.jwt.claims', p_claims, true);
    RETURN mudrock_run_status(p_run);
END $$;
