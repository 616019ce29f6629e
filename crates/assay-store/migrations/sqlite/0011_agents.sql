-- Runner agents (`assay agent`): one row per agent name, refreshed by each claim and heartbeat.
-- `session` is the random id of the agent process that holds the name now. Labels are a JSON
-- object of strings; times are unix milliseconds.
CREATE TABLE agents (
    name TEXT PRIMARY KEY,
    labels TEXT NOT NULL,
    runtime TEXT NOT NULL,
    host TEXT NOT NULL,
    version TEXT NOT NULL,
    session TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
-- Testkube's execution target of a run (JSON), NULL when any runner may take it: such
-- executions wait `queued` for a matching agent, the server's own runner leaves them alone.
ALTER TABLE executions ADD COLUMN target TEXT;
