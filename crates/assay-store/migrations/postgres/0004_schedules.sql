-- Claims of schedule ticks (`events[].cronjob` of stored workflows). Every server that reaches
-- a tick inserts its row; the primary key lets exactly one insert create it, and only that
-- server queues the run, so a tick fires once however many servers share the database.
-- Keep in step with the other database's 0004_schedules.sql.

CREATE TABLE schedule_ticks (
    workflow     TEXT   NOT NULL,
    -- position of the event in spec.events
    event_index  BIGINT NOT NULL,
    -- the tick, Unix milliseconds
    tick_at      BIGINT NOT NULL,
    -- the pattern (and time zone) as written, for people reading the table
    cron         TEXT   NOT NULL,
    -- host and pid of the server that claimed the tick
    claimed_by   TEXT   NOT NULL,
    claimed_at   BIGINT NOT NULL,
    -- the execution queued for the tick (NULL until it is, or when queueing failed)
    execution_id TEXT,
    PRIMARY KEY (workflow, event_index, tick_at)
);
