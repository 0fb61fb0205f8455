// Package telemetry is how usersd tells its operators what it does: the
// zerolog logger and the buffer that writes its lines in batches, one
// access line per request (with the per-request Call record the layers
// fill in), Prometheus metrics, the OpenTelemetry tracer provider and the
// server spans of both transports. docs/operations.md lists every field
// and metric.
package telemetry

import (
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"
)

// NewLogger returns a zerolog logger writing to w: JSON lines (format
// "json") or human-readable text ("console"), at the named level (debug,
// info, warn, error).
func NewLogger(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Nop(), fmt.Errorf("log format %q: want json or console", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}
