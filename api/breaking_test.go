// Package api_test checks the breaking-change gate of the contracts: `make
// breaking` compares each major version with its committed baseline in
// baselines/ (buf breaking, buf.yaml's FILE rules), and TestHTTPBindingsKept
// compares the google.api.http bindings, which buf does not look at.
package api_test

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
)

// edit replaces old, which must occur exactly once, with new in file.
type edit struct {
	file, old, new string
}

const (
	v1Proto = "api/users/v1/users.proto"
	v2Proto = "api/users/v2/users.proto"
)

// TestBreakingGate runs the check of `make breaking` on edited copies of the
// buf workspace: breaking edits must fail it, naming the rule they broke,
// and compatible ones must pass.
func TestBreakingGate(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	flags := breakingFlags(t, root)
	buf := bufBinary(t, root)
	if _, err := os.Stat(filepath.Join(root, ".protodeps")); errors.Is(err, fs.ErrNotExist) {
		run(t, root, "make", "protodeps")
	}

	tests := []struct {
		name    string
		against string // the version whose baseline is checked
		edits   []edit
		// wantRules are the rules the check must report; none means it
		// must pass.
		wantRules []string
	}{
		{name: "unchanged v1", against: "v1"},
		{name: "unchanged v2", against: "v2"},
		{
			name:    "field renumbered",
			against: "v1",
			edits: []edit{{v1Proto,
				"  string display_name = 3 [",
				"  string display_name = 10 ["}},
			wantRules: []string{"FIELD_NO_DELETE"},
		},
		{
			name:    "field renamed",
			against: "v1",
			edits: []edit{{v1Proto,
				"  string email = 2 [",
				"  string email_address = 2 ["}},
			wantRules: []string{"FIELD_SAME_NAME", "FIELD_SAME_JSON_NAME"},
		},
		{
			name:    "field type changed",
			against: "v1",
			edits: []edit{{v1Proto,
				"  bool show_deleted = 5;",
				"  string show_deleted = 5;"}},
			wantRules: []string{"FIELD_SAME_TYPE"},
		},
		{
			name:    "enum value renamed",
			against: "v1",
			edits: []edit{{v1Proto,
				"    STATE_SUSPENDED = 2;",
				"    STATE_DISABLED = 2;"}},
			wantRules: []string{"ENUM_VALUE_SAME_NAME"},
		},
		{
			name:    "rpc deleted",
			against: "v1",
			edits: []edit{{v1Proto, `  rpc BatchGetUsers(BatchGetUsersRequest) returns (BatchGetUsersResponse) {
    option (google.api.http) = {get: "/v1/users:batchGet"};
  }
`, ""}},
			wantRules: []string{"RPC_NO_DELETE"},
		},
		{
			name:    "optional field added",
			against: "v1",
			edits: []edit{{v1Proto,
				"  string etag = 9 [(buf.validate.field).string.max_len = 64];\n",
				"  string etag = 9 [(buf.validate.field).string.max_len = 64];\n\n" +
					"  // Preferred language, a BCP 47 tag.\n  optional string locale = 10;\n"}},
		},
		{
			name:    "rpc added",
			against: "v1",
			edits: []edit{
				{v1Proto, "service UserService {\n", `service UserService {
  // PurgeUser erases a deleted user.
  rpc PurgeUser(PurgeUserRequest) returns (PurgeUserResponse) {
    option (google.api.http) = {
      post: "/v1/users/{id}:purge"
      body: "*"
    };
  }
`},
				{v1Proto, "// BatchGetUsersResponse is the output of BatchGetUsers.\n", `// PurgeUserRequest is the input of PurgeUser.
message PurgeUserRequest {
  // The user's id.
  string id = 1;
}

// PurgeUserResponse is the output of PurgeUser.
message PurgeUserResponse {}

// BatchGetUsersResponse is the output of BatchGetUsers.
`},
			},
		},
		{
			// Each baseline holds only its version's files, so v1's check
			// does not see v2; v2's own check does.
			name:    "v2 rpc renamed, v1 checked",
			against: "v1",
			edits: []edit{{v2Proto,
				"  rpc ListUsers(ListUsersRequest) returns (ListUsersResponse) {\n",
				"  rpc ListAllUsers(ListUsersRequest) returns (ListUsersResponse) {\n"}},
		},
		{
			name:    "v2 rpc renamed, v2 checked",
			against: "v2",
			edits: []edit{{v2Proto,
				"  rpc ListUsers(ListUsersRequest) returns (ListUsersResponse) {\n",
				"  rpc ListAllUsers(ListUsersRequest) returns (ListUsersResponse) {\n"}},
			wantRules: []string{"RPC_NO_DELETE"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ws := copyWorkspace(t, root)
			for _, e := range tt.edits {
				e.apply(t, ws)
			}
			// As in the Makefile: in the workspace root, input ".".
			args := append([]string{"breaking"}, flags...)
			args = append(args, "--against", "api/baselines/users-"+tt.against+".binpb")
			cmd := exec.CommandContext(t.Context(), buf, args...)
			cmd.Dir = ws
			out, err := cmd.CombinedOutput()
			t.Logf("buf %s:\n%s", strings.Join(args, " "), out)

			if len(tt.wantRules) == 0 {
				if err != nil {
					t.Fatalf("buf breaking err = %v, want success; output:\n%s", err, out)
				}
				return
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("buf breaking err = %v, want a non-zero exit; output:\n%s", err, out)
			}
			for _, rule := range tt.wantRules {
				// msvs format: "file(line,col) : error RULE : message".
				if !strings.Contains(string(out), " : error "+rule+" : ") {
					t.Errorf("buf breaking output does not report %s:\n%s", rule, out)
				}
			}
		})
	}
}

