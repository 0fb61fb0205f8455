package userstest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/users"
)

// ImportStore is what the import tests use: the imports, the users they
// insert, and the tenants they insert them into.
type ImportStore interface {
	users.ImportStore
	users.UserStore
	users.TenantStore
}

// TestImportStore is the part of the suite for users.ImportStore.
// newStore must return an empty, migrated store that lives until the test
// ends, made with a fake job queue that forwards what CreateImport
// enqueues to the returned Jobs.
func TestImportStore(t *testing.T, newStore func(t *testing.T) (ImportStore, *Jobs)) {
	run(t, newStore, []test[ImportStore]{
		{"ImportCreate", testImportCreate},
		{"ImportReplay", testImportReplay},
		{"ImportEnqueueFails", testImportEnqueueFails},
		{"ImportConcurrent", testImportConcurrent},
		{"OperationProgress", storeOnly(testOperationProgress)},
		{"OperationNotFound", storeOnly(testOperationNotFound)},
		{"ImportChunkUsers", storeOnly(testImportChunkUsers)},
		{"ImportChunkEmailTaken", storeOnly(testImportChunkEmailTaken)},
		{"ImportChunkTwice", storeOnly(testImportChunkTwice)},
		{"ImportFailuresSorted", storeOnly(testImportFailuresSorted)},
		{"ImportChunkFull", storeOnly(testImportChunkFull)},
		{"ImportChunkConcurrent", storeOnly(testImportChunkConcurrent)},
		// Tenants: tenants_isolation.go.
		{"TenantImportIsolation", testTenantImportIsolation},
		{"TenantImportMissingTenant", testTenantImportMissingTenant},
		{"TenantImportQuota", storeOnly(testTenantImportQuota)},
		{"TenantImportChunkDeletedTenant", storeOnly(testTenantImportChunkDeletedTenant)},
		{"TenantPurgeOperations", storeOnly(testTenantPurgeOperations)},
		// Schema checks: schemacheck.go.
		{"SchemaCheckStart", testSchemaCheckStart},
		{"SchemaCheckEnqueueFails", testSchemaCheckEnqueueFails},
		{"SchemaCheckRecord", storeOnly(testSchemaCheckRecord)},
	})
}

// Jobs records what a store under test enqueued: the chunks and
// deliveries its Queue (the fake job queue, which takes the store's own
// transaction type) was given, or it makes the Queue fail with the error
// Fail set. It is safe for concurrent use.
type Jobs struct {
	mu         sync.Mutex
	chunks     []users.ImportChunk
	deliveries []users.Delivery
	checks     []users.SchemaCheck // schemacheck.go
	err        error
}

// EnqueueDeliveries records deliveries, or records nothing and returns the
// error set by Fail.
func (j *Jobs) EnqueueDeliveries(deliveries []users.Delivery) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	j.deliveries = append(j.deliveries, deliveries...)
	return nil
}

// Deliveries returns the deliveries enqueued so far, in order.
func (j *Jobs) Deliveries() []users.Delivery {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.deliveries)
}

// Enqueue records chunks, or records nothing and returns the error set by
// Fail.
func (j *Jobs) Enqueue(chunks []users.ImportChunk) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	j.chunks = append(j.chunks, chunks...)
	return nil
}

// Fail makes Enqueue and EnqueueDeliveries return err from now on;
// Fail(nil) makes them succeed again.
func (j *Jobs) Fail(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.err = err
}

// Chunks returns the chunks enqueued so far, in order.
func (j *Jobs) Chunks() []users.ImportChunk {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.chunks)
}

