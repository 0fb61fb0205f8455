package usersql

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/usersd/usersd/internal/users"
)

// rowFailure is the stored form of a users.RowFailure.
type rowFailure struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// EncodeFailures returns the failed rows of an import chunk as the JSON
// array both stores keep in operation_chunks.failures, "[]" when empty.
func EncodeFailures(fs []users.RowFailure) (string, error) {
	out := make([]rowFailure, len(fs))
	for i, f := range fs {
		out[i] = rowFailure(f)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("failures: %w", err)
	}
	return string(b), nil
}

// DecodeFailures reads an array that EncodeFailures wrote.
func DecodeFailures(b []byte) ([]users.RowFailure, error) {
	var in []rowFailure
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("stored failures: %w", err)
	}
	out := make([]users.RowFailure, len(in))
	for i, f := range in {
		out[i] = users.RowFailure(f)
	}
	return out, nil
}

// SortFailures orders failures by row index.
func SortFailures(fs []users.RowFailure) {
	slices.SortStableFunc(fs, func(a, b users.RowFailure) int { return cmp.Compare(a.Index, b.Index) })
}

// AddChunk adds one finished chunk of op, as a store reads it from
// operation_chunks, to op's progress.
func AddChunk(op *users.Operation, imported, failed int, failures []byte, finish time.Time) error {
	fs, err := DecodeFailures(failures)
	if err != nil {
		return fmt.Errorf("operation %s: %w", op.ID, err)
	}
	op.ChunksDone++
	op.Imported += imported
	op.Failed += failed
	op.Failures = append(op.Failures, fs...)
	if finish.After(op.UpdateTime) {
		op.UpdateTime = finish
	}
	return nil
}

// FinishProgress completes op's progress once every chunk row was added:
// UpdateTime is the last chunk's finish time, or CreateTime, and the
// failures are sorted by row.
func FinishProgress(op *users.Operation) {
	if op.ChunksDone == 0 {
		op.UpdateTime = op.CreateTime
	}
	SortFailures(op.Failures)
}
