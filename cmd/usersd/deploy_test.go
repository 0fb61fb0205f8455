package main

// Offline checks of deploy/ against the program: the Dockerfile's build and
// image, the compose file's settings, the metric names the alerts and the
// dashboard use. 'make deploy-check' runs them with promtool's checks.

import (
	"context"
	"debug/elf"
	"encoding/json"
	"flag"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// repoFile reads a file of the repository, relative to its root.
func repoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dockerInstr is one Dockerfile instruction: its keyword (upper case) and
// the rest of its line, continuation lines joined.
type dockerInstr struct{ cmd, args string }

// dockerStages splits a Dockerfile into its build stages, each starting
// with its FROM.
func dockerStages(text string) [][]dockerInstr {
	var stages [][]dockerInstr
	var cur string
	flush := func() {
		fields := strings.Fields(cur)
		cur = ""
		if len(fields) == 0 {
			return
		}
		in := dockerInstr{strings.ToUpper(fields[0]), strings.Join(fields[1:], " ")}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur += s + " "
			continue
		}
		cur += trimmed
		flush()
	}
	flush()
	return stages
}

func find(stage []dockerInstr, cmd string) []string {
	var out []string
	for _, in := range stage {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// serveDefaults are the defaults of the serve command's flags.
func serveDefaults() map[string]string {
	var cfg config
	fs := flagSet("serve", &cfg, true, io.Discard)
	m := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { m[f.Name] = f.DefValue })
	return m
}

// defaultPorts are the ports of the three listening addresses' defaults.
func defaultPorts(t *testing.T) map[string]string {
	t.Helper()
	defs := serveDefaults()
	ports := map[string]string{}
	for _, name := range []string{"http-addr", "grpc-addr", "admin-addr"} {
		_, port, err := net.SplitHostPort(defs[name])
		if err != nil {
			t.Fatalf("--%s default %q: %v", name, defs[name], err)
		}
		ports[name] = port
	}
	return ports
}

func TestDeployDockerfile(t *testing.T) {
	// The release build sets these with -X; this fails to compile if they go.
	_, _ = &version, &commit

	stages := dockerStages(repoFile(t, "deploy/Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("Dockerfile has %d stages, want 2 (build, final)", len(stages))
	}
	build, final := stages[0], stages[1]

	// Builder: golang at go.mod's minor version.
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(repoFile(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if from := build[0].args; !strings.HasPrefix(from, "golang:"+m[1]+" ") && from != "golang:"+m[1] {
		t.Errorf("builder FROM %q, want golang:%s (go.mod's go %s)", from, m[1], m[1])
	}

	// The build line: static, reproducible paths, version and commit stamped
	// from ARGs declared before it.
	var buildLine string
	var args []string
	for _, in := range build {
		if in.cmd == "ARG" {
			args = append(args, strings.SplitN(in.args, "=", 2)[0])
		}
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			buildLine = in.args
			break
		}
	}
	if buildLine == "" {
		t.Fatal("builder stage has no RUN ... go build")
	}
	for _, want := range []string{"CGO_ENABLED=0 go build", "-trimpath", "-s -w", "-X main.version=${VERSION}", "-X main.commit=${COMMIT}", "./cmd/usersd"} {
		if !strings.Contains(buildLine, want) {
			t.Errorf("go build line lacks %q:\n%s", want, buildLine)
		}
	}
	for _, arg := range []string{"VERSION", "COMMIT"} {
		if !slices.Contains(args, arg) {
			t.Errorf("builder stage declares no ARG %s before go build", arg)
		}
	}

	// Final stage: distroless static, nonroot, the binary at /usersd.
	if got := final[0].args; got != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final FROM %q, want gcr.io/distroless/static-debian12:nonroot", got)
	}
	if got := find(final, "USER"); !slices.Equal(got, []string{"nonroot:nonroot"}) {
		t.Errorf("final USER %q, want nonroot:nonroot", got)
	}
	if !slices.ContainsFunc(find(final, "COPY"), func(s string) bool { return strings.HasPrefix(s, "--from=build ") && strings.HasSuffix(s, " /usersd") }) {
		t.Error("final stage does not COPY --from=build ... /usersd")
	}

	// EXPOSE: exactly the default ports of the three addresses.
	var exposed []string
	for _, e := range find(final, "EXPOSE") {
		exposed = append(exposed, strings.Fields(e)...)
	}
	var want []string
	for _, p := range defaultPorts(t) {
		want = append(want, p)
	}
	slices.Sort(exposed)
	slices.Sort(want)
	if !slices.Equal(exposed, want) {
		t.Errorf("EXPOSE %v, want the flag defaults' ports %v", exposed, want)
	}

	// ENTRYPOINT and CMD, exec form: /usersd and a command it knows.
	var entry, cmd []string
	for _, c := range []struct {
		name string
		dst  *[]string
	}{{"ENTRYPOINT", &entry}, {"CMD", &cmd}} {
		got := find(final, c.name)
		if len(got) != 1 {
			t.Fatalf("final stage has %d %s, want 1", len(got), c.name)
		}
		if err := json.Unmarshal([]byte(got[0]), c.dst); err != nil {
			t.Fatalf("%s %s is not the exec (JSON) form: %v", c.name, got[0], err)
		}
	}
	if !slices.Equal(entry, []string{"/usersd"}) {
		t.Errorf("ENTRYPOINT %q, want [\"/usersd\"]", entry)
	}
	if !slices.Equal(cmd, []string{"serve"}) {
		t.Errorf("CMD %q, want [\"serve\"]", cmd)
	}
	if len(cmd) > 0 {
		// "-h" makes a known command print its flags and return nil; an
		// unknown one is an error.
		if err := run(context.Background(), []string{"usersd", cmd[0], "-h"}, func(string) string { return "" }, io.Discard, io.Discard); err != nil {
			t.Errorf("CMD names %q, which usersd does not know: %v", cmd[0], err)
		}
	}
}

// TestDeployStaticBinary runs the command line of 'make build' (into a temporary
// directory) and checks the binary is static and stamped.
func TestDeployStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if runtime.GOOS != "linux" {
		t.Skip("checks an ELF binary")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("make", "-C", root, "-s", "-n", "build", "VERSION=v9.9.9-deploytest", "COMMIT=0123abc").Output()
	if err != nil {
		t.Fatalf("make -n build: %v", err)
	}
	line := strings.TrimSpace(string(out))
	if !strings.HasPrefix(line, "CGO_ENABLED=0 ") || strings.Count(line, "\n") != 0 || !strings.Contains(line, " -o usersd ") {
		t.Fatalf("make build runs %q, want one line: CGO_ENABLED=0 go build ... -o usersd ...", line)
	}
	bin := filepath.Join(t.TempDir(), "usersd")
	line = strings.Replace(line, " -o usersd ", " -o '"+bin+"' ", 1)
	cmd := exec.Command("bash", "-c", line)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a %v program header: dynamically linked", p.Type)
		}
	}
	if f.Section(".dynamic") != nil || f.Section(".interp") != nil {
		t.Error("binary has a .dynamic or .interp section: dynamically linked")
	}

	v, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("usersd version: %v", err)
	}
	if !strings.HasPrefix(string(v), "usersd v9.9.9-deploytest (commit 0123abc,") {
		t.Errorf("usersd version printed %q, want the -X stamped version and commit", v)
	}
}

