-- tunelab store, schema version 2: the report of each data preparation (tunelab data / run).
CREATE TABLE data_reports (
    experiment         VARCHAR NOT NULL,
    fingerprint        VARCHAR NOT NULL,   -- of the inputs and settings; names the prepared splits
    created_at         TIMESTAMPTZ,
    sources            JSON,               -- the files (or hub ids) read
    formats            JSON,               -- source -> detected or given format
    template           VARCHAR,            -- the chat template the examples are rendered with
    tokenizer          VARCHAR,            -- whose tokens the lengths are counted in
    rows_read          INTEGER,
    rows_rejected      INTEGER,            -- unreadable rows and rows that broke a rule
    duplicates_removed INTEGER,            -- exact and near duplicates within a split
    leaked_removed     INTEGER,            -- validation/test rows that duplicated a training row
    train_rows         INTEGER,
    validation_rows    INTEGER,
    test_rows          INTEGER,
    tokens_p50         DOUBLE,             -- length of a training example in tokens: median
    tokens_p99         DOUBLE,
    tokens_max         DOUBLE,
    findings           JSON,               -- [{check, level, message, count, removed, examples}]
    report             JSON,               -- the whole report
    PRIMARY KEY (experiment, fingerprint)
);
