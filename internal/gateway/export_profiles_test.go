package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"testing"

	"github.com/usersd/usersd/internal/users/userstest"
)

// TestExportHTTPProfiles exports users with every profile field and
// attributes of every kind (text that JSON encoders escape differently,
// numbers that a double rounds, nesting), on each store, and checks that
// each line is the user as ListUsers answers it, value for value: the
// export's encoder and the mux's marshaler agree.
func TestExportHTTPProfiles(t *testing.T) {
	attributes := []string{
		`{"html": "<b>&amp;</b>", "quote": "say \"hi\" \\ back /", "sep": "\u2028\u2029", "ctl": "\u0001\t", "é": "ü🎉日本語"}`,
		`{"big": 12345678901234567890, "one": 1.0, "trailing": 2.50, "small": 1e-7, "huge": 1e21, "neg": -0.5, "zero": -0}`,
		`{"nested": {"b": [1, "x", null, true, {"deep": [[]]}], "a": {}}, "empty": [], "level": 3, "remote": false}`,
	}
	for _, st := range profileStores {
		t.Run(st.name, func(t *testing.T) {
			store := st.open(t)
			userstest.SeedProfiles(t, store.(userstest.ImportStore), profileTenant, 40)
			h, authz := profileGateway(t, store)
			for i, a := range attributes {
				body := fmt.Sprintf(`{"email":"edge%d@example.com","displayName":"Edge <%d> & \"co\"","givenName":"Zoë","familyName":"Ångström",`+
					`"externalId":"edge-%d","phoneNumber":"+14155550123","locale":"en-GB","timeZone":"Europe/London","emailVerified":true,`+
					`"labels":{"a":"x","b":"y"},"attributes":%s}`, i, i, i, a)
				if w := call(t, h, "POST", "/v2/tenants/"+profileTenant+"/users", body, "Authorization", authz); w.Code != http.StatusCreated {
					t.Fatalf("create user = %d %s", w.Code, w.Body)
				}
			}
			want := listAll(t, h, "/v2/tenants/"+profileTenant+"/users", authz)
			w := call(t, h, "GET", "/v2/tenants/"+profileTenant+"/users:export", "", "Authorization", authz)
			if w.Code != http.StatusOK {
				t.Fatalf("export = %d %s", w.Code, w.Body)
			}
			got := ndjson(t, w.Header(), w.Body.Bytes())
			if len(got) != len(want) || len(got) != 40+len(attributes) {
				t.Fatalf("export = %d lines, list %d users; want %d", len(got), len(want), 40+len(attributes))
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					g, _ := json.Marshal(got[i])
					l, _ := json.Marshal(want[i])
					t.Errorf("line %d:\n export %s\n list   %s", i+1, g, l)
				}
			}
		})
	}
}
