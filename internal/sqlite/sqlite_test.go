package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openDB opens a migrated database in a fresh directory, closed when the
// test ends, and returns it with its path.
func openDB(t testing.TB) (*sqlite.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%s) err = %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close err = %v", err)
		}
	})
	if err := sqlite.Migrate(context.Background(), db, nil); err != nil {
		t.Fatalf("Migrate err = %v", err)
	}
	return db, path
}

// newStore returns a Store on a new database, without a job queue.
func newStore(t testing.TB) *sqlite.Store {
	t.Helper()
	db, _ := openDB(t)
	return sqlite.NewStore(db)
}

// newStoreWithJobs returns a Store on a new database whose imports and
// deliveries enqueue on a fake queue (newQueue) that records them in the
// returned Jobs.
func newStoreWithJobs(t testing.TB) (*sqlite.Store, *userstest.Jobs) {
	t.Helper()
	db, _ := openDB(t)
	q := newQueue()
	return sqlite.NewStore(db, sqlite.WithJobs(q)), &q.Jobs
}

// newQueue returns a fake job queue that, like River, works within the
// store's transaction: it checks there that what its jobs refer to is
// stored (checkChunks, checkDeliveries) before recording them.
func newQueue() *userstest.Queue[*sql.Tx] {
	return &userstest.Queue[*sql.Tx]{CheckImport: checkChunks, CheckDeliveries: checkDeliveries}
}

// checkChunks checks, within the store's transaction, that the operation
// of each chunk is stored.
func checkChunks(ctx context.Context, tx *sql.Tx, chunks []users.ImportChunk) error {
	for _, c := range chunks {
		var n int
		err := tx.QueryRowContext(ctx, "SELECT count(*) FROM operations WHERE id = ?1", c.OperationID).Scan(&n)
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("operation %s of chunk %d is not in the enqueueing transaction", c.OperationID, c.Chunk)
		}
	}
	return nil
}

// checkDeliveries checks, within the store's transaction, that the event
// and the enabled subscription of each delivery exist.
func checkDeliveries(ctx context.Context, tx *sql.Tx, deliveries []users.Delivery) error {
	for _, d := range deliveries {
		var n int
		err := tx.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM events WHERE id = ?1) + "+
			"(SELECT count(*) FROM webhooks WHERE id = ?2 AND enabled)", d.EventID, d.WebhookID).Scan(&n)
		if err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("event %s or webhook %s of a delivery is not in the enqueueing transaction", d.EventID, d.WebhookID)
		}
	}
	return nil
}

func TestConformance(t *testing.T) {
	userstest.Run(t, func(t *testing.T) (users.Store, *userstest.Jobs) {
		s, jobs := newStoreWithJobs(t)
		return s, jobs
	})
}

