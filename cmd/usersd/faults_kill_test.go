package main

// Fault tests (make test-faults): kill -9 of serve mid-import with the
// default job settings. The jobs the killed process held run again within
// seconds, on its restart or on another replica, not after the lease.

import (
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/postgres/pgtest"
)

// recoveryLimit is how long after a restart, or after the kill of one of
// two replicas, the import must be done.
const recoveryLimit = 30 * time.Second

// skipUnlessKillFaults skips fault tests unless USERSD_TEST_FAULTS=1.
func skipUnlessKillFaults(t *testing.T) {
	t.Helper()
	if os.Getenv("USERSD_TEST_FAULTS") != "1" {
		t.Skip("fault test: set USERSD_TEST_FAULTS=1 (make test-faults)")
	}
}

// TestFaultsKill9Import kills serve with SIGKILL in the middle of an import,
// with the default job settings (lease, poll interval), on each store, and
// starts it again: within 30 s of the restart the import is done, every
// valid row exactly once, and every job the killed process held was rescued.
func TestFaultsKill9Import(t *testing.T) {
	skipUnlessKillFaults(t)
	bin := buildUsersd(t)
	t.Run("sqlite", func(t *testing.T) {
		killMidImport(t, bin, "sqlite:"+filepath.Join(t.TempDir(), "import.db"), recoveryLimit, "--import-chunk-size", "50")
	})
	t.Run("postgres", func(t *testing.T) {
		killMidImport(t, bin, pgtest.NewDatabase(t), recoveryLimit, "--import-chunk-size", "50")
	})
}

// TestFaultsKill9ImportReplicas runs two replicas on one Postgres database
// with the default job settings, and kills one with SIGKILL while both work
// on an import: with no restart, the survivor rescues the jobs the dead one
// held and finishes the import within 30 s, every valid row exactly once.
func TestFaultsKill9ImportReplicas(t *testing.T) {
	skipUnlessKillFaults(t)
	dbURL := pgtest.NewDatabase(t)
	bin := buildUsersd(t)
	args := []string{"--database-url", dbURL, "--import-chunk-size", "50"}
	victim := startUsersd(t, bin, args...)
	survivor := startUsersd(t, bin, args...)
	victimID := clientID(t, victim)

	c := newHTTPClient(t)
	ic := newImport(t, "kill-replica-import", "r", 10000)
	name := startImport(t, c, survivor, ic)
	atKill := waitImported(t, c, survivor, name, 1000)
	// Kill the victim while it runs import chunks: they are what must be
	// recovered. A chunk seen running can finish between the look and the
	// kill, so the victim is frozen (SIGSTOP) first and looked at again:
	// while frozen it can finish nothing, so what it holds then is what the
	// kill leaves. Once its last in-flight statements settled (50 ms), no
	// chunk held means it is thawed and watched again.
	ofVictim := "state = 'running' AND attempted_by[cardinality(attempted_by)] = '" + victimID + "'"
	chunksOfVictim := "SELECT id FROM river_job WHERE kind = 'import_users_chunk' AND " + ofVictim
	var chunksAtKill []int64
	for deadline := time.Now().Add(20 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatalf("the replica to kill held no import chunk while frozen for 20s\n%s", victim.output())
		}
		if countJobs(t, dbURL, "kind = 'import_users_chunk' AND "+ofVictim) == 0 {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if chunksAtKill = queryInts(t, dbURL, chunksOfVictim); len(chunksAtKill) > 0 {
			break
		}
		if err := victim.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.exited
	killedAt := time.Now()
	left := countJobs(t, dbURL, ofVictim)
	if got := queryInts(t, dbURL, chunksOfVictim); len(got) != len(chunksAtKill) {
		t.Fatalf("the frozen replica held import chunks %v, after the kill %v are left running", chunksAtKill, got)
	}

	back := recovered(t, dbURL, chunksAtKill, recoveryLimit)
	op := waitDone(t, c, survivor, name, recoveryLimit-time.Since(killedAt))
	done := time.Now()
	settled := waitNoPendingChunks(t, dbURL, killedAt, recoveryLimit, "the kill", survivor)
	checkImported(t, c, survivor, ic, op)
	if n := countJobs(t, dbURL, ofVictim); n != 0 {
		t.Errorf("%d jobs still marked running by the killed replica", n)
	}
	rescued, deadFor := rescuedJobs(survivor)
	if rescued != left {
		t.Errorf("the killed replica left %d jobs running, the survivor rescued %d\n%s", left, rescued, survivor.output())
	}
	e, _ := survivor.event(rescueMsg)
	t.Logf("killed one of two replicas with %d of %d rows imported and %d of its jobs running (%d import chunks); "+
		"the survivor rescued them %v after the kill (seen dead for %v), the chunks finished %v after the kill; "+
		"import done %v after the kill, no chunk pending %v after the kill",
		atKill.Metadata.Imported, ic.total, left, len(chunksAtKill), e.At.Sub(killedAt).Round(10*time.Millisecond), deadFor.Round(time.Millisecond),
		back.Sub(killedAt).Round(10*time.Millisecond), done.Sub(killedAt).Round(10*time.Millisecond), settled.Sub(killedAt).Round(10*time.Millisecond))

	// The survivor still serves: it shuts down cleanly.
	if err := call(t.Context(), c, survivor, "GET", "/v1/"+name, "", http.StatusOK, &op); err != nil {
		t.Fatal(err)
	}
	survivor.signal(t, syscall.SIGTERM)
	if code, _ := survivor.waitExit(t, time.Now().Add(testShutdownDelay+testShutdownTimeout+5*time.Second)); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0\n%s", code, survivor.output())
	}
}

// clientID is the River client ID p logged at start.
func clientID(t *testing.T, p *usersdProc) string {
	t.Helper()
	e := p.waitEvent(t, "River client started", 10*time.Second)
	id, _ := e.Fields["client_id"].(string)
	if id == "" {
		t.Fatalf("no client_id in %+v", e.Fields)
	}
	return id
}