// NewImport returns an operation into the default tenant that is not
// stored yet, with request id requestID and one chunk of each size, as
// users.Service.Import makes them. Its create time is an hour ago, so that
// chunks finish after it. The rows' addresses derive from requestID.
func NewImport(requestID string, sizes ...int) (*users.Operation, []users.ImportChunk) {
	now := users.Now().Add(-time.Hour)
	op := &users.Operation{
		Tenant:     users.DefaultTenant,
		ID:         uuid.Must(uuid.NewV7()).String(),
		RequestID:  requestID,
		Chunks:     len(sizes),
		CreateTime: now,
		UpdateTime: now,
	}
	chunks := make([]users.ImportChunk, len(sizes))
	for c, size := range sizes {
		chunk := users.ImportChunk{OperationID: op.ID, Chunk: c, First: op.Total}
		for range size {
			i := op.Total
			r := users.ImportRow{
				Email:       fmt.Sprintf("%s-%03d@Example.com", requestID, i),
				DisplayName: fmt.Sprintf("Imported %d", i),
				State:       users.StateActive,
			}
			if i%3 == 1 {
				r.State = users.StateSuspended
			}
			if i%2 == 0 {
				r.Labels = map[string]string{"row": fmt.Sprint(i)}
			}
			chunk.Rows = append(chunk.Rows, r)
			op.Total++
		}
		chunks[c] = chunk
	}
	return op, chunks
}

// ImportedUsers returns the rows of c as valid users, as
// users.Service.ImportChunk makes them: fresh ids, the current time,
// revision 1, and no tenant (the store inserts them into the operation's).
func ImportedUsers(c users.ImportChunk) []users.ImportedUser {
	now := users.Now()
	out := make([]users.ImportedUser, len(c.Rows))
	for i, r := range c.Rows {
		out[i] = users.ImportedUser{Index: c.First + i, User: &users.User{
			ID:          uuid.Must(uuid.NewV7()).String(),
			Email:       r.Email,
			DisplayName: r.DisplayName,
			State:       r.State,
			Labels:      r.Labels,
			CreateTime:  now,
			UpdateTime:  now,
			Revision:    1,
		}}
	}
	return out
}

func importKey(op *users.Operation, fingerprint string) users.IdempotencyKey {
	return users.IdempotencyKey{RequestID: op.RequestID, Fingerprint: []byte(fingerprint)}
}

// createImport stores a new operation with fingerprint "fp" and returns it
// with its chunks.
func createImport(t *testing.T, s users.ImportStore, requestID string, sizes ...int) (*users.Operation, []users.ImportChunk) {
	t.Helper()
	op, chunks := NewImport(requestID, sizes...)
	got, err := s.CreateImport(context.Background(), op, importKey(op, "fp"), chunks)
	if err != nil {
		t.Fatalf("CreateImport(%s) err = %v", requestID, err)
	}
	return got, chunks
}

func getOperation(t *testing.T, s users.ImportStore, id string) *users.Operation {
	t.Helper()
	op, err := s.GetOperation(context.Background(), users.DefaultTenant, id)
	if err != nil {
		t.Fatalf("GetOperation(%s) err = %v", id, err)
	}
	return op
}

func importChunk(t *testing.T, s users.ImportStore, opID string, chunk int, valid []users.ImportedUser, failed []users.RowFailure) {
	t.Helper()
	if err := s.ImportChunk(context.Background(), opID, chunk, valid, failed); err != nil {
		t.Fatalf("ImportChunk(%s, %d) err = %v", opID, chunk, err)
	}
}

// opDiff compares operations; an empty Failures equals nil.
func opDiff(want, got *users.Operation) string {
	return cmp.Diff(want, got, cmpopts.EquateEmpty())
}

func testImportCreate(t *testing.T, s ImportStore, jobs *Jobs) {
	ctx := context.Background()
	op, chunks := NewImport("req-create", 3, 3, 1)
	got, err := s.CreateImport(ctx, op, importKey(op, "fp"), chunks)
	if err != nil {
		t.Fatalf("CreateImport err = %v", err)
	}
	want := &users.Operation{
		Tenant:     users.DefaultTenant,
		ID:         op.ID,
		RequestID:  "req-create",
		Total:      7,
		Chunks:     3,
		CreateTime: op.CreateTime,
		UpdateTime: op.CreateTime,
	}
	if diff := opDiff(want, got); diff != "" {
		t.Errorf("CreateImport returned (-want +got):\n%s", diff)
	}
	if diff := opDiff(want, getOperation(t, s, op.ID)); diff != "" {
		t.Errorf("GetOperation (-want +got):\n%s", diff)
	}
	if got.Done() {
		t.Error("a new import is done")
	}
	if diff := cmp.Diff(chunks, jobs.Chunks()); diff != "" {
		t.Errorf("chunks enqueued (-want +got):\n%s", diff)
	}
	if n := countAll(t, s); n != 0 {
		t.Errorf("CreateImport stored %d users, want none: the jobs import them", n)
	}
}

