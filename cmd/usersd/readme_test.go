package main

import (
	"flag"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeExamples returns the sh blocks of README.md's "API examples" section.
func readmeExamples(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "\n## API examples")
	if start < 0 {
		t.Fatal(`README.md has no "## API examples" section`)
	}
	section := text[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

// TestREADMEExamples runs every example of the README against a live server,
// as printed except for the ports, twice (the examples must be repeatable).
// curl is made to fail on HTTP errors, so an example that answers 4xx or 5xx
// fails the test.
func TestREADMEExamples(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "grep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
	blocks := readmeExamples(t)
	if len(blocks) < 3 {
		t.Fatalf("found %d example blocks in README.md, want at least 3", len(blocks))
	}
	s := startServer(t)
	ports := strings.NewReplacer("localhost:8080", s.HTTP, "localhost:9090", s.GRPC)
	curl := regexp.MustCompile(`(^|[\s(])curl `)
	for round := range 2 {
		for i, b := range blocks {
			if !strings.Contains(b, "curl") && !strings.Contains(b, "grpcurl") {
				t.Errorf("example %d runs neither curl nor grpcurl:\n%s", i, b)
			}
			script := curl.ReplaceAllString(ports.Replace(b), "${1}curl --fail-with-body ")
			cmd := exec.Command("bash", "-ec", script)
			cmd.Dir = "../.."
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("round %d, example %d failed: %v\n--- example:\n%s--- output:\n%s", round, i, err, b, out)
			}
		}
	}
}

// TestREADMEConfiguration checks the configuration table of README.md lists
// every flag of serve and gateway, with its environment variable and, where
// the table states one, its default.
func TestREADMEConfiguration(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`--") {
			continue
		}
		// A row may list several flags and their variables: "`--a`, `--b`".
		names, envs := strings.Split(cells[1], ","), strings.Split(cells[2], ",")
		for i, n := range names {
			env := ""
			if i < len(envs) {
				env = strings.Trim(strings.TrimSpace(envs[i]), "`")
			}
			rows[strings.Trim(strings.TrimSpace(n), "`-")] = []string{env, strings.Trim(strings.TrimSpace(cells[3]), "`")}
		}
	}
	for _, cmd := range []string{"serve", "gateway"} {
		var cfg config
		flagSet(cmd, &cfg, true, io.Discard).VisitAll(func(f *flag.Flag) {
			row, ok := rows[f.Name]
			switch {
			case !ok:
				t.Errorf("README configuration table lacks --%s (usersd %s)", f.Name, cmd)
			case row[0] != envName(f.Name):
				t.Errorf("README: --%s env is %q, want %q", f.Name, row[0], envName(f.Name))
			case f.DefValue != "" && f.DefValue != "0s" && !sameValue(row[1], f.DefValue) && !strings.Contains(row[1], " "):
				t.Errorf("README: --%s default is %q, want %q", f.Name, row[1], f.DefValue)
			}
		})
	}
}

// sameValue compares a default as the README writes it with the flag's:
// durations by value ("5m" is "5m0s").
func sameValue(readme, def string) bool {
	if readme == def {
		return true
	}
	a, errA := time.ParseDuration(readme)
	b, errB := time.ParseDuration(def)
	return errA == nil && errB == nil && a == b
}
