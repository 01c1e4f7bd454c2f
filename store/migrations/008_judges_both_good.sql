-- An LLM judge is a rater (`tunelab review judge NAME`): its votes are in `votes` as rater
-- 'judge:NAME'. It judges every item in both orders; each order's verdict is kept here, and
-- its vote is their verdict when they agree, a tie when they do not (as MT-bench counts it).
-- And a vote may say "both good" (choice 'both_good'): a tie for the ratings, two good answers
-- for a kto stage.

CREATE TABLE judgements (
    review_id    VARCHAR NOT NULL,
    item         INTEGER NOT NULL,
    rater        VARCHAR NOT NULL,      -- judge:NAME
    shown        VARCHAR NOT NULL,      -- 'as shown' (the item's A first) | 'swapped' (its B first)
    verdict      VARCHAR,               -- in the item's sides: a | b | tie; NULL: the answer said none
    answer       VARCHAR,               -- what the judge wrote (a local model: its verdicts' probabilities)
    model        VARCHAR,               -- the judging model (a ref, a folder, a hub id, an endpoint's model)
    prompt_sha   VARCHAR,               -- sha256 of the judging prompt file, first 12 hex digits
    created_at   TIMESTAMPTZ,
    PRIMARY KEY (review_id, item, rater, shown)
);

-- The leaderboard as before, from the people's votes (a judge's are left out, as the ratings
-- leave them out by default), with "both good" counted as a tie is (half a win each).
DROP VIEW leaderboard;
CREATE VIEW leaderboard AS
WITH live AS (
    SELECT r.experiment, v.review_id, v.choice, i.model_a, i.model_b
    FROM votes v
    JOIN review_items i ON i.review_id = v.review_id AND i.item = v.item
    JOIN reviews r ON r.id = v.review_id
    WHERE NOT coalesce(v.undone, false) AND v.choice IN ('a', 'b', 'tie', 'both_bad', 'both_good')
      AND v.rater NOT LIKE 'judge:%'
), sides AS (
    SELECT experiment, model_a AS model_ref, choice,
           CASE choice WHEN 'a' THEN 1.0 WHEN 'b' THEN 0.0 ELSE 0.5 END AS score
    FROM live
    UNION ALL
    SELECT experiment, model_b, choice,
           CASE choice WHEN 'b' THEN 1.0 WHEN 'a' THEN 0.0 ELSE 0.5 END
    FROM live
), counted AS (
    SELECT experiment, model_ref,
           count(*) AS votes,
           count(*) FILTER (WHERE score = 1.0) AS wins,
           count(*) FILTER (WHERE score = 0.0) AS losses,
           count(*) FILTER (WHERE choice = 'tie') AS ties,
           count(*) FILTER (WHERE choice = 'both_bad') AS both_bad,
           count(*) FILTER (WHERE choice = 'both_good') AS both_good,
           count(score) AS decided,
           avg(score) AS win_rate
    FROM sides
    GROUP BY experiment, model_ref
)
SELECT c.experiment, c.model_ref,
       rr.rating, rr.rating_low, rr.rating_high,
       coalesce(rr.rank, rank() OVER (PARTITION BY c.experiment
                                      ORDER BY c.win_rate DESC NULLS LAST)) AS rank,
       c.votes, c.wins, c.losses, c.ties, c.both_bad, c.win_rate,
       CASE WHEN c.decided > 0 THEN
           (c.win_rate + 1.9208 / c.decided - 1.96 * sqrt(c.win_rate * (1 - c.win_rate) / c.decided
               + 0.9604 / (c.decided * c.decided))) / (1 + 3.8416 / c.decided) END AS win_rate_low,
       CASE WHEN c.decided > 0 THEN
           (c.win_rate + 1.9208 / c.decided + 1.96 * sqrt(c.win_rate * (1 - c.win_rate) / c.decided
               + 0.9604 / (c.decided * c.decided))) / (1 + 3.8416 / c.decided) END AS win_rate_high,
       rr.votes AS votes_at_fit, rr.fitted_at, c.both_good
FROM counted c
LEFT JOIN review_ratings rr
       ON rr.experiment = c.experiment AND rr.scope = 'all' AND rr.model_ref = c.model_ref
ORDER BY c.experiment, rr.rating DESC NULLS LAST, c.win_rate DESC NULLS LAST, c.model_ref;
