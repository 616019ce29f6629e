-- Problems met while recording an execution (an artifact that could not be stored, a report
-- that could not be read): the run keeps its verdict and lists them. A JSON array of strings.
ALTER TABLE executions ADD COLUMN record_errors TEXT;
