-- The normalized error signature of a failed test case (assay_reports::signature), so that
-- "similar past failures" of a workflow is one indexed lookup however long the history is.
-- Rows recorded before this migration have none: they are not found as similar.
ALTER TABLE test_cases ADD COLUMN signature TEXT;
CREATE INDEX test_cases_workflow_signature ON test_cases (workflow, signature, recorded_at);
