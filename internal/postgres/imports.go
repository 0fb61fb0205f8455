package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Imports: users.ImportStore.

const (
	// insertOperation inserts nothing when the request id is taken: a
	// concurrent import of the same request id waits for the first
	// transaction and then inserts nothing.
	insertOperation = `INSERT INTO operations (tenant_id, id, request_id, fingerprint, total, chunks, create_time)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (tenant_id, request_id) DO NOTHING`

	// selectOperation reads an operation with one row per finished chunk
	// (or one row of NULL chunk columns); readOperation sums them.
	selectOperation = `SELECT o.tenant_id, o.id, o.request_id, o.fingerprint, o.total, o.chunks, o.create_time, o.kind,
	c.imported, c.failed, c.failures, c.finish_time
FROM operations o LEFT JOIN operation_chunks c ON c.operation_id = o.id
WHERE `

	// claimChunk records a chunk as begun, or does nothing when it is
	// recorded already. A concurrent run of the same chunk waits for the
	// first transaction: if that commits, it claims nothing.
	claimChunk = `INSERT INTO operation_chunks (operation_id, chunk, imported, failed, failures, finish_time)
VALUES ($1, $2, 0, 0, '[]', $3)
ON CONFLICT (operation_id, chunk) DO NOTHING`

	finishChunk = `UPDATE operation_chunks SET imported = $3, failed = $4, failures = $5, finish_time = $6
WHERE operation_id = $1 AND chunk = $2`

	// importUsers inserts a chunk's users into the tenant $11 in one
	// statement, in the order given. A row whose address or external id
	// belongs to a live user of the tenant, stored before or inserted
	// earlier by this statement, is skipped (and so would be one whose
	// fresh UUIDv7 id were in use); takenEmails tells which of the two
	// it was. RETURNING names the rows inserted.
	importUsers = `INSERT INTO users (tenant_id, id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision,
	` + usersql.WriteColumns + `)
SELECT $11::text, r.id, r.email, r.email_key, r.display_name, r.state, r.labels::jsonb, r.create_time, r.update_time, r.delete_time, r.revision,
	r.external_id, r.given_name, r.family_name, r.phone_number, r.email_verified, r.phone_verified, r.locale, r.time_zone,
	r.attributes::jsonb, r.search_key
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
	$7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::bigint[],
	$12::text[], $13::text[], $14::text[], $15::text[], $16::boolean[], $17::boolean[], $18::text[], $19::text[], $20::text[], $21::text[])
	WITH ORDINALITY AS r(id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision,
		external_id, given_name, family_name, phone_number, email_verified, phone_verified, locale, time_zone, attributes, search_key, n)
ORDER BY r.n
ON CONFLICT DO NOTHING
RETURNING id`

	// takenEmails returns which of the addresses ($2, email keys) belong
	// to live users of the tenant $1.
	takenEmails = "SELECT email_key FROM users WHERE tenant_id = $1 AND email_key = ANY($2) AND state <> 'DELETED'"

	// operationTenant reads the tenant of the operation $1.
	operationTenant = "SELECT tenant_id FROM operations WHERE id = $1"

	// dropUsers deletes the users with the ids $1.
	dropUsers = "DELETE FROM users WHERE id = ANY($1)"
)

// selectLiveOperation is the condition on selectOperation of the tenant's
// ($1) operation with the id ($2), while the tenant is live.
var selectLiveOperation = "o.tenant_id = $1 AND o.id = $2 AND " + usersql.LiveTenant("$1")

// CreateImport checks that the tenant is live, stores op and enqueues its
// chunks on the Store's Jobs, in one transaction; see users.ImportStore.
// It inserts first and reads the stored operation only when the request id
// is taken.
func (s *Store) CreateImport(ctx context.Context, op *users.Operation, key users.IdempotencyKey, chunks []users.ImportChunk) (_ *users.Operation, err error) {
	defer wrap(ctx, &err, "create import %s", op.ID)
	if s.jobs == nil {
		return nil, errNoJobs
	}
	id, err := uuid.Parse(op.ID)
	if err != nil {
		return nil, fmt.Errorf("id: %w", err)
	}
	fingerprint := key.Fingerprint
	if fingerprint == nil {
		fingerprint = []byte{} // nil would be NULL
	}
	// Each statement of a READ COMMITTED transaction sees what committed
	// before it began, so once the insert has waited for a concurrent
	// import of the same request id, the read sees that import.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if err := liveTenant(ctx, tx, op.Tenant); err != nil {
		return nil, err
	}

	// The operation row may vanish between the two statements (if
	// operations expire); the next attempt then inserts.
	for range 3 {
		tag, err := tx.Exec(ctx, insertOperation, op.Tenant, pgUUID(id), key.RequestID, fingerprint, op.Total, op.Chunks, op.CreateTime)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 1 {
			if err := s.jobs.EnqueueImportTx(ctx, tx, chunks); err != nil {
				return nil, fmt.Errorf("enqueue: %w", err)
			}
			if err := tx.Commit(ctx); err != nil {
				return nil, err
			}
			created := users.Truncate(op.CreateTime)
			return &users.Operation{
				Tenant:     op.Tenant,
				ID:         op.ID,
				RequestID:  key.RequestID,
				Total:      op.Total,
				Chunks:     op.Chunks,
				CreateTime: created,
				UpdateTime: created,
			}, nil
		}
		got, stored, err := readOperation(ctx, tx, "o.tenant_id = $1 AND o.request_id = $2", op.Tenant, key.RequestID)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("import request %s: %w", key.RequestID, err)
		}
		if !bytes.Equal(stored, fingerprint) {
			return nil, usersql.RequestIDReused()
		}
		return got, nil // the rollback ends a transaction that wrote nothing
	}
	return nil, fmt.Errorf("import request %s: operation keeps disappearing", key.RequestID)
}

