-- Inbound hooks (POST /v1/hooks/{name}) and the delivery logs of inbound hooks and outbound
-- webhooks. A hook's secret is kept as written: verifying GitHub's HMAC needs the key itself;
-- the API never returns it. JSON columns are TEXT, times BIGINT unix milliseconds.
-- Testkube documents the server acts on but does not compile (Webhook, TestTrigger) are kept
-- in `resources` as the YAML that was applied.
-- Keep in step with the other database's 0005_hooks.sql.

CREATE TABLE resources (
    kind        TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    yaml        TEXT   NOT NULL,
    labels      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (kind, name)
);

CREATE TABLE hooks (
    name        TEXT   NOT NULL PRIMARY KEY,
    secret      TEXT   NOT NULL,
    selector    TEXT   NOT NULL,
    events      TEXT   NOT NULL,
    config      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE hook_deliveries (
    id           TEXT   NOT NULL PRIMARY KEY,
    hook         TEXT   NOT NULL,
    received_at  BIGINT NOT NULL,
    event        TEXT   NOT NULL,
    signature    TEXT   NOT NULL,
    outcome      TEXT   NOT NULL,
    executions   TEXT   NOT NULL,
    error        TEXT
);
CREATE INDEX hook_deliveries_by_hook ON hook_deliveries (hook, received_at);

CREATE TABLE webhook_deliveries (
    id           TEXT   NOT NULL PRIMARY KEY,
    webhook      TEXT   NOT NULL,
    event_id     TEXT   NOT NULL,
    event        TEXT   NOT NULL,
    execution_id TEXT   NOT NULL,
    attempt      BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    url          TEXT   NOT NULL,
    headers      TEXT   NOT NULL,
    payload      TEXT   NOT NULL,
    status_code  BIGINT,
    error        TEXT,
    delivered    BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook, at);
