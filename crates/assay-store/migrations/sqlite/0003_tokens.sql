-- API tokens of the server. Only the SHA-256 of a token is kept: a leaked database does not
-- leak working tokens. Keep in step with the other database's 0003_tokens.sql.

CREATE TABLE api_tokens (
    name         TEXT   NOT NULL PRIMARY KEY,
    role         TEXT   NOT NULL,
    token_hash   TEXT   NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