// TestDeployCompose checks the compose file and the Prometheus config agree
// with the program: environment names are flags', ports are the defaults.
func TestDeployCompose(t *testing.T) {
	compose := repoFile(t, "deploy/docker-compose.yaml")
	if regexp.MustCompile(`(?m)^version:`).MatchString(compose) {
		t.Error("docker-compose.yaml has a version key; the compose spec has none")
	}
	envs := map[string]bool{}
	for name := range serveDefaults() {
		envs[envName(name)] = true
	}
	keys := regexp.MustCompile(`(?m)^\s+(USERSD_[A-Z0-9_]+):`).FindAllStringSubmatch(compose, -1)
	if len(keys) == 0 {
		t.Error("docker-compose.yaml sets no USERSD_ variable")
	}
	for _, k := range keys {
		if !envs[k[1]] {
			t.Errorf("docker-compose.yaml sets %s, which is no flag's variable", k[1])
		}
	}
	if !strings.Contains(compose, "USERSD_DATABASE_URL: postgres://") {
		t.Error("docker-compose.yaml does not point USERSD_DATABASE_URL at Postgres")
	}
	for name, port := range defaultPorts(t) {
		if !strings.Contains(compose, `- "`+port+":"+port+`"`) {
			t.Errorf("docker-compose.yaml does not publish --%s's port %s", name, port)
		}
	}
	prom := repoFile(t, "deploy/prometheus/prometheus.yml")
	if admin := defaultPorts(t)["admin-addr"]; !strings.Contains(prom, `"usersd:`+admin+`"`) {
		t.Errorf("prometheus.yml does not scrape usersd:%s (the admin address)", admin)
	}
}

// TestDeployMetricNames checks every usersd and gRPC metric the alerts and
// the dashboard use is one usersd exports (docs/operations.md, or the pool
// collector's names in internal/telemetry).
func TestDeployMetricNames(t *testing.T) {
	known := map[string]bool{}
	for _, m := range regexp.MustCompile("`((?:usersd|grpc_server)_[a-z0-9_]+)`").FindAllStringSubmatch(repoFile(t, "docs/operations.md"), -1) {
		known[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\bd\("([a-z0-9_]+)"`).FindAllStringSubmatch(repoFile(t, "internal/telemetry/metrics.go"), -1) {
		known["usersd_db_pool_"+m[1]] = true
	}
	if len(known) < 10 {
		t.Fatalf("found only %d metric names in docs/operations.md and metrics.go", len(known))
	}

	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal([]byte(repoFile(t, "deploy/grafana/usersd.json")), &dash); err != nil {
		t.Fatalf("deploy/grafana/usersd.json: %v", err)
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 || slices.ContainsFunc(p.Targets, func(tg struct{ Expr string }) bool { return tg.Expr == "" }) {
			t.Errorf("dashboard panel %q has a target without a query", p.Title)
		}
	}

	name := regexp.MustCompile(`\b(?:usersd|grpc_server)_[a-z0-9_]*[a-z0-9]\b`)
	for _, file := range []string{"deploy/prometheus/alerts.yaml", "deploy/grafana/usersd.json"} {
		var text []string
		for _, line := range strings.Split(repoFile(t, file), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "#") { // the TODO names a future metric
				text = append(text, line)
			}
		}
		used := name.FindAllString(strings.Join(text, "\n"), -1)
		if len(used) == 0 {
			t.Errorf("%s uses no usersd metric", file)
		}
		for _, u := range used {
			base := u
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(u, suffix); ok && known[b] {
					base = b
				}
			}
			if !known[base] {
				t.Errorf("%s uses %s, which usersd does not export", file, u)
			}
		}
	}
}
