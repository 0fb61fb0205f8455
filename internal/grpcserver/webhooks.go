package grpcserver

import (
	"context"

	"github.com/usersd/usersd/internal/users"
)

// webhookOutputOnly are the update mask paths UpdateWebhook ignores, by
// proto and JSON name, in every API version: the output-only fields.
// secret is not among them: it rotates the secret. Each version also
// ignores the field that names the subscription (v1's id, v2's name).
var webhookOutputOnly = map[string]bool{
	"consecutive_failures": true, "consecutiveFailures": true,
	"disabled_reason": true, "disabledReason": true,
	"create_time": true, "createTime": true,
	"update_time": true, "updateTime": true,
}

// updateWebhook is UpdateWebhook, of every API version: it changes the
// fields of the subscription with the id that the mask paths name, and
// reports whether the secret was rotated, in which case the answer
// carries it. The path nameField, which names the subscription, and the
// output-only fields are ignored; "*" stands for url, event_types and
// enabled.
func (s *ServerV2) updateWebhook(ctx context.Context, id string, in users.WebhookRequest, mask []string, nameField string) (*users.Webhook, bool, error) {
	var paths []string
	rotate := false
	for _, p := range mask {
		switch {
		case p == nameField || webhookOutputOnly[p]:
			continue
		case p == "*":
			paths = append(paths, "url", "event_types", "enabled")
			continue
		case p == "secret":
			rotate = true
		}
		paths = append(paths, p)
	}
	if len(paths) == 0 && len(mask) > 0 {
		// Only ignored fields: nothing to change, but the domain's empty
		// mask would mean url, event_types and enabled.
		w, err := s.svc.GetWebhook(ctx, in.Tenant, id)
		return w, false, err
	}
	in.Paths = paths
	w, err := s.svc.UpdateWebhook(ctx, id, in)
	return w, rotate, err
}
