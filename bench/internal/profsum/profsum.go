// Package profsum summarises a CPU profile by component: each sample's
// time goes to the innermost frame that belongs to a named component
// (logging, tracing, pgx, …), the standard library and the runtime being
// folded into their caller. So the write(2) of an access line counts as
// logging and that of a query as pgx; samples with no component frame at
// all (GC workers, the scheduler) count as the Go runtime. The shares add
// up to 100%.
package profsum

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// Share is a component's part of the profile.
type Share struct {
	Component string  `json:"component"`
	Percent   float64 `json:"percent"`
}

// components maps function-name prefixes to components, most specific
// first.
var components = []struct{ prefix, name string }{
	{"github.com/rs/zerolog", "logging (zerolog)"},
	{"go.opentelemetry.io/", "tracing (OpenTelemetry)"},
	{"github.com/exaring/otelpgx", "tracing (OpenTelemetry)"},
	{"github.com/XSAM/otelsql", "tracing (OpenTelemetry)"},
	{"github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus", "metrics (Prometheus)"},
	{"github.com/prometheus/", "metrics (Prometheus)"},
	{"buf.build/go/protovalidate", "validation (protovalidate, CEL)"},
	{"github.com/google/cel-go", "validation (protovalidate, CEL)"},
	{"cel.dev/", "validation (protovalidate, CEL)"},
	{"github.com/jackc/", "pgx (Postgres client)"},
	{"modernc.org/", "SQLite (modernc)"},
	{"database/sql", "SQLite (modernc)"},
	{"github.com/grpc-ecosystem/grpc-gateway", "grpc-gateway"},
	{"github.com/fullstorydev/grpchan", "inprocgrpc channel"},
	{"google.golang.org/grpc", "grpc-go (server, HTTP/2)"},
	{"golang.org/x/net/http2", "grpc-go (server, HTTP/2)"},
	{"google.golang.org/protobuf", "protobuf (marshal, JSON, clone)"},
	{"net/http", "net/http (server)"},
	{"github.com/felixge/httpsnoop", "net/http (server)"},
	{"github.com/usersd/usersd/", "usersd code"},
	{"main.", "usersd code"},
}

// folded are the packages whose time goes to their caller: the standard
// library below the server, and small helpers.
var folded = []string{
	"runtime.", "internal/", "syscall.", "sync.", "sync/", "reflect.", "strings.", "bytes.", "strconv.",
	"fmt.", "encoding/", "crypto/", "time.", "context.", "unicode", "math", "sort.", "slices.", "maps.",
	"errors.", "io.", "bufio.", "os.", "net.", "net/textproto.", "net/url.", "net/netip.", "mime", "hash/", "path", "regexp", "unique.", "iter.", "weak.", "log/", "container/",
	"github.com/google/uuid",
}

// Summarise reads the profile in file and returns the components' shares
// of its values of the sample type ("cpu" for a CPU profile, "alloc_space"
// or "alloc_objects" for a heap profile), largest first.
func Summarise(file, sampleType string) ([]Share, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	vi := -1
	for i, st := range p.SampleType {
		if st.Type == sampleType {
			vi = i
		}
	}
	if vi < 0 {
		return nil, fmt.Errorf("%s: no %s samples", file, sampleType)
	}
	byName := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		byName[component(s)] += v
	}
	if total == 0 {
		return nil, fmt.Errorf("%s: no samples", file)
	}
	out := make([]Share, 0, len(byName))
	for n, v := range byName {
		out = append(out, Share{Component: n, Percent: float64(v) / float64(total) * 100})
	}
	slices.SortFunc(out, func(a, b Share) int { return cmp.Compare(b.Percent, a.Percent) })
	return out, nil
}

// Allocations returns the objects and bytes allocated in the heap
// profile in file: with a delta profile (/debug/pprof/allocs?seconds=N),
// those allocated during its window.
func Allocations(file string) (objects, bytes int64, err error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", file, err)
	}
	oi, bi := -1, -1
	for i, st := range p.SampleType {
		switch st.Type {
		case "alloc_objects":
			oi = i
		case "alloc_space":
			bi = i
		}
	}
	if oi < 0 || bi < 0 {
		return 0, 0, fmt.Errorf("%s: not an allocation profile", file)
	}
	for _, s := range p.Sample {
		objects += s.Value[oi]
		bytes += s.Value[bi]
	}
	return objects, bytes, nil
}

// component returns the component of the innermost frame of s that is
// not folded into its caller.
func component(s *profile.Sample) string {
	for _, loc := range s.Location { // innermost first; inlined frames innermost first too
		for _, line := range loc.Line {
			if line.Function == nil {
				continue
			}
			name := line.Function.Name
			if isFolded(name) {
				continue
			}
			for _, c := range components {
				if strings.HasPrefix(name, c.prefix) {
					return c.name
				}
			}
			return "other libraries"
		}
	}
	return "Go runtime (GC, scheduler)"
}

func isFolded(name string) bool {
	if !strings.Contains(name, ".") { // assembly: memmove, gcWriteBarrier, …
		return true
	}
	for _, p := range folded {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
