-- The leaderboard follows the rank rule and says what each number is (issue 25 and 27):
-- ranks are ranges (rank … rank_worst) from tests of the differences, a bound is named as one
-- and is never sorted as a rating, the ties setting of the fit is kept and the win rate counts
-- ties the same way, and a rater's verdicts on an item and on its swapped repeat count once,
-- as in `tunelab review stats` (engine/review/votes.py says the rule in full). As in 008, the
-- people's votes only, and "both good" counted as a tie is.

ALTER TABLE review_ratings ADD COLUMN rank_worst INTEGER;  -- the worst rank the votes allow
ALTER TABLE review_ratings ADD COLUMN rating_is VARCHAR;   -- fitted | at least | at most | between | no bound | ties only
ALTER TABLE review_ratings ADD COLUMN ties VARCHAR;        -- half | ignore: how the fit counted ties
ALTER TABLE review_ratings ADD COLUMN position INTEGER;    -- the fit's order: group, then strongest first

-- Per model, over every review and arena of the experiment: the verdicts counted as the
-- statistics count them, the win rate with Wilson's 95 % interval, and the rank rule's fit of
-- the same votes when one was saved (`tunelab review stats`, the statistics screen, or leaving
-- the voting screen save it). `votes_at_fit` below `votes` means the fit is older than the
-- newest votes.
DROP VIEW leaderboard;
CREATE VIEW leaderboard AS
WITH live AS (
    -- each rater's last live verdict on each item (a skip counts for no one)
    SELECT r.experiment, v.review_id, v.rater, v.item, i.repeat_of, i.model_a, i.model_b,
           arg_max(v.choice, v.created_at) AS choice
    FROM votes v
    JOIN review_items i ON i.review_id = v.review_id AND i.item = v.item
    JOIN reviews r ON r.id = v.review_id
    WHERE NOT coalesce(v.undone, false) AND v.choice IN ('a', 'b', 'tie', 'both_bad', 'both_good')
      AND v.rater NOT LIKE 'judge:%'  -- the people's votes: an LLM judge's are left out
    GROUP BY r.experiment, v.review_id, v.rater, v.item, i.repeat_of, i.model_a, i.model_b
), folded AS (
    -- a repeat shows its original again with the sides swapped: it agrees when its verdict,
    -- swapped back, is the original's; a disagreement counts as a tie; a repeat whose original
    -- was skipped is the rater's one verdict
    SELECT o.experiment, o.model_a, o.model_b,
           CASE WHEN rp.choice IS NULL
                  OR rp.choice = CASE o.choice WHEN 'a' THEN 'b' WHEN 'b' THEN 'a' ELSE o.choice END
                THEN o.choice ELSE 'tie' END AS choice
    FROM live o
    LEFT JOIN live rp ON rp.review_id = o.review_id AND rp.rater = o.rater AND rp.repeat_of = o.item
    WHERE o.repeat_of IS NULL
    UNION ALL
    SELECT rp.experiment, rp.model_a, rp.model_b, rp.choice
    FROM live rp
    LEFT JOIN live o ON o.review_id = rp.review_id AND o.rater = rp.rater AND o.item = rp.repeat_of
                    AND o.repeat_of IS NULL
    WHERE rp.repeat_of IS NOT NULL AND o.item IS NULL
), sides AS (
    SELECT experiment, model_a AS model_ref, choice,
           CASE choice WHEN 'a' THEN 1.0 WHEN 'b' THEN 0.0 ELSE 0.5 END AS score
    FROM folded
    UNION ALL
    SELECT experiment, model_b, choice,
           CASE choice WHEN 'b' THEN 1.0 WHEN 'a' THEN 0.0 ELSE 0.5 END
    FROM folded
), setting AS (
    -- the ties setting of the experiment's newest pooled fit (half when none was saved)
    SELECT experiment, arg_max(ties, fitted_at) AS ties
    FROM review_ratings WHERE scope = 'all' AND ties IS NOT NULL GROUP BY experiment
), counted AS (
    SELECT s.experiment, s.model_ref, coalesce(t.ties, 'half') AS ties,
           count(*) FILTER (WHERE coalesce(t.ties, 'half') = 'half' OR s.score <> 0.5) AS votes,
           count(*) FILTER (WHERE s.score = 1.0) AS wins,
           count(*) FILTER (WHERE s.score = 0.0) AS losses,
           count(*) FILTER (WHERE s.choice = 'tie') AS tie_votes,
           count(*) FILTER (WHERE s.choice = 'both_bad') AS both_bad,
           count(*) FILTER (WHERE s.choice = 'both_good') AS both_good,
           avg(s.score) FILTER (WHERE coalesce(t.ties, 'half') = 'half' OR s.score <> 0.5)
               AS win_rate
    FROM sides s LEFT JOIN setting t ON t.experiment = s.experiment
    GROUP BY s.experiment, s.model_ref, t.ties
)
SELECT c.experiment, c.model_ref,
       CASE WHEN rr.rating_is IN ('fitted', 'at least', 'at most')
            THEN CAST(round(rr.rating) AS INTEGER) END AS rating,
       rr.rating_is,
       CASE WHEN rr.rating_is IN ('fitted', 'at least', 'between')
            THEN CAST(round(rr.rating_low) AS INTEGER) END AS rating_low,
       CASE WHEN rr.rating_is IN ('fitted', 'at most', 'between')
            THEN CAST(round(rr.rating_high) AS INTEGER) END AS rating_high,
       rr.rank, coalesce(rr.rank_worst, rr.rank) AS rank_worst,
       c.votes, c.wins, c.losses, c.tie_votes AS ties, c.both_bad, c.win_rate,
       CASE WHEN c.votes > 0 THEN
           (c.win_rate + 1.9208 / c.votes - 1.96 * sqrt(c.win_rate * (1 - c.win_rate) / c.votes
               + 0.9604 / (c.votes * c.votes))) / (1 + 3.8416 / c.votes) END AS win_rate_low,
       CASE WHEN c.votes > 0 THEN
           (c.win_rate + 1.9208 / c.votes + 1.96 * sqrt(c.win_rate * (1 - c.win_rate) / c.votes
               + 0.9604 / (c.votes * c.votes))) / (1 + 3.8416 / c.votes) END AS win_rate_high,
       c.ties AS ties_setting,
       rr.votes AS votes_at_fit, rr.fitted_at, c.both_good
FROM counted c
LEFT JOIN review_ratings rr
       ON rr.experiment = c.experiment AND rr.scope = 'all' AND rr.model_ref = c.model_ref
ORDER BY c.experiment, rr.position NULLS LAST, c.win_rate DESC NULLS LAST, c.model_ref;
