package users

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Limits of a bulk import.
const (
	// MaxImportUsers is the most users one ImportUsers request may carry.
	MaxImportUsers = 10000
	// DefaultImportChunkSize is how many rows one import job handles.
	DefaultImportChunkSize = 500
	// DefaultDeletedRetention is how long a soft-deleted user is kept
	// before the purge job removes it for good.
	DefaultDeletedRetention = 30 * 24 * time.Hour
	// purgeBatch bounds how many users one purge transaction removes.
	purgeBatch = 1000
)

// Operation is a long-running operation (AIP-151): a bulk import, or a
// schema check (Kind; see SchemaCheck). Its progress is derived from the
// chunks that have finished.
type Operation struct {
	// Kind is what the operation does; the zero value is an import.
	Kind OperationKind
	// Tenant is the id of the tenant the import inserts users into.
	Tenant string
	ID     string
	// RequestID is the import's; "" for a schema check.
	RequestID string
	// Total is the number of rows in the import; Chunks the number of jobs
	// they were split into, ChunksDone how many of those have finished.
	Total      int
	Chunks     int
	ChunksDone int
	// Imported and Failed count the rows of the finished chunks.
	Imported int
	Failed   int
	// Failures lists each failed row of the finished chunks, by index.
	Failures   []RowFailure
	CreateTime time.Time
	// UpdateTime is when the last chunk finished, or CreateTime.
	UpdateTime time.Time
}

// Done reports whether every chunk has finished.
func (o *Operation) Done() bool { return o.ChunksDone >= o.Chunks }

// ReasonEmailTaken is the failure of an imported row whose address belongs
// to a user that is not deleted: stored before, or earlier in the import.
const ReasonEmailTaken = "email: already in use by another user"

// ReasonExternalIDTaken is the failure of an imported row whose external
// id belongs to a user of the tenant that is not deleted.
const ReasonExternalIDTaken = "external_id: already in use by another user"

// ReasonQuota is the failure of an imported row that would take its tenant
// past its limit of users (TenantSettings.MaxUsers).
const ReasonQuota = "tenant: at its limit of users (settings.max_users)"

// ReasonTenantDeleted is the failure of an imported row whose tenant was
// deleted while the import ran.
const ReasonTenantDeleted = "tenant: deleted"

// RowFailure says why one row of an import was not imported.
type RowFailure struct {
	Index  int    // position of the row in the request
	Reason string // what was wrong with it
}

// ImportRow is one user to import: the fields a CreateUser caller sets.
type ImportRow struct {
	Email       string
	DisplayName string
	State       State
	Labels      map[string]string
	Profile     Profile
	// Reject, when set, is why the API edge already refused the row; the
	// import records it as the row's failure.
	Reject string
}

// user returns the row as the user a CreateUser caller would pass.
func (r *ImportRow) user() *User {
	return &User{Email: r.Email, DisplayName: r.DisplayName, State: r.State, Labels: r.Labels, Profile: r.Profile}
}

// ImportChunk is the share of an import that one job handles: Rows are the
// request's rows First, First+1, ….
type ImportChunk struct {
	// Tenant is the operation's tenant, whose attribute schema the rows
	// are checked against; "" in the jobs enqueued before schemas, whose
	// rows are not.
	Tenant      string
	OperationID string
	Chunk       int
	First       int
	Rows        []ImportRow
}

// ImportedUser is a valid row of a chunk, ready to insert.
type ImportedUser struct {
	Index int
	User  *User
}

// ImportRequest is the input of Import.
type ImportRequest struct {
	// Tenant is the tenant to import into; "" is DefaultTenant.
	Tenant string
	Rows   []ImportRow
	// RequestID is required: replaying it returns the same operation.
	RequestID string
}

