-- Chats with trained models, and a rater's comment on a vote.
CREATE TABLE chats (
    id           VARCHAR PRIMARY KEY,   -- a uuid per conversation
    experiment   VARCHAR NOT NULL,
    model_ref    VARCHAR NOT NULL,      -- base | trial:N
    system       VARCHAR,               -- the system prompt, if any
    messages     JSON,                  -- [{"role": "user" | "assistant", "content": …}, …]
    settings     JSON,                  -- temperature, top_p, max_new_tokens, seed
    created_at   TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ
);

ALTER TABLE votes ADD COLUMN comment VARCHAR;  -- free text the rater added to the vote
