-- Trial cost and shape, generation samples, the success verdict.
ALTER TABLE trials ADD COLUMN device VARCHAR;           -- cpu | cuda
ALTER TABLE trials ADD COLUMN micro_batch INTEGER;      -- the micro-batch that ran (after any out-of-memory halving)
ALTER TABLE trials ADD COLUMN accumulation INTEGER;     -- gradient accumulation steps
ALTER TABLE trials ADD COLUMN steps INTEGER;            -- optimizer steps trained
ALTER TABLE trials ADD COLUMN tokens BIGINT;            -- training tokens seen
ALTER TABLE trials ADD COLUMN params_total BIGINT;
ALTER TABLE trials ADD COLUMN params_trainable BIGINT;
ALTER TABLE trials ADD COLUMN peak_memory_bytes BIGINT; -- GPU memory on CUDA, process RSS on CPU
ALTER TABLE trials ADD COLUMN disk_bytes BIGINT;        -- the kept checkpoint
ALTER TABLE trials ADD COLUMN cost DOUBLE;              -- hours x devices x resources.price_per_hour
ALTER TABLE trials ADD COLUMN success BOOLEAN;          -- every [success] criterion met on test

CREATE TABLE samples (
    experiment   VARCHAR NOT NULL,
    model_ref    VARCHAR NOT NULL,      -- base | trial:N
    prompt_id    VARCHAR NOT NULL,      -- sha256 of the prompt, first 12 hex digits
    position     INTEGER,               -- order in the test split
    prompt       VARCHAR,
    output       VARCHAR,               -- what the model generated
    reference    VARCHAR,               -- the expected completion
    settings     JSON,                  -- generation settings
    time         TIMESTAMPTZ,
    PRIMARY KEY (experiment, model_ref, prompt_id)
);
