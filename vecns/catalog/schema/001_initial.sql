-- vecns catalog, schema version 1.
CREATE TABLE vecns_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE vecns_counters (name VARCHAR PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO vecns_counters VALUES ('seq', 0), ('key', 0);
CREATE TABLE namespaces (
    id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    description VARCHAR
);
CREATE TABLE features (
    namespace_id VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    extractor VARCHAR,
    version VARCHAR,
    model_id VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,
    dim INTEGER NOT NULL,
    metric VARCHAR NOT NULL,
    dtype VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    PRIMARY KEY (namespace_id, name)
);
CREATE TABLE changes (
    seq BIGINT PRIMARY KEY,
    namespace_id VARCHAR NOT NULL,
    key BIGINT NOT NULL,
    id VARCHAR NOT NULL,
    op VARCHAR NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE index_files (
    namespace_id VARCHAR NOT NULL,
    feature VARCHAR NOT NULL,
    file VARCHAR NOT NULL,
    checksum VARCHAR NOT NULL,
    seq BIGINT NOT NULL,
    count BIGINT NOT NULL,
    saved_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (namespace_id, feature)
);
CREATE TABLE aliases (
    name VARCHAR PRIMARY KEY,
    namespace_id VARCHAR NOT NULL,
    previous_namespace_id VARCHAR,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE models (
    model_id VARCHAR PRIMARY KEY,
    spec JSON NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE model_defaults (extractor VARCHAR PRIMARY KEY, model_id VARCHAR NOT NULL);
