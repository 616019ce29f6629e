-- The heads of the git refs each `content` TestTrigger watches, as last seen by a server.
-- A server that polls the repository and sees a ref move writes the new heads with a
-- compare-and-swap on `version`; only the server whose write succeeded queues the runs, so a
-- push fires once however many servers share the database.
-- Keep in step with the other database's 0021_git_trigger_heads.sql.

CREATE TABLE git_trigger_heads (
    trigger_name TEXT   NOT NULL PRIMARY KEY,
    -- SHA-256 of what the heads were read for (URI, event, ref filters): a trigger that now
    -- watches something else starts again from what it sees, without firing
    source       TEXT   NOT NULL,
    -- JSON object: full ref name -> commit SHA
    refs         TEXT   NOT NULL,
    -- bumped by every write (the compare-and-swap's witness)
    version      BIGINT NOT NULL,
    -- host and pid of the server that wrote last
    updated_by   TEXT   NOT NULL,
    updated_at   BIGINT NOT NULL
);
