package telemetry

import (
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// LogBuffer gathers log lines and writes them to its writer in batches,
// so that a busy server makes one write system call per interval instead
// of one per request (docs/performance.md, "The request path, fourth
// pass"). A line waits at most the interval; a line at warn level or above
// is written at once, with every line before it, and so is a batch that
// reaches maxBatch bytes. Close writes what is left and makes later writes
// go straight through. A process that is killed loses at most one
// interval of lines below warn level.
//
// LogBuffer implements zerolog.LevelWriter; the logger must write each
// line in one call, as zerolog does.
type LogBuffer struct {
	out      io.Writer
	interval time.Duration

	flushing sync.Mutex // held while writing to out, taken before mu

	mu     sync.Mutex
	buf    []byte // the lines not yet written
	spare  []byte // the buffer of the last write, reused
	timer  *time.Timer
	armed  bool // the timer will write buf
	closed bool
}

// maxBatch is the size at which a batch is written without waiting for
// the interval.
const maxBatch = 64 << 10

// NewLogBuffer returns a LogBuffer writing to out at most interval after
// each line. With an interval of zero or less, lines go straight to out.
func NewLogBuffer(out io.Writer, interval time.Duration) *LogBuffer {
	b := &LogBuffer{out: out, interval: interval}
	if interval > 0 {
		b.timer = time.AfterFunc(time.Hour, func() { b.flush() })
		b.timer.Stop()
	} else {
		b.closed = true
	}
	return b
}

// Write adds the line p to the batch.
func (b *LogBuffer) Write(p []byte) (int, error) {
	return b.WriteLevel(zerolog.InfoLevel, p)
}

// WriteLevel adds the line p to the batch, and writes the batch at once
// when the line is at warn level or above or the batch is full.
func (b *LogBuffer) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.flushing.Lock()
		defer b.flushing.Unlock()
		return b.out.Write(p)
	}
	b.buf = append(b.buf, p...)
	now := level >= zerolog.WarnLevel && level != zerolog.NoLevel || len(b.buf) >= maxBatch
	if !now && !b.armed {
		b.armed = true
		b.timer.Reset(b.interval)
	}
	b.mu.Unlock()
	if now {
		if err := b.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush writes the lines gathered so far.
func (b *LogBuffer) flush() error {
	b.flushing.Lock()
	defer b.flushing.Unlock()
	b.mu.Lock()
	batch := b.buf
	b.buf, b.spare = b.spare[:0], nil
	if b.armed {
		b.armed = false
		b.timer.Stop()
	}
	b.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	_, err := b.out.Write(batch)
	if cap(batch) <= maxBatch*2 {
		b.mu.Lock()
		b.spare = batch[:0]
		b.mu.Unlock()
	}
	return err
}

// Close writes the lines not yet written; from then on, each line is
// written as it comes.
func (b *LogBuffer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	return b.flush()
}
