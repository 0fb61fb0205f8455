-- +goose Up
-- The outbox of user events, as docs/events.md and docs/storage.md describe
-- it. Every change to users appends its events in its own transaction. The
-- single writer commits transactions one at a time, so seq is in commit
-- order and the feed reads WHERE seq > cursor. AUTOINCREMENT keeps seq from
-- ever being reused, even once retention has deleted the newest events.
-- Times are integer microseconds since the Unix epoch; snapshot is the
-- user as a JSON object (NULL for user.purged), paths a JSON array.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    type         TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    snapshot     TEXT,
    paths        TEXT    NOT NULL DEFAULT '[]',
    time         INTEGER NOT NULL,
    trace_parent TEXT    NOT NULL DEFAULT ''
);

-- Retention deletes the oldest events.
CREATE INDEX events_time ON events (time);

-- +goose Down
DROP TABLE events;
