package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
)

// Crash recovery. A job a process was running when it died stays "running"
// in the database; River's rescuer runs it again only after the lease
// (Config.Lease, minutes). A recovery brings those jobs back within seconds
// instead: on SQLite at start, since only one process serves a file; on
// Postgres by watching the other processes' liveness locks (lifeline). The
// lease stays as the backstop for a process that is alive but stuck.

// recovery puts the jobs of processes that died back in the queue.
type recovery interface {
	// start runs before the workers start; o counts and logs the rescues.
	start(ctx context.Context, o *observer) error
	// stop runs after the workers stopped; it ends what start began.
	stop()
}

// rescueBatch is how many jobs one statement rescues at most.
const rescueBatch = 1000

// stuckJob is a job left running by a process that died.
type stuckJob struct {
	id          int64
	kind        string
	attempt     int
	maxAttempts int
	scheduledAt time.Time
	// cancelled: someone asked to cancel the job while it ran.
	cancelled bool
	// runner is the River client ID of the process that ran it.
	runner string
	// lost: the runner is this process, alive, which does not run the job
	// (see lifeline.reclaim), rather than a process that died.
	lost bool
}

// rescueParams says what becomes of each job, as River's rescuer would,
// except that a job whose process died runs again at once, without the
// retry backoff: the failure was not the job's. A job whose cancellation was
// asked is cancelled; one out of attempts is discarded; the others are
// available again, keeping their scheduled time so they are fetched first.
// It returns the new state of each job too.
func rescueParams(jobs []stuckJob, now time.Time) (*riverdriver.JobRescueManyParams, []rivertype.JobState, error) {
	p := &riverdriver.JobRescueManyParams{
		ID:           make([]int64, 0, len(jobs)),
		Error:        make([][]byte, 0, len(jobs)),
		FinalizedAt:  make([]*time.Time, 0, len(jobs)),
		ScheduledAt:  make([]time.Time, 0, len(jobs)),
		State:        make([]string, 0, len(jobs)),
		StuckHorizon: now.Add(time.Hour), // every job given is stuck
	}
	states := make([]rivertype.JobState, 0, len(jobs))
	for _, j := range jobs {
		state, finalized := rivertype.JobStateAvailable, (*time.Time)(nil)
		switch {
		case j.cancelled:
			state, finalized = rivertype.JobStateCancelled, &now
		case j.attempt >= j.maxAttempts:
			state, finalized = rivertype.JobStateDiscarded, &now
		}
		why := fmt.Sprintf("rescued: the process that ran it (%s) died", j.runner)
		if j.lost {
			why = fmt.Sprintf("rescued: the process it was fetched for (%s) neither ran it nor recorded its outcome", j.runner)
		}
		e, err := json.Marshal(rivertype.AttemptError{At: now, Attempt: max(j.attempt, 0), Error: why})
		if err != nil {
			return nil, nil, err
		}
		p.ID = append(p.ID, j.id)
		p.Error = append(p.Error, e)
		p.FinalizedAt = append(p.FinalizedAt, finalized)
		p.ScheduledAt = append(p.ScheduledAt, j.scheduledAt)
		p.State = append(p.State, string(state))
		states = append(states, state)
	}
	return p, states, nil
}

// logRescued counts the rescued jobs and logs the batch, one line.
func (o *observer) logRescued(by string, jobs []stuckJob, states []rivertype.JobState, deadFor time.Duration) {
	ev, dead := o.countRescued(jobs, states)
	ev = ev.Strs("dead_clients", dead)
	if by != "" {
		ev = ev.Str("client_id", by)
	}
	if deadFor > 0 {
		ev = ev.Dur("dead_for", deadFor)
	}
	ev.Msg("jobs rescued from a dead process")
}

// logReclaimed counts the jobs this process (by) lost and put back in the
// queue, and logs the batch, one line; see lifeline.reclaim.
func (o *observer) logReclaimed(by string, jobs []stuckJob, states []rivertype.JobState, lostFor time.Duration) {
	ev, _ := o.countRescued(jobs, states)
	ev.Str("client_id", by).Dur("lost_for", lostFor).Msg("jobs this process lost put back in the queue")
}