// Import starts a bulk import and returns its operation at once; jobs
// enqueued in the same transaction do the work, ChunkSize rows each.
func (s *Service) Import(ctx context.Context, req ImportRequest) (*Operation, error) {
	tenant, err := s.oneTenant(ctx, "parent", req.Tenant)
	if err != nil {
		return nil, err
	}
	var vs violations
	switch n := len(req.Rows); {
	case n == 0:
		vs.add("users", "at least one user is required")
	case n > MaxImportUsers:
		vs.add("users", fmt.Sprintf("%d users, more than %d", n, MaxImportUsers))
	}
	if req.RequestID == "" {
		vs.add("request_id", "required: it makes the import safe to retry")
	}
	validateRequestID(&vs, req.RequestID)
	if err := vs.err(); err != nil {
		return nil, err
	}
	size := s.chunkSize
	now := s.clock()
	op := &Operation{
		Tenant:     tenant,
		ID:         NewID(),
		RequestID:  req.RequestID,
		Total:      len(req.Rows),
		Chunks:     (len(req.Rows) + size - 1) / size,
		CreateTime: now,
		UpdateTime: now,
	}
	key := IdempotencyKey{RequestID: req.RequestID, Fingerprint: importFingerprint(req.Rows)}
	rows := make([]ImportRow, len(req.Rows))
	for i, r := range req.Rows {
		rows[i] = admitRow(r)
	}
	chunks := make([]ImportChunk, 0, op.Chunks)
	for first := 0; first < len(rows); first += size {
		chunks = append(chunks, ImportChunk{
			Tenant:      tenant,
			OperationID: op.ID,
			Chunk:       len(chunks),
			First:       first,
			Rows:        rows[first:min(first+size, len(rows))],
		})
	}
	return s.store.CreateImport(ctx, op, key, chunks)
}

// admitRow returns a row as the import's jobs store it. A row that the API
// edge rejected, or whose fields break the rules of CreateUser, keeps only
// its reason: its fields are never stored, so a value that no store may
// hold (a NUL, which Postgres text and jsonb refuse) fails its row, not the
// import. ImportChunk validates the rows again when it runs.
func admitRow(r ImportRow) ImportRow {
	if r.Reject == "" {
		u := r.user()
		_, err := checkNewUser(u, "")
		if err == nil {
			r.Profile = u.Profile // in canonical form
			return r
		}
		r.Reject = rowReason(err)
	}
	return ImportRow{Reject: storableText(r.Reject)}
}

// importFingerprint identifies an import request by its rows.
func importFingerprint(rows []ImportRow) []byte {
	h := sha256.New()
	for _, r := range rows {
		h.Write(fingerprint(r.user()))
		h.Write(binary.AppendUvarint(nil, uint64(len(r.Reject))))
		h.Write([]byte(r.Reject))
	}
	return h.Sum(nil)
}

// ImportChunk imports one chunk: it validates each row, and inserts the
// valid ones and records the chunk's outcome in one transaction. It is
// idempotent: a chunk that has finished is not imported again, so a job
// that runs twice imports each row once.
func (s *Service) ImportChunk(ctx context.Context, c ImportChunk) error {
	now := s.clock()
	var valid []ImportedUser
	var failed []RowFailure
	for i, r := range c.Rows {
		index := c.First + i
		if r.Reject != "" {
			failed = append(failed, RowFailure{Index: index, Reason: storableText(r.Reject)})
			continue
		}
		u, err := newUser(r.user(), "", now)
		if err == nil && c.Tenant != "" {
			err = s.checkAttributes(ctx, c.Tenant, u.Attributes)
		}
		if err != nil {
			failed = append(failed, RowFailure{Index: index, Reason: rowReason(err)})
			continue
		}
		valid = append(valid, ImportedUser{Index: index, User: u})
	}
	return s.store.ImportChunk(ctx, c.OperationID, c.Chunk, valid, failed)
}

// rowReason renders a validation error of one row without the "user."
// prefix of the field names: the row is the user.
func rowReason(err error) string {
	var ie *InvalidError
	if !errors.As(err, &ie) {
		return err.Error()
	}
	parts := make([]string, len(ie.Violations))
	for i, v := range ie.Violations {
		parts[i] = strings.TrimPrefix(v.Field, "user.") + ": " + v.Description
	}
	return strings.Join(parts, "; ")
}

// GetOperation returns the tenant's operation with the id and its
// progress.
func (s *Service) GetOperation(ctx context.Context, tenant, id string) (*Operation, error) {
	tenant, err := s.oneTenant(ctx, "name", tenant)
	if err != nil {
		return nil, err
	}
	id, err = checkID("id", id)
	if err != nil {
		return nil, err
	}
	return s.store.GetOperation(ctx, tenant, id)
}

// PurgeDeleted hard-deletes the users that were soft-deleted longer ago than
// the retention, in batches, and returns how many it removed.
func (s *Service) PurgeDeleted(ctx context.Context) (int, error) {
	before := s.clock().Add(-s.retention)
	total := 0
	for {
		n, err := s.store.PurgeDeleted(ctx, before, purgeBatch)
		total += n
		if err != nil || n < purgeBatch {
			return total, err
		}
	}
}