func sqliteCode(err error) int {
	var serr *msqlite.Error
	if errors.As(err, &serr) {
		return serr.Code()
	}
	return 0
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open err = %v", err)
	}
	defer func() { db.Close() }() // db is reopened below

	pending, err := sqlite.MigrationsPending(ctx, db)
	if err != nil || !pending {
		t.Fatalf("MigrationsPending before Migrate = %v, %v; want true, nil", pending, err)
	}
	if err := sqlite.Migrate(ctx, db, nil); err != nil {
		t.Fatalf("Migrate err = %v", err)
	}
	pending, err = sqlite.MigrationsPending(ctx, db)
	if err != nil || pending {
		t.Fatalf("MigrationsPending after Migrate = %v, %v; want false, nil", pending, err)
	}
	schema := func() string {
		rows, err := sqlite.Reader(db).QueryContext(ctx,
			"SELECT type || ' ' || name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY 1")
		if err != nil {
			t.Fatalf("reading schema: %v", err)
		}
		defer rows.Close()
		var names []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			names = append(names, n)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		var versions int
		if err := sqlite.Reader(db).QueryRowContext(ctx, "SELECT count(*) FROM goose_db_version").Scan(&versions); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s; %d versions", strings.Join(names, ", "), versions)
	}
	first := schema()
	want := "index events_tenant_seq, index events_time, " +
		"index group_members_user_id_group_id, index groups_tenant_external_id, index groups_tenant_id, index groups_tenant_name_key_id, " +
		"index idempotency_keys_create_time, index idempotency_keys_user_id, " +
		"index users_deleted_delete_time, index users_tenant_create_time_id, index users_tenant_email_key_id, index users_tenant_email_key_live, " +
		"index users_tenant_external_id_live, index users_tenant_id_search, index webhook_attempts_webhook_id_time, " +
		"table event_sinks, table events, table goose_db_version, table group_members, table groups, " +
		"table idempotency_keys, table operation_chunks, table operations, " +
		"table tenants, table users, table users_search, table users_search_config, table users_search_data, table users_search_docsize, " +
		"table users_search_idx, table webhook_attempts, table webhooks, " +
		"trigger users_search_delete, trigger users_search_insert, trigger users_search_update; 12 versions"
	if first != want {
		t.Errorf("schema = %s, want %s", first, want)
	}
	if err := sqlite.Migrate(ctx, db, nil); err != nil {
		t.Fatalf("second Migrate err = %v", err)
	}
	if again := schema(); again != first {
		t.Errorf("second Migrate changed the schema: %s, want %s", again, first)
	}

	// The migration persists: a reopened database has nothing pending.
	if err := db.Close(); err != nil {
		t.Fatalf("Close err = %v", err)
	}
	db, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen err = %v", err)
	}
	if pending, err := sqlite.MigrationsPending(ctx, db); err != nil || pending {
		t.Errorf("MigrationsPending after reopen = %v, %v; want false, nil", pending, err)
	}
}

func TestPragmas(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	for _, pool := range []struct {
		name string
		db   *sql.DB
	}{{"writer", sqlite.Writer(db)}, {"reader", sqlite.Reader(db)}} {
		for _, p := range []struct{ pragma, want string }{
			{"journal_mode", "wal"},
			{"busy_timeout", "5000"},
			{"foreign_keys", "1"},
			{"synchronous", "1"}, // NORMAL
		} {
			var got string
			if err := pool.db.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got); err != nil {
				t.Errorf("%s: PRAGMA %s err = %v", pool.name, p.pragma, err)
				continue
			}
			if got != p.want {
				t.Errorf("%s: PRAGMA %s = %s, want %s", pool.name, p.pragma, got, p.want)
			}
		}
	}
	if got := sqlite.Writer(db).Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer MaxOpenConnections = %d, want 1", got)
	}
	if got := sqlite.Reader(db).Stats().MaxOpenConnections; got < 2 {
		t.Errorf("reader MaxOpenConnections = %d, want several", got)
	}
	_, err := sqlite.Reader(db).ExecContext(ctx, "DELETE FROM users")
	if code := sqliteCode(err); code&0xff != sqlite3.SQLITE_READONLY {
		t.Errorf("write on a reader: err = %v (code %d), want SQLITE_READONLY", err, code)
	}
}

func TestOpenPathNeedsEscaping(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a?b#c%20d.db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%q) err = %v", path, err)
	}
	defer db.Close()
	var file string
	if err := sqlite.Reader(db).QueryRow("SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		t.Fatal(err)
	}
	if file != path {
		t.Errorf("database file = %q, want %q", file, path)
	}
}

