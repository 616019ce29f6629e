-- Test cases parsed from JUnit reports, one row per case per execution. Keep in step with the
-- other database's 0002_test_cases.sql: the store runs the same queries on both.
-- `workflow` and `commit_sha` repeat the execution's values so that per-test history and
-- flaky detection read one table through one index.

CREATE TABLE test_cases (
    execution_id  TEXT   NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq           BIGINT NOT NULL,
    workflow      TEXT   NOT NULL,
    step_ref      TEXT,
    report_file   TEXT,
    test_key      TEXT   NOT NULL,
    suite         TEXT   NOT NULL,
    class         TEXT,
    name          TEXT   NOT NULL,
    file          TEXT,
    status        TEXT   NOT NULL,
    duration_ms   BIGINT,
    message       TEXT,
    output        TEXT,
    failed_reruns BIGINT NOT NULL,
    retry         BIGINT NOT NULL,
    commit_sha    TEXT,
    recorded_at   BIGINT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
-- History of one test (by key or by bare name), oldest first.
CREATE INDEX test_cases_workflow_key ON test_cases (workflow, test_key, recorded_at);
CREATE INDEX test_cases_workflow_name ON test_cases (workflow, name, recorded_at);
-- Flaky candidates: tests that failed or were rerun recently.
CREATE INDEX test_cases_recent_status ON test_cases (recorded_at, status);
-- "Did this test already run in this execution?" (a retry of its step).
CREATE INDEX test_cases_execution_key ON test_cases (execution_id, test_key);