// breakingFlags returns the Makefile's BREAKING_FLAGS, so that this test
// runs the check exactly as `make breaking` does.
func breakingFlags(t *testing.T, root string) []string {
	t.Helper()
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(mk)) {
		if name, value, ok := strings.Cut(line, ":="); ok && strings.TrimSpace(name) == "BREAKING_FLAGS" {
			return strings.Fields(value)
		}
	}
	t.Fatal("the Makefile defines no BREAKING_FLAGS")
	return nil
}

// bufBinary returns the path of the buf pinned in go.mod's tool block,
// building it if needed: `go tool buf` runs only inside the module, and the
// check runs in a copy of the workspace outside it.
func bufBinary(t *testing.T, root string) string {
	t.Helper()
	return strings.TrimSpace(run(t, root, "go", "tool", "-n", "buf"))
}

// run runs a command in dir and returns its standard output.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// copyWorkspace copies what buf reads (buf.yaml, api/ with the baselines,
// .protodeps/) to a temporary directory and returns it.
func copyWorkspace(t *testing.T, root string) string {
	t.Helper()
	ws := t.TempDir()
	b, err := os.ReadFile(filepath.Join(root, "buf.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "buf.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"api", ".protodeps"} {
		if err := os.CopyFS(filepath.Join(ws, dir), os.DirFS(filepath.Join(root, dir))); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

func (e edit) apply(t *testing.T, ws string) {
	t.Helper()
	path := filepath.Join(ws, e.file)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), e.old); n != 1 {
		t.Fatalf("%s holds %q %d times, want once: update the test to the contract", e.file, e.old, n)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), e.old, e.new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHTTPBindingsKept fails when an RPC's google.api.http binding differs
// from its baseline's, or the RPC has lost it. buf breaking does not compare
// bindings, yet a new path, method or body breaks every HTTP client. Adding
// RPCs with new bindings is fine.
func TestHTTPBindingsKept(t *testing.T) {
	for _, tt := range []struct {
		version string
		file    protoreflect.FileDescriptor
	}{
		{"v1", usersv1.File_users_v1_users_proto},
		{"v2", usersv2.File_users_v2_users_proto},
	} {
		t.Run(tt.version, func(t *testing.T) {
			base := baselineBindings(t, tt.version)
			if len(base) == 0 {
				t.Fatalf("baselines/users-%s.binpb has no HTTP bindings", tt.version)
			}
			for _, problem := range changedBindings(base, fileBindings(tt.file)) {
				t.Errorf("%s; if HTTP clients may break, `make baseline API=%s`", problem, tt.version)
			}
		})
	}
}

// TestChangedBindings shows that TestHTTPBindingsKept catches changes.
func TestChangedBindings(t *testing.T) {
	const get = "users.v1.UserService/GetUser"
	tests := []struct {
		name   string
		change func(bindings map[string]*annotations.HttpRule)
		want   []string // RPCs reported
	}{
		{name: "unchanged", change: func(map[string]*annotations.HttpRule) {}},
		{
			name: "path changed",
			change: func(b map[string]*annotations.HttpRule) {
				b[get].Pattern = &annotations.HttpRule_Get{Get: "/v1/people/{id}"}
			},
			want: []string{get},
		},
		{
			name: "method changed",
			change: func(b map[string]*annotations.HttpRule) {
				b[get].Pattern = &annotations.HttpRule_Post{Post: b[get].GetGet()}
			},
			want: []string{get},
		},
		{
			name: "moved to a new path, the old one kept as an additional binding",
			change: func(b map[string]*annotations.HttpRule) {
				old := proto.CloneOf(b[get])
				b[get].Pattern = &annotations.HttpRule_Get{Get: "/v1/{name=tenants/*/users/*}"}
				b[get].AdditionalBindings = []*annotations.HttpRule{old}
			},
		},
		{
			name: "body of the additional binding changed",
			change: func(b map[string]*annotations.HttpRule) {
				old := proto.CloneOf(b[get])
				old.Body = "*"
				b[get].Pattern = &annotations.HttpRule_Get{Get: "/v1/{name=tenants/*/users/*}"}
				b[get].AdditionalBindings = []*annotations.HttpRule{old}
			},
			want: []string{get},
		},
		{
			name:   "binding removed",
			change: func(b map[string]*annotations.HttpRule) { delete(b, get) },
			want:   []string{get},
		},
		{
			name: "binding added",
			change: func(b map[string]*annotations.HttpRule) {
				b["users.v1.UserService/PurgeUser"] = &annotations.HttpRule{
					Pattern: &annotations.HttpRule_Post{Post: "/v1/users/{id}:purge"}, Body: "*",
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := fileBindings(usersv1.File_users_v1_users_proto)
			current := fileBindings(usersv1.File_users_v1_users_proto)
			tt.change(current)
			var got []string
			for _, problem := range changedBindings(base, current) {
				rpc, _, _ := strings.Cut(problem, ":")
				got = append(got, rpc)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("changedBindings reports %q, want %q", got, tt.want)
			}
		})
	}
}

// changedBindings describes, one line per RPC in sorted order, each
// binding of base that current lacks or has changed.
func changedBindings(base, current map[string]*annotations.HttpRule) []string {
	var problems []string
	for _, rpc := range slices.Sorted(maps.Keys(base)) {
		now, ok := current[rpc]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: HTTP binding {%s} is gone", rpc, prototext.Format(base[rpc])))
		default:
			for _, old := range flatten(base[rpc]) {
				if !slices.ContainsFunc(flatten(now), func(r *annotations.HttpRule) bool { return proto.Equal(r, old) }) {
					problems = append(problems, fmt.Sprintf("%s: HTTP binding {%s} of the baseline is gone; now {%s}", rpc, prototext.Format(old), prototext.Format(now)))
				}
			}
		}
	}
	return problems
}

// flatten returns the bindings of a rule one by one: the rule without its
// additional bindings, then each of those. A binding of the baseline is
// kept when it is still one of them, first or additional: its clients'
// requests are still routed the same way.
func flatten(r *annotations.HttpRule) []*annotations.HttpRule {
	first := proto.CloneOf(r)
	first.AdditionalBindings = nil
	return append([]*annotations.HttpRule{first}, r.GetAdditionalBindings()...)
}

// fileBindings returns copies of the HTTP bindings of the RPCs of file, by
// "package.Service/Method".
func fileBindings(file protoreflect.FileDescriptor) map[string]*annotations.HttpRule {
	bindings := map[string]*annotations.HttpRule{}
	for i := range file.Services().Len() {
		s := file.Services().Get(i)
		for j := range s.Methods().Len() {
			m := s.Methods().Get(j)
			if rule, ok := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule); ok && rule != nil {
				bindings[string(s.FullName())+"/"+string(m.Name())] = proto.CloneOf(rule)
			}
		}
	}
	return bindings
}

// baselineBindings returns the HTTP bindings of the RPCs in the baseline of
// version. A buf image is wire-compatible with a FileDescriptorSet.
func baselineBindings(t *testing.T, version string) map[string]*annotations.HttpRule {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("baselines", "users-"+version+".binpb"))
	if err != nil {
		t.Fatal(err)
	}
	var image descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &image); err != nil {
		t.Fatalf("baselines/users-%s.binpb: %v", version, err)
	}
	bindings := map[string]*annotations.HttpRule{}
	for _, f := range image.GetFile() {
		if !strings.HasPrefix(f.GetName(), "users/"+version+"/") {
			continue // an import
		}
		for _, s := range f.GetService() {
			for _, m := range s.GetMethod() {
				if rule, ok := proto.GetExtension(m.GetOptions(), annotations.E_Http).(*annotations.HttpRule); ok && rule != nil {
					bindings[f.GetPackage()+"."+s.GetName()+"/"+m.GetName()] = rule
				}
			}
		}
	}
	return bindings
}
