-- Arena chats are reviews too (kind 'arena'), and the Bradley–Terry ratings that
-- `tunelab review stats`, the stats screen and the end of a voting session fit are kept,
-- so the `leaderboard` view can show them beside the win rates.

ALTER TABLE reviews ADD COLUMN kind VARCHAR DEFAULT 'review';  -- review | arena
-- the turns before the answers (JSON [{"role", "content"}]), when the prompt is a conversation:
-- what the models saw, so that a dpo stage renders the pair exactly as in training
ALTER TABLE review_items ADD COLUMN messages JSON;

CREATE TABLE review_ratings (
    experiment   VARCHAR NOT NULL,
    scope        VARCHAR NOT NULL,      -- a review id, or 'all': every review and arena of the experiment
    model_ref    VARCHAR NOT NULL,
    rating       DOUBLE,                -- Bradley–Terry on an Elo-like scale (mean 1000)
    rating_low   DOUBLE,                -- bootstrap 95 % interval
    rating_high  DOUBLE,
    rank         INTEGER,               -- 1 + the models whose interval lies wholly above
    votes        INTEGER,               -- the votes the fit used: a, b, tie and both bad (skips do not count)
    fitted_at    TIMESTAMPTZ,
    PRIMARY KEY (experiment, scope, model_ref)
);

-- Per model: win rate with Wilson's 95 % interval from the live votes of every review and arena
-- of the experiment (a tie or "both bad" counts half, as in the ratings; "skip" not at all), and the
-- Bradley–Terry rating last fitted on the same votes. `votes_at_fit` below `votes` means the
-- rating is older than the newest votes: `tunelab review stats` refits it.
DROP VIEW leaderboard;
CREATE VIEW leaderboard AS
WITH live AS (
    SELECT r.experiment, v.review_id, v.choice, i.model_a, i.model_b
    FROM votes v
    JOIN review_items i ON i.review_id = v.review_id AND i.item = v.item
    JOIN reviews r ON r.id = v.review_id
    WHERE NOT coalesce(v.undone, false) AND v.choice IN ('a', 'b', 'tie', 'both_bad')
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
       rr.votes AS votes_at_fit, rr.fitted_at
FROM counted c
LEFT JOIN review_ratings rr
       ON rr.experiment = c.experiment AND rr.scope = 'all' AND rr.model_ref = c.model_ref
ORDER BY c.experiment, rr.rating DESC NULLS LAST, c.win_rate DESC NULLS LAST, c.model_ref;