// otherConn returns a connection to the database file at path that is not
// the store's, as another process's would be, with busy_timeout 0: it
// fails at once where it would wait. It is closed when the test ends.
func otherConn(t *testing.T, path string) *sql.Conn {
	t.Helper()
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestWriterBeginsImmediate checks that a writer transaction holds the
// write lock from BEGIN: while UpdateUser's function runs, before the store
// has written anything, another connection cannot start writing.
func TestWriterBeginsImmediate(t *testing.T) {
	db, path := openDB(t)
	s := sqlite.NewStore(db)
	ctx := context.Background()
	u, err := s.CreateUser(ctx, userstest.NewUser(1), nil)
	if err != nil {
		t.Fatal(err)
	}

	conn := otherConn(t, path)

	_, err = s.UpdateUser(ctx, users.DefaultTenant, u.ID, func(*users.User) error {
		_, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE")
		if err == nil {
			conn.ExecContext(ctx, "ROLLBACK")
			t.Error("another connection began writing during UpdateUser: the store's transaction is not IMMEDIATE")
		} else if code := sqliteCode(err); code&0xff != sqlite3.SQLITE_BUSY {
			t.Errorf("BEGIN IMMEDIATE on another connection err = %v, want SQLITE_BUSY", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUser err = %v", err)
	}
	// Once the transaction ends, the lock is free.
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Errorf("BEGIN IMMEDIATE after UpdateUser err = %v", err)
	} else {
		conn.ExecContext(ctx, "ROLLBACK")
	}
}

func TestConcurrentUpdates(t *testing.T) {
	const goroutines, updates = 8, 50
	s := newStore(t)
	ctx := context.Background()
	u, err := s.CreateUser(ctx, userstest.NewUser(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range updates {
				_, err := s.UpdateUser(ctx, users.DefaultTenant, u.ID, func(x *users.User) error {
					x.DisplayName = fmt.Sprintf("g%d-%d", g, i)
					if x.Labels == nil {
						x.Labels = map[string]string{}
					}
					x.Labels[fmt.Sprintf("g%d", g)] = fmt.Sprint(i)
					return nil
				})
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Errorf("UpdateUser err = %v", err)
	}
	got, err := s.GetUser(ctx, users.DefaultTenant, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := u.Revision + goroutines*updates; got.Revision != want {
		t.Errorf("revision = %d, want %d", got.Revision, want)
	}
	// Every update saw the one before it: each goroutine's last label stands.
	for g := range goroutines {
		if v := got.Labels[fmt.Sprintf("g%d", g)]; v != fmt.Sprint(updates-1) {
			t.Errorf("label g%d = %q, want %d", g, v, updates-1)
		}
	}
}

func TestCreateRoundTrip(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	// A deleted user with labels, times carrying a zone and nanoseconds.
	loc := time.FixedZone("X", 3600)
	u := userstest.NewUser(1)
	u.State = users.StateDeleted
	u.Labels = map[string]string{"k": `va"l`, "ü": ""}
	u.CreateTime = time.Date(2026, 5, 6, 7, 8, 9, 123456789, loc)
	u.UpdateTime = u.CreateTime.Add(time.Hour)
	u.DeleteTime = u.UpdateTime
	created, err := s.CreateUser(ctx, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := u.Clone()
	want.CreateTime = users.Truncate(u.CreateTime)
	want.UpdateTime = users.Truncate(u.UpdateTime)
	want.DeleteTime = users.Truncate(u.DeleteTime)
	got, err := s.GetUser(ctx, users.DefaultTenant, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	for name, x := range map[string]*users.User{"CreateUser": created, "GetUser": got} {
		if diff := cmp.Diff(want, x); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
		if x.CreateTime.Location() != time.UTC || x.DeleteTime.Location() != time.UTC {
			t.Errorf("%s times are not UTC: %v, %v", name, x.CreateTime, x.DeleteTime)
		}
	}

	// An empty labels map reads back as nil, from either method.
	v := userstest.NewUser(2)
	v.Labels = map[string]string{}
	created, err = s.CreateUser(ctx, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err = s.GetUser(ctx, users.DefaultTenant, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if created.Labels != nil || got.Labels != nil || !got.DeleteTime.IsZero() {
		t.Errorf("empty labels read back as %#v and %#v, delete time %v; want nil, nil, zero", created.Labels, got.Labels, got.DeleteTime)
	}
}

func TestCreateRejectsUnknownState(t *testing.T) {
	s := newStore(t)
	u := userstest.NewUser(1)
	u.State = users.StateUnspecified
	_, err := s.CreateUser(context.Background(), u, nil)
	if code := sqliteCode(err); code != sqlite3.SQLITE_CONSTRAINT_CHECK {
		t.Errorf("CreateUser(state unspecified) err = %v, want a CHECK violation", err)
	}
}

// TestCreateSameIDFailsOfNoTakenKind: SQLite reports a primary key
// collision as the driver's error, of neither ErrEmailTaken nor ErrIDTaken
// (ids are generated; Postgres's store alone maps it to ErrIDTaken).
func TestCreateSameIDFailsOfNoTakenKind(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	u := userstest.NewUser(1)
	if _, err := s.CreateUser(ctx, u, nil); err != nil {
		t.Fatal(err)
	}
	v := userstest.NewUser(2)
	v.ID = u.ID
	_, err := s.CreateUser(ctx, v, nil)
	if err == nil || errors.Is(err, users.ErrEmailTaken) || errors.Is(err, users.ErrIDTaken) {
		t.Errorf("CreateUser(same id, other email) err = %v, want a primary key error that is neither ErrEmailTaken nor ErrIDTaken", err)
	}
}

func TestIdempotencyKeyRolledBackWithUser(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, err := s.CreateUser(ctx, userstest.NewUser(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	key := &users.IdempotencyKey{RequestID: "r", Fingerprint: []byte("f")}
	dup := userstest.NewUser(2)
	dup.Email = a.Email
	if _, err := s.CreateUser(ctx, dup, key); !errors.Is(err, users.ErrEmailTaken) {
		t.Fatalf("CreateUser(taken email) err = %v, want ErrEmailTaken", err)
	}
	// The failed create left no key behind: the same request can succeed now
	// that it carries a free address.
	free := userstest.NewUser(3)
	got, err := s.CreateUser(ctx, free, key)
	if err != nil || got.ID != free.ID {
		t.Errorf("CreateUser with the key of a failed create = %v, %v; want user %s", got, err, free.ID)
	}
	// A nil fingerprint is a fingerprint like any other.
	nilKey := &users.IdempotencyKey{RequestID: "n"}
	first, err := s.CreateUser(ctx, userstest.NewUser(4), nilKey)
	if err != nil {
		t.Fatalf("CreateUser(nil fingerprint) err = %v", err)
	}
	again, err := s.CreateUser(ctx, userstest.NewUser(4), nilKey)
	if err != nil || again.ID != first.ID {
		t.Errorf("replay with nil fingerprint = %v, %v; want user %s", again, err, first.ID)
	}
}

func TestBatchGetEdges(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	got, err := s.BatchGetUsers(ctx, users.DefaultTenant, nil)
	if err != nil || len(got) != 0 {
		t.Errorf("BatchGetUsers(nil) = %v, %v; want none", got, err)
	}
	var ids []string
	for i := range 1000 {
		u, err := s.CreateUser(ctx, userstest.NewUser(i), nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	got, err = s.BatchGetUsers(ctx, users.DefaultTenant, ids)
	if err != nil || len(got) != len(ids) {
		t.Errorf("BatchGetUsers(1000 ids) = %d users, %v; want 1000", len(got), err)
	}
	got, err = s.BatchGetUsers(ctx, users.DefaultTenant, []string{ids[7], ids[7]})
	if err != nil || len(got) != 1 || got[0].ID != ids[7] {
		t.Errorf("BatchGetUsers(duplicate id) = %v, %v; want user %s once", got, err, ids[7])
	}
}

func TestPing(t *testing.T) {
	s := newStore(t)
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping err = %v", err)
	}
}
