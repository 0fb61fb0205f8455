package grpcserver

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/usersd/usersd/internal/users"
)

// The pieces of conversion that every API version shares. Each concept has
// one conversion per version, in convert_v1.go and convert_v2.go.

// optionalTime returns nil for the zero time, so that unset stays unset.
func optionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// changedPaths returns the fields an event set by their JSON names, or nil
// for none.
func changedPaths(paths []string) []string {
	if len(paths) == 0 {
		return nil
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = jsonName(p)
	}
	return out
}

// jsonName returns the lowerCamelCase JSON name of a snake_case field
// name: "display_name" is "displayName".
func jsonName(field string) string {
	parts := strings.Split(field, "_")
	for i := 1; i < len(parts); i++ {
		if p := parts[i]; p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

// eventTypes returns the domain's form of a subscription's event types, nil
// for none.
func eventTypes(in []string) []users.EventType {
	if len(in) == 0 {
		return nil
	}
	out := make([]users.EventType, len(in))
	for i, t := range in {
		out[i] = users.EventType(t)
	}
	return out
}

// webhookParams is what the Webhook of every API version carries that a
// caller may set, but its name or id.
type webhookParams interface {
	GetUrl() string
	GetEventTypes() []string
	GetEnabled() bool
}

// webhookRequest returns the domain's form of a Webhook of any version.
func webhookRequest(w webhookParams) users.WebhookRequest {
	return users.WebhookRequest{URL: w.GetUrl(), EventTypes: eventTypes(w.GetEventTypes()), Enabled: w.GetEnabled()}
}

// eventTypeNames is the reverse of eventTypes.
func eventTypeNames(in []users.EventType) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, len(in))
	for i, t := range in {
		out[i] = string(t)
	}
	return out
}

// secretIf returns the subscription's secret when with is true, else "".
func secretIf(w *users.Webhook, with bool) string {
	if with {
		return w.Secret
	}
	return ""
}

// sameShape returns from as a message of type M, which has from's fields
// by number and type (wire compatible): a message of one API version
// turned into its twin of another, where the two match field for field.
func sameShape[M proto.Message](from proto.Message) M {
	var to M
	to = to.ProtoReflect().Type().New().Interface().(M)
	b, err := proto.Marshal(from)
	if err == nil {
		err = proto.Unmarshal(b, to)
	}
	if err != nil {
		// Only a contract change can get here, and a test catches it.
		panic(fmt.Sprintf("grpcserver: %T is not the shape of %T: %v", to, from, err))
	}
	return to
}