func testImportReplay(t *testing.T, s ImportStore, jobs *Jobs) {
	ctx := context.Background()
	op, chunks := createImport(t, s, "req-replay", 2, 2)
	importChunk(t, s, op.ID, 0, ImportedUsers(chunks[0]), nil)

	// The replay carries a fresh operation id and time, as a retried
	// request would, and gets the first operation with its progress now.
	retry, retryChunks := NewImport("req-replay", 2, 2)
	retry.CreateTime = retry.CreateTime.Add(time.Minute)
	got, err := s.CreateImport(ctx, retry, importKey(retry, "fp"), retryChunks)
	if err != nil {
		t.Fatalf("replayed CreateImport err = %v", err)
	}
	want := getOperation(t, s, op.ID)
	if want.ChunksDone != 1 || want.Imported != 2 {
		t.Errorf("GetOperation after one chunk = %+v, want 1 chunk and 2 users done", want)
	}
	if diff := opDiff(want, got); diff != "" {
		t.Errorf("replay returned (-want +got):\n%s", diff)
	}
	if n := len(jobs.Chunks()); n != len(chunks) {
		t.Errorf("%d chunks enqueued after the replay, want %d: a replay enqueues nothing", n, len(chunks))
	}

	// Another request under the same request id.
	other, otherChunks := NewImport("req-replay", 1)
	_, err = s.CreateImport(ctx, other, importKey(other, "other fp"), otherChunks)
	var inv *users.InvalidError
	if !errors.As(err, &inv) || inv.Reason != users.ReasonRequestIDReused ||
		len(inv.Violations) != 1 || inv.Violations[0].Field != "request_id" {
		t.Errorf("reused request id with another request: err = %v, want InvalidError %s on request_id", err, users.ReasonRequestIDReused)
	}
	for _, id := range []string{retry.ID, other.ID} {
		if _, err := s.GetOperation(ctx, users.DefaultTenant, id); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetOperation(%s) of a refused or replayed import err = %v, want ErrNotFound", id, err)
		}
	}
	if n := len(jobs.Chunks()); n != len(chunks) {
		t.Errorf("%d chunks enqueued, want %d", n, len(chunks))
	}
}

func testImportEnqueueFails(t *testing.T, s ImportStore, jobs *Jobs) {
	ctx := context.Background()
	boom := errors.New("queue unavailable")
	jobs.Fail(boom)
	op, chunks := NewImport("req-fail", 2, 1)
	if _, err := s.CreateImport(ctx, op, importKey(op, "fp"), chunks); !errors.Is(err, boom) {
		t.Fatalf("CreateImport with a failing queue err = %v, want %v", err, boom)
	}
	if _, err := s.GetOperation(ctx, users.DefaultTenant, op.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetOperation after a failed enqueue err = %v, want ErrNotFound", err)
	}

	// Nothing kept the request id: a corrected request under it creates
	// its operation.
	jobs.Fail(nil)
	again, againChunks := NewImport("req-fail", 3)
	got, err := s.CreateImport(ctx, again, importKey(again, "fp 2"), againChunks)
	if err != nil || got.ID != again.ID {
		t.Fatalf("CreateImport after the failure = %+v, %v; want operation %s", got, err, again.ID)
	}
	if diff := cmp.Diff(againChunks, jobs.Chunks()); diff != "" {
		t.Errorf("chunks enqueued (-want +got):\n%s", diff)
	}
}

func testImportConcurrent(t *testing.T, s ImportStore, jobs *Jobs) {
	id := sameID(t, 8, "CreateImport", "operation", func() (string, error) {
		op, chunks := NewImport("req-concurrent", 2, 2)
		got, err := s.CreateImport(context.Background(), op, importKey(op, "fp"), chunks)
		if err != nil {
			return "", err
		}
		return got.ID, nil
	})
	enqueued := jobs.Chunks()
	if len(enqueued) != 2 {
		t.Errorf("%d chunks enqueued, want the 2 of one import", len(enqueued))
	}
	for _, c := range enqueued {
		if c.OperationID != id {
			t.Errorf("chunk %d of operation %s enqueued, want only operation %s's", c.Chunk, c.OperationID, id)
		}
	}
	getOperation(t, s, id)
}

