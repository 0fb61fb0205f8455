package userstest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/users"
)

// feed is what ProveFeed uses: the feed, and users whose changes append to
// it.
type feed interface {
	users.EventStore
	users.UserStore
}

// FeedProof configures ProveFeed.
type FeedProof struct {
	// Writers is how many goroutines change users at once; Duration how
	// long they do.
	Writers  int
	Duration time.Duration
	// Outbox returns the id of every event in the store's outbox table,
	// read directly, not through ListEvents.
	Outbox func(ctx context.Context) ([]string, error)
}

// FeedResult is what ProveFeed saw.
type FeedResult struct {
	Changes int // committed changes that should each append one event
	Failed  int // changes that failed and should append none
	Events  int // distinct events the consumer read
	Pages   int // ListEvents calls
	Resumes int // times the consumer dropped the rest of a page and resumed

	// Violations counts events out of order; violations describes the
	// first few.
	Violations int
	violations []string
}

func (r FeedResult) String() string {
	return fmt.Sprintf("%d changes committed (%d failed), %d events read in %d pages, %d resumes mid-page, %d out of order",
		r.Changes, r.Failed, r.Events, r.Pages, r.Resumes, r.Violations)
}

func (r *FeedResult) violate(format string, args ...any) {
	r.Violations++
	if len(r.violations) < 5 {
		r.violations = append(r.violations, fmt.Sprintf(format, args...))
	}
}

// errSkip is what a writer's update function returns to change nothing.
var errSkip = errors.New("skip")

// ProveFeed checks the contract of ListEvents under load: Writers
// goroutines create, update, delete, undelete and purge users, and make
// changes that fail, for Duration, while one consumer follows the feed in
// pages of random small sizes, and "disconnects" at random moments: it
// drops what is left of its page and resumes from the cursor of the last
// event it processed, as a consumer that crashed would. Once the writers
// have stopped and the consumer has drained the feed, the events it read
// must be exactly the events in the outbox table, each read once, in
// strictly increasing positions, each user's in the order of its changes;
// and the outbox must hold one event per committed change.
//
// s must be empty and used by nothing else while ProveFeed runs.
func ProveFeed(t *testing.T, s feed, cfg FeedProof) FeedResult {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var (
		changes, failed atomic.Int64
		writersDone     = make(chan struct{})
		wg              sync.WaitGroup
		errs            = make(chan error, cfg.Writers+1)
	)
	stop := time.Now().Add(cfg.Duration)
	for w := range cfg.Writers {
		wg.Go(func() {
			// Once the test is ending, a writer's cancelled call is no
			// failure of its own.
			if err := writeChanges(ctx, s, w, stop, &changes, &failed); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("writer %d: %w", w, err)
				cancel()
			}
		})
	}
	go func() {
		wg.Wait()
		close(writersDone)
	}()

	var res FeedResult
	seen := map[string]int{}
	consumeErr := consume(ctx, s, cfg, writersDone, seen, &res)
	cancel()
	<-writersDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if consumeErr != nil {
		t.Fatalf("consumer: %v", consumeErr)
	}

	res.Changes, res.Failed = int(changes.Load()), int(failed.Load())
	outbox, err := cfg.Outbox(context.Background())
	if err != nil {
		t.Fatalf("reading the outbox: %v", err)
	}
	res.Events = len(seen)
	inOutbox := make(map[string]bool, len(outbox))
	for _, id := range outbox {
		inOutbox[id] = true
	}
	var missed, extra, twice []string
	for _, id := range outbox {
		if seen[id] == 0 {
			missed = append(missed, id)
		}
	}
	for id, n := range seen {
		if !inOutbox[id] {
			extra = append(extra, id)
		}
		if n > 1 {
			twice = append(twice, fmt.Sprintf("%s ×%d", id, n))
		}
	}
	if len(missed) > 0 {
		t.Errorf("the consumer missed %d of the %d events in the outbox, e.g. %v", len(missed), len(outbox), missed[:min(5, len(missed))])
	}
	if len(extra) > 0 {
		t.Errorf("the consumer read %d events that are not in the outbox, e.g. %v", len(extra), extra[:min(5, len(extra))])
	}
	if len(twice) > 0 {
		slices.Sort(twice)
		t.Errorf("the consumer read %d events more than once, e.g. %v", len(twice), twice[:min(5, len(twice))])
	}
	if res.Violations > 0 {
		t.Errorf("%d events out of order, e.g.:\n%s", res.Violations, strings.Join(res.violations, "\n"))
	}
	if len(outbox) != res.Changes {
		t.Errorf("the outbox holds %d events, want one per committed change: %d", len(outbox), res.Changes)
	}
	if res.Changes == 0 || res.Resumes == 0 {
		t.Errorf("the run proved nothing: %+v", res)
	}
	return res
}

