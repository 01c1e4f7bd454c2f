-- A trial watched as it learns (eval.watch), and the loss of every example under its best
-- checkpoint (eval.example_losses).

CREATE TABLE watch_samples (
    experiment   VARCHAR NOT NULL,
    trial        INTEGER NOT NULL,
    step         INTEGER NOT NULL,      -- the optimizer step of the evaluation
    position     INTEGER NOT NULL,      -- which watched prompt: the first N of the validation split
    epoch        DOUBLE,
    prompt_id    VARCHAR,               -- sha256 of the prompt, first 12 hex digits (as in samples)
    prompt       VARCHAR,
    output       VARCHAR,               -- greedy, eval.watch_max_new_tokens at most
    reference    VARCHAR,
    time         TIMESTAMPTZ,
    PRIMARY KEY (experiment, trial, step, position)
);

CREATE TABLE example_losses (
    experiment   VARCHAR NOT NULL,
    trial        INTEGER NOT NULL,
    split        VARCHAR NOT NULL,      -- train | validation
    position     INTEGER NOT NULL,      -- the example's place in the prepared split
    origin       VARCHAR,               -- where it came from: "data.jsonl:17", "data.parquet#3"
    source_row   INTEGER,               -- the line (JSONL, CSV) or row (parquet) in that file
    tokens       INTEGER,               -- the trained (completion) tokens the loss is averaged over
    loss         DOUBLE,                -- mean cross-entropy per trained token, best checkpoint
    time         TIMESTAMPTZ,
    PRIMARY KEY (experiment, trial, split, position)
);