func testOperationProgress(t *testing.T, s ImportStore) {
	op, chunks := createImport(t, s, "req-progress", 2, 2, 1)
	want := &users.Operation{
		Tenant:     users.DefaultTenant,
		ID:         op.ID,
		RequestID:  op.RequestID,
		Total:      5,
		Chunks:     3,
		CreateTime: op.CreateTime,
		UpdateTime: op.CreateTime,
	}
	if diff := opDiff(want, getOperation(t, s, op.ID)); diff != "" {
		t.Errorf("before any chunk (-want +got):\n%s", diff)
	}

	// Chunk 1 first: row 2 was refused by the domain, row 3 imports.
	start := users.Now()
	importChunk(t, s, op.ID, 1, ImportedUsers(chunks[1])[1:], []users.RowFailure{{Index: 2, Reason: "display_name: required"}})
	end := users.Now()
	got := getOperation(t, s, op.ID)
	if got.UpdateTime.Before(start) || got.UpdateTime.After(end) {
		t.Errorf("UpdateTime after a chunk = %v, want when it finished, in [%v, %v]", got.UpdateTime, start, end)
	}
	want.ChunksDone, want.Imported, want.Failed = 1, 1, 1
	want.Failures = []users.RowFailure{{Index: 2, Reason: "display_name: required"}}
	want.UpdateTime = got.UpdateTime
	if diff := opDiff(want, got); diff != "" {
		t.Errorf("after chunk 1 (-want +got):\n%s", diff)
	}
	if got.Done() {
		t.Error("done after one chunk of three")
	}

	importChunk(t, s, op.ID, 0, ImportedUsers(chunks[0]), nil)
	importChunk(t, s, op.ID, 2, ImportedUsers(chunks[2]), nil)
	last := getOperation(t, s, op.ID)
	if last.UpdateTime.Before(got.UpdateTime) {
		t.Errorf("UpdateTime went back from %v to %v", got.UpdateTime, last.UpdateTime)
	}
	want.ChunksDone, want.Imported = 3, 4
	want.UpdateTime = last.UpdateTime
	if diff := opDiff(want, last); diff != "" {
		t.Errorf("after every chunk (-want +got):\n%s", diff)
	}
	if !last.Done() {
		t.Error("not done after every chunk")
	}
	if n := countAll(t, s); n != 4 {
		t.Errorf("users stored = %d, want 4", n)
	}
}

func testOperationNotFound(t *testing.T, s ImportStore) {
	ctx := context.Background()
	// An operation that was never stored, and one that exists, so that
	// the store is not simply empty.
	op, chunks := NewImport("req-missing", 2)
	createImport(t, s, "req-other", 1)
	for _, id := range []string{op.ID, "not-a-uuid"} {
		if _, err := s.GetOperation(ctx, users.DefaultTenant, id); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetOperation(%q) err = %v, want ErrNotFound", id, err)
		}
		valid := ImportedUsers(chunks[0])
		if err := s.ImportChunk(ctx, id, 0, valid, nil); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("ImportChunk(%q) err = %v, want ErrNotFound", id, err)
		}
		if _, err := s.GetUser(ctx, users.DefaultTenant, valid[0].User.ID); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("ImportChunk(%q) stored a user: GetUser err = %v", id, err)
		}
	}
}

func testImportChunkUsers(t *testing.T, s ImportStore) {
	ctx := context.Background()
	op, chunks := createImport(t, s, "req-users", 3)
	valid := ImportedUsers(chunks[0])
	valid[0].User.Labels = map[string]string{"team": "core", "tier": "gold"}
	importChunk(t, s, op.ID, 0, valid, nil)
	for _, v := range valid {
		got, err := s.GetUser(ctx, users.DefaultTenant, v.User.ID)
		if err != nil {
			t.Errorf("GetUser(row %d) err = %v", v.Index, err)
			continue
		}
		// The user is the operation's tenant's.
		want := v.User.Clone()
		want.Tenant = op.Tenant
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("row %d stored as (-want +got):\n%s", v.Index, diff)
		}
	}
	if n := countAll(t, s); n != 3 {
		t.Errorf("users stored = %d, want 3", n)
	}
	got := getOperation(t, s, op.ID)
	if got.Imported != 3 || got.Failed != 0 || len(got.Failures) != 0 || !got.Done() {
		t.Errorf("operation = %+v, want 3 imported, none failed, done", got)
	}
	// The imported users are ordinary users: their addresses are taken.
	dup := NewUser(1)
	dup.Email = valid[1].User.Email
	if _, err := s.CreateUser(ctx, dup, nil); !errors.Is(err, users.ErrEmailTaken) {
		t.Errorf("CreateUser with an imported address err = %v, want ErrEmailTaken", err)
	}
}

