-- tunelab store, schema version 2: blind-review tables and the views for common questions.
-- Self-contained: it only adds objects. `trial_summary` is created here without parameter
-- columns; the writer regenerates it with one column per parameter (store/views.py).

CREATE TABLE reviews (
    id           VARCHAR PRIMARY KEY,   -- a uuid
    experiment   VARCHAR NOT NULL,
    name         VARCHAR,               -- a short label given by the person who made it
    models       JSON,                  -- the model refs compared, e.g. ["base", "trial:7"]
    prompt_set   VARCHAR,               -- where the prompts came from (test split, a file)
    status       VARCHAR,               -- generating | open | closed
    created_at   TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ
);

CREATE TABLE review_items (
    review_id    VARCHAR NOT NULL,
    item         INTEGER NOT NULL,      -- position in the review, from 0
    prompt_id    VARCHAR,               -- the prompt's id in its set
    prompt       VARCHAR,
    model_a      VARCHAR NOT NULL,      -- the model ref shown on the left (A)
    model_b      VARCHAR NOT NULL,      -- the model ref shown on the right (B); sides are random
    output_a     VARCHAR,
    output_b     VARCHAR,
    repeat_of    INTEGER,               -- the item this one repeats with sides swapped (consistency)
    created_at   TIMESTAMPTZ,
    PRIMARY KEY (review_id, item)
);

CREATE TABLE votes (
    id           VARCHAR PRIMARY KEY,   -- a uuid made by the voting client
    review_id    VARCHAR NOT NULL,
    item         INTEGER NOT NULL,
    rater        VARCHAR NOT NULL,      -- who voted (--rater, default the login name)
    choice       VARCHAR NOT NULL,      -- a | b | tie | both_bad | skip
    seconds      DOUBLE,                -- time from showing the item to the vote
    undone       BOOLEAN DEFAULT false, -- set by undo; the row stays
    created_at   TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ
);

-- The best complete trial of each experiment, by its objective and direction, with the
-- test-split loss and the baseline's numbers beside it.
CREATE VIEW best_trials AS
WITH exp AS (
    SELECT DISTINCT ON (name) name, objective, coalesce(direction, 'minimize') AS direction
    FROM experiments ORDER BY name, updated_at DESC
), ev AS (
    SELECT experiment, model_ref,
           max(value) FILTER (WHERE split = 'validation' AND name = 'loss') AS validation_loss,
           max(value) FILTER (WHERE split = 'test' AND name = 'loss') AS test_loss
    FROM evaluations GROUP BY experiment, model_ref
), ranked AS (
    SELECT t.*, e.objective, coalesce(e.direction, 'minimize') AS direction,
           row_number() OVER (
               PARTITION BY t.experiment
               ORDER BY CASE WHEN e.direction = 'maximize' THEN -t.value ELSE t.value END, t.number
           ) AS rank
    FROM trials t LEFT JOIN exp e ON e.name = t.experiment
    WHERE t.state = 'complete' AND t.value IS NOT NULL
)
SELECT r.experiment, r.number, r.method_kind, r.objective, r.direction, r.value, r.params,
       trial_ev.test_loss,
       base_ev.validation_loss AS baseline_validation_loss,
       base_ev.test_loss AS baseline_test_loss,
       r.duration_s, r.finished_at, r.artifact_dir
FROM ranked r
LEFT JOIN ev trial_ev ON trial_ev.experiment = r.experiment AND trial_ev.model_ref = 'trial:' || r.number
LEFT JOIN ev base_ev ON base_ev.experiment = r.experiment AND base_ev.model_ref = 'base'
WHERE r.rank = 1
ORDER BY r.experiment;

-- One row per logged step of a trial: the training and validation loss side by side.
CREATE VIEW curves AS
SELECT experiment, trial, step,
       max(epoch) AS epoch,
       max(tokens) AS tokens,
       max(value) FILTER (WHERE split = 'train' AND name = 'loss') AS train_loss,
       max(value) FILTER (WHERE split = 'validation' AND name = 'loss') AS validation_loss,
       max(value) FILTER (WHERE split = 'train' AND name = 'learning_rate') AS learning_rate,
       max(value) FILTER (WHERE split = 'train' AND name = 'grad_norm') AS grad_norm
FROM metrics
GROUP BY experiment, trial, step;

-- Win rate per model from the votes that are not undone. A tie counts half, "both bad" and
-- "skip" count for neither side. The 95 % interval is Wilson's. (Bradley-Terry: `review stats`.)
CREATE VIEW leaderboard AS
WITH live AS (
    SELECT r.experiment, v.review_id, v.choice, i.model_a, i.model_b
    FROM votes v
    JOIN review_items i ON i.review_id = v.review_id AND i.item = v.item
    JOIN reviews r ON r.id = v.review_id
    WHERE NOT coalesce(v.undone, false) AND v.choice IN ('a', 'b', 'tie', 'both_bad')
), sides AS (
    SELECT experiment, model_a AS model_ref, choice,
           CASE choice WHEN 'a' THEN 1.0 WHEN 'b' THEN 0.0 WHEN 'tie' THEN 0.5 END AS score
    FROM live
    UNION ALL
    SELECT experiment, model_b, choice,
           CASE choice WHEN 'b' THEN 1.0 WHEN 'a' THEN 0.0 WHEN 'tie' THEN 0.5 END
    FROM live
), counted AS (
    SELECT experiment, model_ref,
           count(*) AS votes,
           count(*) FILTER (WHERE score = 1.0) AS wins,
           count(*) FILTER (WHERE score = 0.0) AS losses,
           count(*) FILTER (WHERE choice = 'tie') AS ties,
           count(*) FILTER (WHERE choice = 'both_bad') AS both_bad,
           count(score) AS decided,
           avg(score) AS win_rate
    FROM sides
    GROUP BY experiment, model_ref
)
SELECT experiment, model_ref, votes, wins, losses, ties, both_bad, win_rate,
       CASE WHEN decided > 0 THEN
           (win_rate + 1.9208 / decided - 1.96 * sqrt(win_rate * (1 - win_rate) / decided
               + 0.9604 / (decided * decided))) / (1 + 3.8416 / decided) END AS win_rate_low,
       CASE WHEN decided > 0 THEN
           (win_rate + 1.9208 / decided + 1.96 * sqrt(win_rate * (1 - win_rate) / decided
               + 0.9604 / (decided * decided))) / (1 + 3.8416 / decided) END AS win_rate_high,
       rank() OVER (PARTITION BY experiment ORDER BY win_rate DESC NULLS LAST) AS rank
FROM counted
ORDER BY experiment, rank, model_ref;
