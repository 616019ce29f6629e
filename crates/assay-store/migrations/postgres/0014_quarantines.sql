-- Quarantined tests (`assay quarantine add TEST --reason …`): a quarantined test still runs and
-- reports, but a step whose only failures are quarantined tests passes and says so. `test` is a
-- test key (`class::name`) or a bare name, as `assay get tests` and test_history match them;
-- `workflow` is '' for every workflow. `until` (unix ms) is NULL for no expiry; `rule` holds the
-- flaky rule's evidence for automatic ones. Keep in step with the other database's
-- 0014_quarantines.sql.

CREATE TABLE quarantines (
    test        TEXT   NOT NULL,
    workflow    TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    until_at    BIGINT,
    created_at  BIGINT NOT NULL,
    created_by  TEXT,
    rule        TEXT,
    PRIMARY KEY (test, workflow)
);
-- The active entries of one workflow (and of every workflow).
CREATE INDEX quarantines_workflow ON quarantines (workflow, until_at);

-- A failed case that an active quarantine covered when it was recorded (1), else 0.
ALTER TABLE test_cases ADD COLUMN quarantined BIGINT NOT NULL DEFAULT 0;
-- The quarantined failures (JSON array of test keys) that a step passed in spite of.
ALTER TABLE step_results ADD COLUMN quarantined_failures TEXT;
