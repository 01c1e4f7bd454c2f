-- tunelab store, schema version 1. Table and column names are a public interface.
CREATE TABLE experiments (
    name         VARCHAR PRIMARY KEY,   -- the study name from the experiment file
    description  VARCHAR,
    spec_path    VARCHAR,               -- the experiment file, as given to `tunelab run`
    spec_hash    VARCHAR,               -- sha256 of the resolved experiment
    spec         JSON,                  -- the resolved experiment
    objective    VARCHAR,               -- e.g. eval_loss
    direction    VARCHAR,               -- minimize | maximize
    created_at   TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ
);

CREATE TABLE trials (
    experiment   VARCHAR NOT NULL,
    number       INTEGER NOT NULL,      -- the Optuna trial number
    state        VARCHAR NOT NULL,      -- running | complete | pruned | failed
    method_kind  VARCHAR,               -- full | lora | qlora | prefix
    params       JSON,                  -- the sampled parameters, dotted paths as keys
    value        DOUBLE,                -- the objective (best validation value of the trial)
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    duration_s   DOUBLE,
    fail_reason  VARCHAR,               -- exception | nan | oom | killed | interrupted
    error        VARCHAR,               -- short traceback of a failed trial
    artifact_dir VARCHAR,               -- the trial's folder (checkpoint, logs)
    updated_at   TIMESTAMPTZ,
    PRIMARY KEY (experiment, number)
);

CREATE TABLE trial_params (
    experiment   VARCHAR NOT NULL,
    number       INTEGER NOT NULL,
    name         VARCHAR NOT NULL,      -- dotted path, e.g. train.learning_rate
    value_num    DOUBLE,                -- set for numbers
    value_text   VARCHAR,               -- the value as text (categories, numbers too)
    PRIMARY KEY (experiment, number, name)
);

CREATE TABLE metrics (
    experiment   VARCHAR NOT NULL,
    trial        INTEGER NOT NULL,
    step         INTEGER NOT NULL,      -- optimizer step
    epoch        DOUBLE,
    tokens       BIGINT,                -- training tokens seen at this step
    split        VARCHAR NOT NULL,      -- train | validation
    name         VARCHAR NOT NULL,      -- loss, learning_rate, grad_norm, ...
    value        DOUBLE,
    time         TIMESTAMPTZ,
    PRIMARY KEY (experiment, trial, split, name, step)
);

CREATE TABLE evaluations (
    experiment   VARCHAR NOT NULL,
    model_ref    VARCHAR NOT NULL,      -- base | trial:N
    split        VARCHAR NOT NULL,      -- validation | test
    name         VARCHAR NOT NULL,      -- loss, perplexity, ...
    value        DOUBLE,
    time         TIMESTAMPTZ,
    PRIMARY KEY (experiment, model_ref, split, name)
);
