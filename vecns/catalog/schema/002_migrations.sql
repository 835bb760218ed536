-- vecns catalog, schema version 2: migrations, their per-object failures, and stored evaluations.
CREATE TABLE migrations (
    id VARCHAR PRIMARY KEY,
    migration_type VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    stage VARCHAR NOT NULL,
    config JSON NOT NULL,
    plan_fingerprint VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    target_name VARCHAR NOT NULL,
    target_id VARCHAR,
    snapshot_seq BIGINT,
    applied_seq BIGINT,
    last_key BIGINT NOT NULL DEFAULT -1,
    total BIGINT NOT NULL DEFAULT 0,
    processed BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    caught_up BIGINT NOT NULL DEFAULT 0,
    provider VARCHAR,
    error VARCHAR,
    cancel_reason VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    heartbeat_at TIMESTAMPTZ,
    cutover_alias VARCHAR,
    cutover_at TIMESTAMPTZ
);
CREATE TABLE migration_failures (
    migration_id VARCHAR NOT NULL,
    object_id VARCHAR NOT NULL,
    error VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (migration_id, object_id)
);
CREATE TABLE evaluations (
    id VARCHAR PRIMARY KEY,
    namespace_id VARCHAR NOT NULL,
    migration_id VARCHAR,
    dataset VARCHAR NOT NULL,
    metrics JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
