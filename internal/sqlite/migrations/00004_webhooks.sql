-- +goose Up
-- Webhook subscriptions, their delivery attempts, and the saved positions
-- of the feed's consumers inside usersd, as docs/storage.md describes them.
-- Times are integer microseconds since the Unix epoch.
CREATE TABLE webhooks (
    id                   TEXT    PRIMARY KEY,
    url                  TEXT    NOT NULL,
    event_types          TEXT    NOT NULL DEFAULT '[]', -- JSON array; empty: every type
    secret               TEXT    NOT NULL,
    enabled              INTEGER NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    disabled_reason      TEXT    NOT NULL DEFAULT '',
    create_time          INTEGER NOT NULL,
    update_time          INTEGER NOT NULL
);

-- One row per POST of an event to a subscription; latency is in
-- microseconds. id breaks ties of time, newest first.
CREATE TABLE webhook_attempts (
    id         INTEGER PRIMARY KEY,
    webhook_id TEXT    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id   TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    attempt    INTEGER NOT NULL,
    status     INTEGER NOT NULL,
    latency    INTEGER NOT NULL,
    success    INTEGER NOT NULL,
    error      TEXT    NOT NULL DEFAULT '',
    time       INTEGER NOT NULL
);

-- ListDeliveryAttempts reads a subscription's newest attempts; deleting a
-- subscription cascades through it.
CREATE INDEX webhook_attempts_webhook_id_time ON webhook_attempts (webhook_id, time DESC);

-- The feed position (an EventPos: tx is always 0 here) up to which a
-- consumer has read: "webhooks" is the dispatcher's.
CREATE TABLE event_sinks (
    name TEXT    PRIMARY KEY,
    tx   INTEGER NOT NULL DEFAULT 0,
    seq  INTEGER NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE event_sinks;
DROP TABLE webhook_attempts;
DROP TABLE webhooks;