func testImportChunkEmailTaken(t *testing.T, s ImportStore) {
	ctx := context.Background()
	live := create(t, s, NewUser(1))
	gone := create(t, s, NewUser(2))
	if _, err := s.UpdateUser(ctx, users.DefaultTenant, gone.ID, softDelete); err != nil {
		t.Fatalf("UpdateUser(delete) err = %v", err)
	}
	op, chunks := createImport(t, s, "req-taken", 6)
	valid := ImportedUsers(chunks[0])
	valid[0].User.Email = strings.ToLower(live.Email) // a live user's, in another case
	valid[1].User.Email = "twin@example.com"          // twice in the chunk:
	valid[3].User.Email = "TWIN@example.com"          // the first row wins
	valid[2].User.Email = gone.Email                  // a deleted user's: free
	refused := users.RowFailure{Index: 4, Reason: "email: not an email address"}
	valid = slices.Delete(valid, 4, 5) // the domain refused row 4
	importChunk(t, s, op.ID, 0, valid, []users.RowFailure{refused})

	got := getOperation(t, s, op.ID)
	want := &users.Operation{
		Tenant:     users.DefaultTenant,
		ID:         op.ID,
		RequestID:  op.RequestID,
		Total:      6,
		Chunks:     1,
		ChunksDone: 1,
		Imported:   3,
		Failed:     3,
		Failures: []users.RowFailure{
			{Index: 0, Reason: users.ReasonEmailTaken},
			{Index: 3, Reason: users.ReasonEmailTaken},
			refused,
		},
		CreateTime: op.CreateTime,
		UpdateTime: got.UpdateTime,
	}
	if diff := opDiff(want, got); diff != "" {
		t.Errorf("operation (-want +got):\n%s", diff)
	}
	for _, v := range valid {
		_, err := s.GetUser(ctx, users.DefaultTenant, v.User.ID)
		stored := v.Index == 1 || v.Index == 2 || v.Index == 5
		if stored && err != nil {
			t.Errorf("row %d (%s): GetUser err = %v, want it imported", v.Index, v.User.Email, err)
		}
		if !stored && !errors.Is(err, users.ErrNotFound) {
			t.Errorf("row %d (%s): GetUser err = %v, want ErrNotFound: the address was taken", v.Index, v.User.Email, err)
		}
	}
	if got, err := s.GetUser(ctx, users.DefaultTenant, live.ID); err != nil || !cmp.Equal(live, got) {
		t.Errorf("the live user changed: %+v, %v; want %+v", got, err, live)
	}
	if n := countAll(t, s); n != 5 {
		t.Errorf("users stored = %d, want 5", n)
	}
}

func testImportChunkTwice(t *testing.T, s ImportStore) {
	ctx := context.Background()
	op, chunks := createImport(t, s, "req-twice", 3, 1)
	first := ImportedUsers(chunks[0])
	importChunk(t, s, op.ID, 0, first[:2], []users.RowFailure{{Index: 2, Reason: "display_name: required"}})
	want := getOperation(t, s, op.ID)

	// A job that runs again validates its rows again: fresh ids and times,
	// and here another outcome.
	second := ImportedUsers(chunks[0])
	if err := s.ImportChunk(ctx, op.ID, 0, second, nil); err != nil {
		t.Fatalf("ImportChunk again err = %v, want nil", err)
	}
	if diff := opDiff(want, getOperation(t, s, op.ID)); diff != "" {
		t.Errorf("operation changed by the second run (-first +second):\n%s", diff)
	}
	for _, v := range second {
		if _, err := s.GetUser(ctx, users.DefaultTenant, v.User.ID); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("the second run stored row %d: GetUser err = %v", v.Index, err)
		}
	}
	if n := countAll(t, s); n != 2 {
		t.Errorf("users stored = %d, want 2", n)
	}
	// The other chunk is still to do.
	importChunk(t, s, op.ID, 1, ImportedUsers(chunks[1]), nil)
	if got := getOperation(t, s, op.ID); got.ChunksDone != 2 || got.Imported != 3 {
		t.Errorf("after chunk 1: %+v, want 2 chunks and 3 users done", got)
	}
}