// GetOperation reads the tenant's operation and its finished chunks in one
// statement; see users.ImportStore.
func (s *Store) GetOperation(ctx context.Context, tenant, id string) (_ *users.Operation, err error) {
	defer wrap(ctx, &err, "operation %s", id)
	uid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	var op *users.Operation
	err = s.do(ctx, read, func(c *pgxpool.Conn) (err error) {
		op, _, err = readOperation(ctx, c, selectLiveOperation, tenant, uid)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return op, err
}

// readOperation reads the operation that matches where (a condition on o
// with the parameters args) and sums its finished chunks. It returns the
// operation and its fingerprint, or pgx.ErrNoRows.
func readOperation(ctx context.Context, q querier, where string, args ...any) (*users.Operation, []byte, error) {
	rows, err := q.Query(ctx, selectOperation+where, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var (
		op          *users.Operation
		fingerprint []byte
	)
	for rows.Next() {
		var (
			id               pgtype.UUID
			o                users.Operation
			fp, failures     []byte
			kind             string
			imported, failed pgtype.Int4
			finish           pgtype.Timestamptz
		)
		err := rows.Scan(&o.Tenant, &id, &o.RequestID, &fp, &o.Total, &o.Chunks, &o.CreateTime, &kind,
			&imported, &failed, &failures, &finish)
		if err != nil {
			return nil, nil, err
		}
		if op == nil {
			o.ID = uuid.UUID(id.Bytes).String()
			o.CreateTime = o.CreateTime.UTC()
			if err := usersql.SetOperationKind(&o, kind); err != nil {
				return nil, nil, err
			}
			op, fingerprint = &o, fp
		}
		if !finish.Valid {
			continue // no chunk has finished
		}
		if err := usersql.AddChunk(op, int(imported.Int32), int(failed.Int32), failures, finish.Time.UTC()); err != nil {
			return nil, nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	if op == nil {
		return nil, nil, pgx.ErrNoRows
	}
	usersql.FinishProgress(op)
	return op, fingerprint, nil
}

// ImportChunk claims the chunk, reads the operation's tenant and its
// limit of users, inserts the chunk's valid users in one statement and
// records the outcome, in one transaction; see users.ImportStore. For a
// tenant with a limit it holds the tenant's row from the count to the
// commit (tenantQuota); the rows the insert took past the limit are
// deleted again before the commit, and fail with users.ReasonQuota, as do
// the rows after them.
func (s *Store) ImportChunk(ctx context.Context, opID string, chunk int, valid []users.ImportedUser, failed []users.RowFailure) (err error) {
	defer wrap(ctx, &err, "operation %s chunk %s", opID, strconv.Itoa(chunk))
	uid, ok := parseID(opID)
	if !ok {
		return users.ErrNotFound
	}
	ids, args, err := importArgs(valid)
	profiles := importProfiles(valid)
	if err != nil {
		return err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)

	tag, err := tx.Exec(ctx, claimChunk, uid, chunk, time.Now())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
		return users.ErrNotFound
	}
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return nil // a job that ran again
	}
	var tenant string
	if err := tx.QueryRow(ctx, operationTenant, uid).Scan(&tenant); err != nil {
		return err
	}
	quota, err := tenantQuota(ctx, tx, tenant)
	reason := users.ReasonQuota
	if errors.Is(err, users.ErrNotFound) {
		// The tenant was deleted since the import began: its users are
		// out of reach, and the rows are not imported.
		quota, err, reason = usersql.Quota{Tenant: tenant, Max: 1, Live: 1}, nil, users.ReasonTenantDeleted
	}
	if err != nil {
		return err
	}
	left := quota.Left()

	inserted := make(map[[16]byte]bool, len(valid))
	if len(valid) > 0 && left != 0 {
		rows, err := tx.Query(ctx, importUsers, append(append(args, tenant), profiles...)...)
		if err != nil {
			return fmt.Errorf("import users: %w", err)
		}
		var id pgtype.UUID
		_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
			inserted[id.Bytes] = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("import users: %w", err)
		}
	}
	taken, err := skippedEmails(ctx, tx, tenant, valid, ids, inserted)
	if err != nil {
		return err
	}
	var (
		imported int
		failures = slices.Clone(failed)
		evs      []users.Event
		over     []pgtype.UUID // inserted past the limit
	)
	for i, v := range valid {
		switch {
		case left >= 0 && int64(imported) == left:
			if inserted[ids[i].Bytes] {
				over = append(over, ids[i])
			}
			failures = append(failures, users.RowFailure{Index: v.Index, Reason: reason})
		case inserted[ids[i].Bytes]:
			imported++
			v.User.Tenant = tenant
			evs = append(evs, users.CreatedEvent(ctx, v.User))
		case taken[users.EmailKey(v.User.Email)] || v.User.ExternalID == "":
			failures = append(failures, users.RowFailure{Index: v.Index, Reason: users.ReasonEmailTaken})
		default:
			failures = append(failures, users.RowFailure{Index: v.Index, Reason: users.ReasonExternalIDTaken})
		}
	}
	if len(over) > 0 {
		if _, err := tx.Exec(ctx, dropUsers, over); err != nil {
			return fmt.Errorf("import users past the limit: %w", err)
		}
	}
	if err := appendEvents(ctx, tx, evs); err != nil {
		return err
	}
	usersql.SortFailures(failures)
	encoded, err := usersql.EncodeFailures(failures)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, finishChunk, uid, chunk, imported, len(failures), encoded, time.Now())
	if err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	return nil
}

// liveTenant returns users.ErrNotFound, read on q, when the tenant is
// deleted or missing.
func liveTenant(ctx context.Context, q rowQuerier, tenant string) error {
	var maxUsers int64
	err := q.QueryRow(ctx, tenantLimit, tenant).Scan(&maxUsers)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("tenant %s: %w", tenant, users.ErrNotFound)
	}
	return err
}