// consume follows the feed until the writers are done and it has read
// every event in the outbox, or a deadline passes after the writers are
// done. It counts the events it reads in seen.
func consume(ctx context.Context, s feed, cfg FeedProof, writersDone <-chan struct{}, seen map[string]int, res *FeedResult) error {
	var (
		cursor string // what a real consumer would persist
		last   users.EventPos
		want   = -1 // the size of the outbox, once the writers are done
		drain  time.Time
		// Per user, the revision of its last event, or -1 once purged:
		// a user's events come in the order of its changes.
		revisions = map[string]int64{}
	)
	for {
		if want < 0 {
			select {
			case <-writersDone:
				outbox, err := cfg.Outbox(context.Background())
				if err != nil {
					return err
				}
				want, drain = len(outbox), time.Now().Add(feedWait)
			default:
			}
		}
		// Resume from the persisted cursor, as after a reconnect.
		after, err := users.ParseEventCursor(cursor)
		if err != nil {
			return fmt.Errorf("cursor %q: %w", cursor, err)
		}
		if after != last {
			return fmt.Errorf("cursor %q reads back as %+v, want %+v", cursor, after, last)
		}
		// Every tenant's feed: the outbox holds them all (the writers'
		// users are all of the default tenant).
		evs, err := s.ListEvents(ctx, users.AllTenants, after, 1+rand.IntN(8))
		if err != nil {
			if ctx.Err() != nil {
				return nil // a writer failed; ProveFeed reports it
			}
			return err
		}
		res.Pages++
		for i, ev := range evs {
			if !last.Less(ev.Pos) {
				res.violate("event %s at %+v after %+v: the feed went back", ev.ID, ev.Pos, last)
			}
			seen[ev.ID]++
			last, cursor = ev.Pos, ev.Pos.Cursor()
			rev, known := revisions[ev.UserID]
			if ev.Tenant != users.DefaultTenant {
				res.violate("event %s (%s) of user %s names tenant %q, want %q", ev.ID, ev.Type, ev.UserID, ev.Tenant, users.DefaultTenant)
			}
			switch {
			case rev < 0:
				res.violate("event %s (%s) of user %s after its user.purged", ev.ID, ev.Type, ev.UserID)
			case ev.Type == users.EventPurged:
				revisions[ev.UserID] = -1
			case ev.User == nil || ev.User.ID != ev.UserID:
				res.violate("event %s (%s) of user %s has snapshot %+v", ev.ID, ev.Type, ev.UserID, ev.User)
			case !known && ev.Type != users.EventCreated:
				res.violate("event %s (%s) of user %s at revision %d before its user.created", ev.ID, ev.Type, ev.UserID, ev.User.Revision)
			case known && ev.User.Revision <= rev:
				res.violate("event %s (%s) of user %s at revision %d after revision %d", ev.ID, ev.Type, ev.UserID, ev.User.Revision, rev)
			}
			if ev.User != nil && ev.Type != users.EventPurged {
				revisions[ev.UserID] = max(rev, ev.User.Revision)
			}
			if i < len(evs)-1 && rand.IntN(10) == 0 {
				res.Resumes++
				break
			}
		}
		if rand.IntN(50) == 0 {
			// A slow moment: the writers get ahead, pages fill up.
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		}
		if len(evs) == 0 {
			switch {
			case want >= 0 && len(seen) >= want:
				return nil
			case want >= 0 && time.Now().After(drain):
				return nil // ProveFeed reports what is missing
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// writeChanges is one writer: until stop, it makes random changes to users
// of its own, and counts those that commit and those that fail. Writer 0
// also purges deleted users, anyone's, so others' changes may find their
// user gone.
func writeChanges(ctx context.Context, s feed, w int, stop time.Time, changes, failed *atomic.Int64) error {
	const maxUsers = 40
	var (
		mine []string // ids of this writer's users
		made int
	)
	// update applies fn to the user with the id and counts the outcome.
	// fn returns errSkip to change nothing.
	update := func(id string, fn func(*users.User) error) error {
		var changed bool
		_, err := s.UpdateUser(ctx, users.DefaultTenant, id, func(u *users.User) error {
			before := u.Clone()
			if err := fn(u); err != nil {
				return err
			}
			changed = len(users.ChangedPaths(before, u)) > 0
			u.UpdateTime = users.Now()
			return nil
		})
		switch {
		case err == nil:
			if changed {
				changes.Add(1)
			}
		case errors.Is(err, errSkip):
		case errors.Is(err, users.ErrNotFound): // purged by writer 0
			mine = slices.DeleteFunc(mine, func(x string) bool { return x == id })
		case errors.Is(err, users.ErrEmailTaken), errors.Is(err, users.ErrWrongState):
			failed.Add(1)
		default:
			return err
		}
		return nil
	}
	for time.Now().Before(stop) && ctx.Err() == nil {
		var id string
		if len(mine) > 0 {
			id = mine[rand.IntN(len(mine))]
		}
		switch op := rand.IntN(100); {
		case id == "" || op < 20 && len(mine) < maxUsers:
			u := NewUser(made)
			u.Email = fmt.Sprintf("w%d-%d@example.com", w, made)
			made++
			var key *users.IdempotencyKey
			if op%2 == 0 {
				key = &users.IdempotencyKey{RequestID: u.Email, Fingerprint: []byte("fp")}
			}
			got, err := s.CreateUser(ctx, u, key)
			if err != nil {
				return fmt.Errorf("create: %w", err)
			}
			mine = append(mine, got.ID)
			changes.Add(1)
			if key != nil { // a replay appends nothing
				if _, err := s.CreateUser(ctx, NewUser(made), key); err != nil {
					return fmt.Errorf("replay: %w", err)
				}
			}
		case op < 50:
			err := update(id, func(u *users.User) error {
				if u.State == users.StateDeleted {
					return errSkip
				}
				u.DisplayName = fmt.Sprintf("w%d %d", w, rand.IntN(1000))
				if op%3 == 0 {
					u.Labels = map[string]string{"n": fmt.Sprint(rand.IntN(3))}
				}
				return nil
			})
			if err != nil {
				return err
			}
		case op < 60:
			if err := update(id, func(u *users.User) error {
				if u.State == users.StateDeleted {
					return errSkip
				}
				u.State, u.DeleteTime = users.StateDeleted, users.Now().Add(-time.Hour)
				return nil
			}); err != nil {
				return err
			}
		case op < 68:
			if err := update(id, func(u *users.User) error {
				if u.State != users.StateDeleted {
					return errSkip
				}
				u.State, u.DeleteTime = users.StateActive, time.Time{}
				return nil
			}); err != nil {
				return err
			}
		case op < 76: // fails: rolls back
			if err := update(id, func(u *users.User) error {
				u.DisplayName = "never stored"
				return users.ErrWrongState
			}); err != nil {
				return err
			}
		case op < 82: // changes nothing an event lists: no event
			if err := update(id, func(*users.User) error { return nil }); err != nil {
				return err
			}
		case op < 90: // a taken address: fails
			u := NewUser(made)
			u.Email = fmt.Sprintf("w%d-%d@example.com", w, rand.IntN(made))
			if got, err := s.CreateUser(ctx, u, nil); err == nil {
				// The address was free (its user deleted or purged).
				mine = append(mine, got.ID)
				changes.Add(1)
			} else if errors.Is(err, users.ErrEmailTaken) {
				failed.Add(1)
			} else {
				return fmt.Errorf("create with a taken address: %w", err)
			}
		case w == 0 && op < 95:
			n, err := s.PurgeDeleted(ctx, users.Now(), 3)
			if err != nil {
				return fmt.Errorf("purge: %w", err)
			}
			changes.Add(int64(n))
		}
	}
	return nil
}
