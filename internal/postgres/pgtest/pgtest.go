// Package pgtest gives each Postgres test a database of its own on the
// server named by USERSD_TEST_POSTGRES_URL.
//
// Without that variable the tests skip, unless CI=true: CI must run them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/postgres"
)

// EnvURL is the environment variable that holds the connection string of
// the test server. Its user must be allowed to create databases.
const EnvURL = "USERSD_TEST_POSTGRES_URL"

// Prefix starts the name of every database NewDatabase creates.
const Prefix = "usersd_test_"

// NewDatabase creates a new empty database, named Prefix and random hex
// digits, and returns its connection string. The database is dropped WITH
// (FORCE) when the test ends, after the cleanups registered later (such as
// closing a pool on it). The test skips when USERSD_TEST_POSTGRES_URL is not
// set, and fails instead when CI=true.
func NewDatabase(t testing.TB) string {
	t.Helper()
	server := serverURL(t)
	name := Prefix + randomHex()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exec(ctx, server, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := exec(ctx, server, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(server, name)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvURL, err)
	}
	return dsn
}

// NewMigratedDatabase is NewDatabase with the schema migrated by
// postgres.Migrate. Creating and migrating takes about 100 ms, so there is
// no template database to share and clean up.
func NewMigratedDatabase(t testing.TB) string {
	t.Helper()
	dsn := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// serverURL returns the server's connection string, or ends the test.
func serverURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(EnvURL + " is not set; CI must run the Postgres tests")
	}
	t.Skip("set " + EnvURL + " to run the Postgres tests")
	return ""
}

// exec runs one statement on its own connection to the server.
func exec(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns dsn with its database replaced by name. dsn is a
// postgres:// URL or keyword/value pairs.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", err
		}
		u.Path, u.RawPath = "/"+name, ""
		return u.String(), nil
	}
	// In keyword/value form the last setting of a keyword wins.
	return dsn + " dbname=" + name, nil
}

// randomHex returns 16 random hex digits.
func randomHex() string {
	var b [8]byte
	rand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}
