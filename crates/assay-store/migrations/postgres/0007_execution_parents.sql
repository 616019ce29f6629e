-- `execute` steps start other workflows as executions of their own: each child records the
-- execution (id and name) and the step that started it, so the parent's views list its
-- children after a restart and on every server. NULL for executions nobody's step started.
ALTER TABLE executions ADD COLUMN parent_id TEXT;
ALTER TABLE executions ADD COLUMN parent_name TEXT;
ALTER TABLE executions ADD COLUMN parent_step TEXT;
CREATE INDEX executions_parent_id ON executions (parent_id, id);