func testImportFailuresSorted(t *testing.T, s ImportStore) {
	taken := create(t, s, NewUser(1))
	op, chunks := createImport(t, s, "req-sorted", 3, 3)
	// Chunk 1 finishes first: row 3 has a stored user's address, the
	// domain refused row 5.
	c1 := ImportedUsers(chunks[1])
	c1[0].User.Email = taken.Email
	importChunk(t, s, op.ID, 1, c1[:2], []users.RowFailure{{Index: 5, Reason: "e"}})
	// Then chunk 0, whose refused rows come out of order.
	c0 := ImportedUsers(chunks[0])
	importChunk(t, s, op.ID, 0, c0[1:2], []users.RowFailure{{Index: 2, Reason: "c"}, {Index: 0, Reason: "a"}})

	got := getOperation(t, s, op.ID)
	want := []users.RowFailure{{Index: 0, Reason: "a"}, {Index: 2, Reason: "c"}, {Index: 3, Reason: users.ReasonEmailTaken}, {Index: 5, Reason: "e"}}
	if diff := cmp.Diff(want, got.Failures); diff != "" {
		t.Errorf("Failures (-want +got):\n%s", diff)
	}
	if got.Imported != 2 || got.Failed != 4 {
		t.Errorf("Imported, Failed = %d, %d; want 2, 4", got.Imported, got.Failed)
	}
}

// testImportChunkFull imports a chunk of the default size in which every
// seventh row repeats the address of the row before it.
func testImportChunkFull(t *testing.T, s ImportStore) {
	ctx := context.Background()
	op, chunks := createImport(t, s, "req-full", users.DefaultImportChunkSize)
	valid := ImportedUsers(chunks[0])
	var want []users.RowFailure
	for i := 7; i < len(valid); i += 7 {
		valid[i].User.Email = strings.ToUpper(valid[i-1].User.Email)
		want = append(want, users.RowFailure{Index: i, Reason: users.ReasonEmailTaken})
	}
	importChunk(t, s, op.ID, 0, valid, nil)
	got := getOperation(t, s, op.ID)
	if diff := cmp.Diff(want, got.Failures); diff != "" {
		t.Errorf("Failures (-want +got):\n%s", diff)
	}
	if wantN := len(valid) - len(want); got.Imported != wantN || got.Failed != len(want) {
		t.Errorf("Imported, Failed = %d, %d; want %d, %d", got.Imported, got.Failed, wantN, len(want))
	}
	// The earlier of two rows with one address is the one imported.
	for _, i := range []int{6, 7, len(valid) - 1} {
		_, err := s.GetUser(ctx, users.DefaultTenant, valid[i].User.ID)
		if imported := i%7 != 0; imported != (err == nil) {
			t.Errorf("row %d: GetUser err = %v, imported = %v", i, err, imported)
		}
	}
	if n := countAll(t, s); n != got.Imported {
		t.Errorf("users stored = %d, want %d", n, got.Imported)
	}
}

// testImportChunkConcurrent runs one chunk on several workers at once, as
// an at-least-once queue may: its rows are imported once, and no run fails.
func testImportChunkConcurrent(t *testing.T, s ImportStore) {
	const n = 6
	op, chunks := createImport(t, s, "req-chunk-concurrent", 20)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.ImportChunk(context.Background(), op.ID, 0, ImportedUsers(chunks[0]), nil)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("ImportChunk #%d err = %v", i, err)
		}
	}
	got := getOperation(t, s, op.ID)
	if got.ChunksDone != 1 || got.Imported != 20 || got.Failed != 0 {
		t.Errorf("operation = %+v, want 1 chunk done, 20 imported, none failed", got)
	}
	if c := countAll(t, s); c != 20 {
		t.Errorf("users stored = %d, want 20", c)
	}
}