// countRescued counts the rescued jobs by kind and new state, and returns
// the start of their log line and their runners, sorted.
func (o *observer) countRescued(jobs []stuckJob, states []rivertype.JobState) (*zerolog.Event, []string) {
	byState := map[rivertype.JobState]int{}
	runners := map[string]bool{}
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		o.rescued.WithLabelValues(j.kind, string(states[i])).Inc()
		byState[states[i]]++
		runners[j.runner] = true
		ids[i] = j.id
	}
	names := make([]string, 0, len(runners))
	for r := range runners {
		names = append(names, r)
	}
	sort.Strings(names)
	ev := o.log.Warn().Str("component", "jobs").Int("jobs", len(jobs)).
		Ints64("job_ids", ids).Int("available", byState[rivertype.JobStateAvailable]).
		Int("discarded", byState[rivertype.JobStateDiscarded]).Int("cancelled", byState[rivertype.JobStateCancelled])
	return ev, names
}

// atStart is SQLite's recovery. Only one process serves a SQLite file, so a
// job still running when the process starts belonged to one that died: it
// is rescued before the workers start. So is the leadership such a process
// held, which River would otherwise wait out (its TTL, 15 s) before this
// process runs the periodic jobs, the webhook dispatcher among them.
type atStart struct {
	driver *riversqlite.Driver
}

func (r atStart) start(ctx context.Context, o *observer) error {
	exec := r.driver.GetExecutor()
	if err := resignDead(ctx, o, exec, ""); err != nil {
		return err
	}
	var after int64
	for {
		rows, err := exec.JobGetStuck(ctx, &riverdriver.JobGetStuckParams{
			AfterID: after, Max: rescueBatch, StuckHorizon: time.Now().Add(time.Hour),
		})
		if err != nil {
			return fmt.Errorf("jobs: finding jobs left running: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		after = rows[len(rows)-1].ID
		jobs := make([]stuckJob, len(rows))
		for i, row := range rows {
			jobs[i] = stuckFromRow(row)
		}
		params, states, err := rescueParams(jobs, time.Now())
		if err != nil {
			return err
		}
		if _, err := exec.JobRescueMany(ctx, params); err != nil {
			return fmt.Errorf("jobs: rescuing %d jobs left running: %w", len(jobs), err)
		}
		o.logRescued("", jobs, states, 0)
		if len(rows) < rescueBatch {
			return nil
		}
	}
}

func (atStart) stop() {}

// leadershipTopic is the channel on which River's electors hear that a
// leader resigned (Postgres), so that they try to take over at once.
const leadershipTopic = "river_leadership"

// resignDead ends the leadership of a process that died: of the process
// dead (a River client ID), or of whichever process leads when dead is "",
// and logs it. Nothing happens when another process leads, or none.
func resignDead(ctx context.Context, o *observer, exec riverdriver.Executor, dead string) error {
	leader, err := exec.LeaderGetElectedLeader(ctx, &riverdriver.LeaderGetElectedLeaderParams{})
	switch {
	case errors.Is(err, rivertype.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("jobs: reading the leader: %w", err)
	case dead != "" && leader.LeaderID != dead:
		return nil
	}
	resigned, err := exec.LeaderResign(ctx, &riverdriver.LeaderResignParams{
		ElectedAt: leader.ElectedAt, LeaderID: leader.LeaderID, LeadershipTopic: leadershipTopic,
	})
	if err != nil {
		return fmt.Errorf("jobs: ending the leadership of %s: %w", leader.LeaderID, err)
	}
	if resigned {
		o.log.Warn().Str("component", "jobs").Str("dead_client", leader.LeaderID).Msg("leadership of a dead process ended")
	}
	return nil
}

// stuckFromRow is the job of row, which is running.
func stuckFromRow(row *rivertype.JobRow) stuckJob {
	var md struct {
		CancelAttemptedAt *time.Time `json:"cancel_attempted_at"`
	}
	_ = json.Unmarshal(row.Metadata, &md) // metadata that is not JSON asks for no cancellation
	j := stuckJob{
		id: row.ID, kind: row.Kind, attempt: row.Attempt, maxAttempts: row.MaxAttempts,
		scheduledAt: row.ScheduledAt, cancelled: md.CancelAttemptedAt != nil, runner: "unknown",
	}
	if n := len(row.AttemptedBy); n > 0 {
		j.runner = row.AttemptedBy[n-1]
	}
	return j
}
