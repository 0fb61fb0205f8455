package jobs

import (
	"context"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// List returns the jobs of a kind in the database, for tests to inspect.
func List[TTx any](ctx context.Context, q *Queue[TTx], kind string) ([]*rivertype.JobRow, error) {
	res, err := q.client.JobList(ctx, river.NewJobListParams().Kinds(kind).First(1000))
	if err != nil {
		return nil, err
	}
	return res.Jobs, nil
}
