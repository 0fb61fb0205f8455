package grpcserver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/inproc"
)

// TestV2WebhookHandlersCheckNames calls users.v2's webhook methods without
// the protovalidate interceptor, which rejects malformed names first in
// usersd: the handlers and the domain check them again, and the fields
// they name are v2's (the Errors interceptor maps the domain's).
func TestV2WebhookHandlersCheckNames(t *testing.T) {
	ch := inproc.New(grpcserver.ErrorInterceptor)
	usersv2.RegisterUserServiceServer(ch, grpcserver.NewV2(newService(t)))
	c := usersv2.NewUserServiceClient(ch)
	tests := []struct {
		name   string
		req    proto.Message
		fields []string
	}{
		{"get not a uuid", &usersv2.GetWebhookRequest{Name: "webhooks/not-a-uuid"}, []string{"name"}},
		{"get other collection", &usersv2.GetWebhookRequest{Name: "users/x"}, []string{"name"}},
		{"get no name", &usersv2.GetWebhookRequest{}, []string{"name"}},
		{"delete not a uuid", &usersv2.DeleteWebhookRequest{Name: "webhooks/42"}, []string{"name"}},
		{"update no name", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Url: "https://example.com/"}}, []string{"webhook.name"}},
		{"update no name, ignored paths only", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{}, UpdateMask: maskPaths("create_time")}, []string{"webhook.name"}},
		{"update other collection", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: "hooks/x"}}, []string{"webhook.name"}},
		{"update not a uuid", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: "webhooks/x"}, UpdateMask: maskPaths("enabled")}, []string{"webhook.name"}},
		{"deliveries not a uuid", &usersv2.ListWebhookDeliveriesRequest{Parent: "webhooks/x"}, []string{"parent"}},
		{"deliveries no parent", &usersv2.ListWebhookDeliveriesRequest{}, []string{"parent"}},
		{"deliveries other collection", &usersv2.ListWebhookDeliveriesRequest{Parent: "users/x"}, []string{"parent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := callV2(context.Background(), c, tt.req)
			checkErr(t, fmt.Sprintf("%T", tt.req), err, codes.InvalidArgument, "")
			if diff := cmp.Diff(tt.fields, badRequestFields(err)); diff != "" {
				t.Errorf("BadRequest fields (-want +got):\n%s\nerr = %v", diff, err)
			}
			if msg := status.Convert(err).Message(); v1Field.MatchString(msg) || strings.Contains(msg, "webhook_id") || strings.Contains(msg, "webhook.id") {
				t.Errorf("message %q names a field of the domain's", msg)
			}
		})
	}
}
