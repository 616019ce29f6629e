-- How many executions each workflow has in each status, kept by triggers in the same
-- transaction as every insert, delete and status change of `executions` (whoever writes: any
-- server on the database, a bulk load). The executions list answers Testkube's `totals` and
-- `filtered` from here instead of counting the history on every request. Rows may hold 0.
-- A status change takes the two rows it moves between in one fixed order (by workflow, then
-- status), so two transactions moving executions in opposite directions cannot deadlock.
-- Keep in step with the other database's 0017_execution_counts.sql.

CREATE TABLE execution_counts (
    workflow  TEXT   NOT NULL,
    status    TEXT   NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (workflow, status)
);

INSERT INTO execution_counts (workflow, status, n)
SELECT workflow, status, COUNT(*) FROM executions GROUP BY workflow, status;

CREATE FUNCTION execution_counts_add(w TEXT, s TEXT, d BIGINT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO execution_counts AS c (workflow, status, n) VALUES (w, s, d)
        ON CONFLICT (workflow, status) DO UPDATE SET n = c.n + d;
END;
$$;

CREATE FUNCTION execution_counts_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM execution_counts_add(NEW.workflow, NEW.status, 1);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM execution_counts_add(OLD.workflow, OLD.status, -1);
    ELSIF (OLD.workflow, OLD.status) < (NEW.workflow, NEW.status) THEN
        PERFORM execution_counts_add(OLD.workflow, OLD.status, -1);
        PERFORM execution_counts_add(NEW.workflow, NEW.status, 1);
    ELSE
        PERFORM execution_counts_add(NEW.workflow, NEW.status, 1);
        PERFORM execution_counts_add(OLD.workflow, OLD.status, -1);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER execution_counts_insert_delete AFTER INSERT OR DELETE ON executions
    FOR EACH ROW EXECUTE FUNCTION execution_counts_change();

CREATE TRIGGER execution_counts_update AFTER UPDATE OF workflow, status ON executions
    FOR EACH ROW
    WHEN (OLD.workflow IS DISTINCT FROM NEW.workflow OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION execution_counts_change();
