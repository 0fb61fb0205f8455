// Package postgres implements users.Store on PostgreSQL through a pgx v5
// connection pool, and migrates its schema with goose.
//
// Every user, key, operation, event and subscription belongs to a tenant
// (its tenant_id); the statements that read them name the tenant and check
// that it is live (usersql.LiveTenant), in the same statement.
//
// Reads are one statement and one round trip. CreateUser is one statement
// too in a live tenant without a limit of users: with an idempotency key,
// the key row, the user and its event are inserted by the same INSERT, so
// they commit or roll back together. A tenant with a limit (MaxUsers) is
// counted under a lock on its row, in a transaction; a tenant without one
// is never locked, so its creates never queue on one row. UpdateUser holds
// the row with SELECT … FOR UPDATE across two pipelined round trips, the
// second of which appends the event with the UPDATE; a deletion takes one
// more, which takes the user out of its groups. The changes of a group
// take turns on an advisory lock of the group and its row (groups.go).
//
// Every change appends its events to the outbox (the events table) in its
// own transaction; events.go explains the order in which ListEvents reads
// them, and why no reader misses one.
//
// CreateImport, ImportChunk and PurgeDeleted are explicit READ COMMITTED
// transactions or single statements. Races on the same request id or chunk
// resolve with INSERT … ON CONFLICT DO NOTHING, which waits for the other
// transaction instead of failing; an import's users go in with one
// INSERT … SELECT FROM unnest(…).
//
// When a context ends during a statement, pgx closes the connection and
// sends the server a cancel request, so the server stops the statement (or
// its wait for a row lock) too; the pool then dials a new connection.
package postgres