// skippedEmails returns, of the addresses of the rows importUsers skipped
// that have an external id, those that are taken: the other rows were
// skipped for their external id.
func skippedEmails(ctx context.Context, tx pgx.Tx, tenant string, valid []users.ImportedUser, ids []pgtype.UUID, inserted map[[16]byte]bool) (map[string]bool, error) {
	var keys []string
	for i, v := range valid {
		if !inserted[ids[i].Bytes] && v.User.ExternalID != "" {
			keys = append(keys, users.EmailKey(v.User.Email))
		}
	}
	taken := map[string]bool{}
	if len(keys) == 0 {
		return taken, nil
	}
	rows, err := tx.Query(ctx, takenEmails, tenant, keys)
	if err != nil {
		return nil, fmt.Errorf("import users: %w", err)
	}
	var key string
	_, err = pgx.ForEachRow(rows, []any{&key}, func() error {
		taken[key] = true
		return nil
	})
	return taken, err
}

// importProfiles returns the arguments $12…$21 of importUsers: one array
// per column of usersql.WriteColumns.
func importProfiles(valid []users.ImportedUser) []any {
	n := len(valid)
	var (
		ext                                        = make([]*string, n)
		given, family, phone, locale, tz, attrs, k = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ev, pv = make([]bool, n), make([]bool, n)
	)
	for i, v := range valid {
		u := v.User
		if u.ExternalID != "" {
			ext[i] = &u.ExternalID
		}
		given[i], family[i], phone[i], locale[i], tz[i] = u.GivenName, u.FamilyName, u.PhoneNumber, u.Locale, u.TimeZone
		ev[i], pv[i] = u.EmailVerified, u.PhoneVerified
		attrs[i] = "{}"
		if u.Attributes != nil {
			attrs[i] = string(u.Attributes)
		}
		k[i] = users.SearchKey(u)
	}
	return []any{ext, given, family, phone, ev, pv, locale, tz, attrs, k}
}

// importArgs returns the arguments $1…$10 of importUsers, one array per
// column, and the first of them: the users' ids. The tenant ($11) is the
// caller's to add.
func importArgs(valid []users.ImportedUser) ([]pgtype.UUID, []any, error) {
	n := len(valid)
	var (
		ids         = make([]pgtype.UUID, n)
		emails      = make([]string, n)
		keys        = make([]string, n)
		names       = make([]string, n)
		states      = make([]string, n)
		labels      = make([]string, n)
		createTimes = make([]time.Time, n)
		updateTimes = make([]time.Time, n)
		deleteTimes = make([]pgtype.Timestamptz, n)
		revisions   = make([]int64, n)
	)
	for i, v := range valid {
		u := v.User
		id, err := uuid.Parse(u.ID)
		if err != nil {
			return nil, nil, fmt.Errorf("user %s: id: %w", u.ID, err)
		}
		l, err := labelsJSON(u)
		if err != nil {
			return nil, nil, err
		}
		ids[i] = pgUUID(id)
		emails[i], keys[i], names[i] = u.Email, users.EmailKey(u.Email), u.DisplayName
		states[i], labels[i] = u.State.String(), l
		createTimes[i], updateTimes[i], deleteTimes[i] = u.CreateTime, u.UpdateTime, nullTime(u.DeleteTime)
		revisions[i] = u.Revision
	}
	return ids, []any{ids, emails, keys, names, states, labels, createTimes, updateTimes, deleteTimes, revisions}, nil
}
