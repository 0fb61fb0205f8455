-- +goose Up
-- When each subscription's last successful and last failed delivery
-- attempt happened (users.Webhook.LastSuccessTime, LastFailureTime), in
-- integer microseconds since the Unix epoch; NULL: never.
ALTER TABLE webhooks ADD COLUMN last_success_time INTEGER NULL;
ALTER TABLE webhooks ADD COLUMN last_failure_time INTEGER NULL;

-- +goose Down
ALTER TABLE webhooks DROP COLUMN last_failure_time;
ALTER TABLE webhooks DROP COLUMN last_success_time;
