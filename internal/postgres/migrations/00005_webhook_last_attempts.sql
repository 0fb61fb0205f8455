-- +goose Up
-- When each subscription's last successful and last failed delivery
-- attempt happened (users.Webhook.LastSuccessTime, LastFailureTime); NULL:
-- never.
ALTER TABLE webhooks
    ADD COLUMN last_success_time timestamptz NULL,
    ADD COLUMN last_failure_time timestamptz NULL;

-- +goose Down
ALTER TABLE webhooks
    DROP COLUMN last_failure_time,
    DROP COLUMN last_success_time;
