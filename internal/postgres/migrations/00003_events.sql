-- +goose Up
-- The outbox of user events, as docs/events.md and docs/storage.md describe
-- it. Every change to users appends its events in its own transaction.
--
-- Sequence values are handed out when rows are inserted, not when their
-- transactions commit, so "seq > cursor" would skip the events of a
-- transaction that commits after a later-numbered one was read. Each event
-- therefore records the id of its transaction (txid), and the feed is read
-- in (txid, seq) order, only below the xmin of the reader's snapshot: every
-- transaction with a lower id has ended, so no event can appear there later.
CREATE TABLE events (
    id           uuid        PRIMARY KEY,
    txid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    seq          bigint      GENERATED ALWAYS AS IDENTITY,
    type         text        NOT NULL,
    user_id      uuid        NOT NULL,
    snapshot     jsonb       NULL,
    paths        text[]      NOT NULL DEFAULT '{}',
    time         timestamptz NOT NULL,
    trace_parent text        NOT NULL DEFAULT ''
);

-- The feed's order, and its keyset: (txid, seq) > (cursor).
CREATE UNIQUE INDEX events_txid_seq ON events (txid, seq);

-- Retention deletes the oldest events.
CREATE INDEX events_time ON events (time);

-- +goose Down
DROP TABLE events;
