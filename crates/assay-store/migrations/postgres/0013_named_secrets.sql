-- Named secrets (`assay secret set NAME KEY=VALUE`): what a workflow's `valueFrom.secretKeyRef`,
-- `envFrom.secretRef`, `contentFrom` and git `tokenFrom` read where Kubernetes would read a
-- Secret. Values are sealed with the data directory's key (secret.key), never stored in clear.
-- Keep in step with the other database's 0013_named_secrets.sql.

CREATE TABLE named_secrets (
    name        TEXT   NOT NULL,
    key         TEXT   NOT NULL,
    value       TEXT   NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (name, key)
);
