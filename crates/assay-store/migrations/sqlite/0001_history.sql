-- Execution history (SQLite). Timestamps are unix milliseconds; JSON and UUIDs are TEXT.
-- Keep in step with ../postgres/0001_history.sql: the store runs the same queries on both.

CREATE TABLE definitions (
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    revision    BIGINT  NOT NULL,
    labels      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    deleted_at  BIGINT,
    PRIMARY KEY (kind, name)
);

CREATE TABLE definition_revisions (
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    revision    BIGINT  NOT NULL,
    yaml        TEXT    NOT NULL,
    labels      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (kind, name, revision)
);

CREATE TABLE workflow_counters (
    workflow    TEXT    NOT NULL PRIMARY KEY,
    last_number BIGINT  NOT NULL
);

CREATE TABLE executions (
    id                  TEXT    NOT NULL PRIMARY KEY,
    name                TEXT    NOT NULL,
    workflow            TEXT    NOT NULL,
    number              BIGINT  NOT NULL,
    status              TEXT    NOT NULL,
    scheduled_at        BIGINT  NOT NULL,
    started_at          BIGINT,
    finished_at         BIGINT,
    status_at           BIGINT  NOT NULL,
    definition          TEXT    NOT NULL,
    resolved            TEXT,
    config              TEXT    NOT NULL,
    tags                TEXT    NOT NULL,
    running_context     TEXT    NOT NULL,
    error_message       TEXT,
    abort_requested_at  BIGINT,
    abort_reason        TEXT,
    lease_host          TEXT,
    lease_pid           BIGINT,
    lease_token         TEXT,
    heartbeat_at        BIGINT
);
CREATE UNIQUE INDEX executions_workflow_number ON executions (workflow, number);
CREATE INDEX executions_name ON executions (name);
-- Ids are UUID v7, so `ORDER BY id DESC` is newest first and these serve every list filter.
CREATE INDEX executions_workflow_id ON executions (workflow, id);
CREATE INDEX executions_workflow_status_id ON executions (workflow, status, id);
CREATE INDEX executions_status_id ON executions (status, id);

CREATE TABLE execution_tags (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (execution_id, key)
);
CREATE INDEX execution_tags_key_value ON execution_tags (key, value, execution_id);

CREATE TABLE step_results (
    execution_id      TEXT   NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    ref               TEXT   NOT NULL,
    position          BIGINT NOT NULL,
    name              TEXT,
    status            TEXT   NOT NULL,
    exit_code         BIGINT,
    started_at        BIGINT,
    finished_at       BIGINT,
    error_message     TEXT,
    peak_memory_bytes BIGINT,
    cpu_time_ms       BIGINT,
    PRIMARY KEY (execution_id, ref)
);

CREATE TABLE outputs (
    execution_id TEXT   NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    step_ref     TEXT,
    name         TEXT   NOT NULL,
    value        TEXT   NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

CREATE TABLE reports (
    execution_id TEXT   NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    step_ref     TEXT,
    kind         TEXT   NOT NULL,
    file         TEXT,
    data         TEXT   NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

CREATE TABLE artifacts (
    execution_id TEXT   NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    path         TEXT   NOT NULL,
    step_ref     TEXT,
    size         BIGINT NOT NULL,
    content_type TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (execution_id, path)
);
