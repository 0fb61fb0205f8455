-- +goose Up
-- Webhook subscriptions, their delivery attempts, and the saved positions
-- of the feed's consumers inside usersd, as docs/storage.md describes them.
CREATE TABLE webhooks (
    id                   uuid        PRIMARY KEY,
    url                  text        NOT NULL,
    event_types          text[]      NOT NULL DEFAULT '{}', -- empty: every type
    secret               text        NOT NULL,
    enabled              boolean     NOT NULL,
    consecutive_failures integer     NOT NULL DEFAULT 0,
    disabled_reason      text        NOT NULL DEFAULT '',
    create_time          timestamptz NOT NULL,
    update_time          timestamptz NOT NULL
);

-- One row per POST of an event to a subscription; latency is in
-- microseconds. id breaks ties of time, newest first.
CREATE TABLE webhook_attempts (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id   uuid        NOT NULL,
    event_type text        NOT NULL,
    attempt    integer     NOT NULL,
    status     integer     NOT NULL,
    latency    bigint      NOT NULL,
    success    boolean     NOT NULL,
    error      text        NOT NULL DEFAULT '',
    time       timestamptz NOT NULL
);

-- ListDeliveryAttempts reads a subscription's newest attempts; deleting a
-- subscription cascades through it.
CREATE INDEX webhook_attempts_webhook_id_time ON webhook_attempts (webhook_id, time DESC);

-- The feed position (an EventPos) up to which a consumer has read:
-- "webhooks" is the dispatcher's. DispatchEvents locks its row, so
-- replicas dispatch in turn.
CREATE TABLE event_sinks (
    name text   PRIMARY KEY,
    tx   xid8   NOT NULL DEFAULT '0',
    seq  bigint NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE event_sinks;
DROP TABLE webhook_attempts;
DROP TABLE webhooks;
