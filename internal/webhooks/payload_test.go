package webhooks_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/webhooks"
)

// testUser returns a user with every field set, DELETED.
func testUser() *users.User {
	return &users.User{
		ID:          "01890a5d-ac96-774b-bcce-b302099a8000",
		Email:       "ada@example.com",
		DisplayName: "Ada Lovelace",
		State:       users.StateDeleted,
		Labels:      map[string]string{"team": "math", "b": "2"},
		CreateTime:  time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		UpdateTime:  time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC),
		DeleteTime:  time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC),
		Revision:    3,
		Profile: users.Profile{
			ExternalID: "okta-00u1", GivenName: "Ada", FamilyName: "Lovelace", PhoneNumber: "+442079460958",
			EmailVerified: true, Locale: "en-GB", TimeZone: "Europe/London",
			Attributes: []byte(`{"cost_center":4200,"remote":true}`),
		},
	}
}

func testEvent() users.Event {
	u := testUser()
	return users.Event{
		ID:          "01890a5d-ac96-774b-bcce-b302099a8057",
		Tenant:      users.DefaultTenant,
		Type:        users.EventDeleted,
		UserID:      u.ID,
		User:        u,
		Paths:       []string{"display_name", "state", "labels", "delete_time"},
		Time:        u.UpdateTime,
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
}

func TestPayload(t *testing.T) {
	ev := testEvent()
	purged := users.Event{ID: "01890a5d-ac96-774b-bcce-b302099a8058", Tenant: "acme", Type: users.EventPurged, UserID: ev.UserID, Time: time.Date(2026, 3, 11, 0, 0, 0, 5000, time.FixedZone("x", 3600))}
	tests := []struct {
		name string
		ev   users.Event
		want string
	}{
		{
			name: "deleted",
			ev:   ev,
			want: `{"version":1,"type":"user.deleted","id":"01890a5d-ac96-774b-bcce-b302099a8057","timestamp":"2026-03-04T05:06:07.123456Z",` +
				`"data":{"userId":"01890a5d-ac96-774b-bcce-b302099a8000","user":{"id":"01890a5d-ac96-774b-bcce-b302099a8000","email":"ada@example.com",` +
				`"displayName":"Ada Lovelace","state":"STATE_DELETED","labels":{"b":"2","team":"math"},"createTime":"2026-03-01T00:00:00Z",` +
				`"updateTime":"2026-03-04T05:06:07.123456Z","deleteTime":"2026-03-04T05:06:07.123456Z","etag":"` + ev.User.Etag() + `",` +
				`"externalId":"okta-00u1","givenName":"Ada","familyName":"Lovelace","phoneNumber":"+442079460958","emailVerified":true,` +
				`"phoneVerified":false,"locale":"en-GB","timeZone":"Europe/London","attributes":{"cost_center":4200,"remote":true}},` +
				`"changedPaths":["displayName","state","labels","deleteTime"],"tenant":"default"}}`,
		},
		{
			name: "purged",
			ev:   purged,
			want: `{"version":1,"type":"user.purged","id":"01890a5d-ac96-774b-bcce-b302099a8058","timestamp":"2026-03-10T23:00:00.000005Z",` +
				`"data":{"userId":"01890a5d-ac96-774b-bcce-b302099a8000","user":null,"changedPaths":[],"tenant":"acme"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webhooks.Payload(tt.ev)
			if err != nil {
				t.Fatalf("Payload() err = %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("Payload() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestPayloadUserIsHTTPAPIUser checks that data.user has exactly the
// members and formats of the user in the v1 HTTP API (protojson of
// users.v1.User with unpopulated fields emitted, as the gateway writes
// it), and the profile members of v2's, formatted as v2's.
func TestPayloadUserIsHTTPAPIUser(t *testing.T) {
	full := testUser()
	bare := &users.User{ID: full.ID, Email: full.Email, DisplayName: "B", State: users.StateActive,
		CreateTime: time.Date(2026, 1, 2, 3, 4, 5, 100_000_000, time.UTC), UpdateTime: time.Date(2026, 1, 2, 3, 4, 5, 1, time.UTC)}
	for _, u := range []*users.User{full, bare} {
		t.Run(u.DisplayName, func(t *testing.T) {
			body, err := webhooks.Payload(users.Event{ID: "x", Type: users.EventCreated, UserID: u.ID, User: u, Time: u.UpdateTime})
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Data struct {
					User map[string]any `json:"user"`
				} `json:"data"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}

			pb := &usersv1.User{
				Id: u.ID, Email: u.Email, DisplayName: u.DisplayName, State: usersv1.User_State(u.State), Labels: u.Labels,
				CreateTime: timestamppb.New(u.CreateTime), UpdateTime: timestamppb.New(u.UpdateTime), Etag: u.Etag(),
			}
			if !u.DeleteTime.IsZero() {
				pb.DeleteTime = timestamppb.New(u.DeleteTime)
			}
			api, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(pb)
			if err != nil {
				t.Fatal(err)
			}
			var want map[string]any
			if err := json.Unmarshal(api, &want); err != nil {
				t.Fatal(err)
			}
			v2 := &usersv2.User{
				ExternalId: u.ExternalID, GivenName: u.GivenName, FamilyName: u.FamilyName, PhoneNumber: u.PhoneNumber,
				EmailVerified: u.EmailVerified, PhoneVerified: u.PhoneVerified, Locale: u.Locale, TimeZone: u.TimeZone,
			}
			if u.Attributes != nil {
				v2.Attributes = &structpb.Struct{}
				if err := protojson.Unmarshal(u.Attributes, v2.Attributes); err != nil {
					t.Fatal(err)
				}
			}
			api2, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(v2)
			if err != nil {
				t.Fatal(err)
			}
			var all2 map[string]any
			if err := json.Unmarshal(api2, &all2); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"externalId", "givenName", "familyName", "phoneNumber", "emailVerified", "phoneVerified", "locale", "timeZone", "attributes"} {
				want[k] = all2[k]
			}
			if diff := cmp.Diff(want, got.Data.User); diff != "" {
				t.Errorf("data.user differs from the HTTP API's user (-api +payload):\n%s", diff)
			}
		})
	}
}

func TestPayloadRefusesBadEventID(t *testing.T) {
	for _, id := range []string{"", "a.b"} {
		ev := testEvent()
		ev.ID = id
		if _, err := webhooks.Payload(ev); !errors.Is(err, webhooks.ErrInvalidTarget) {
			t.Errorf("Payload(id %q) err = %v, want %v", id, err, webhooks.ErrInvalidTarget)
		}
	}
}

func ExamplePayload() {
	body, _ := webhooks.Payload(users.Event{
		ID:     "01890a5d-ac96-774b-bcce-b302099a8058",
		Tenant: "acme",
		Type:   users.EventPurged,
		UserID: "01890a5d-ac96-774b-bcce-b302099a8000",
		Time:   time.Date(2026, 3, 10, 23, 0, 0, 0, time.UTC),
	})
	fmt.Println(string(body))
	// Output:
	// {"version":1,"type":"user.purged","id":"01890a5d-ac96-774b-bcce-b302099a8058","timestamp":"2026-03-10T23:00:00Z","data":{"userId":"01890a5d-ac96-774b-bcce-b302099a8000","user":null,"changedPaths":[],"tenant":"acme"}}
}
