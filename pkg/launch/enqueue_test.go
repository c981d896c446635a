package launch

import (
	"context"
	"errors"
	"testing"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

// TestFailingSuppressionCheckStopsTheLaunch: an error in the middle stage
// (the suppression check of the third batch) ends the launch with it,
// after the batches before it were written, and nothing hangs.
func TestFailingSuppressionCheckStopsTheLaunch(t *testing.T) {
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	path := writeCampaign(t, "supp-down", 1000)
	down := errors.New("suppression list down")
	calls := 0
	res, err := Launch(context.Background(), rdb, ks, path, Options{BatchSize: 100,
		Suppressed: func(_ context.Context, _ string, addrs []string) ([]bool, error) {
			if calls++; calls == 3 {
				return nil, down
			}
			return make([]bool, len(addrs)), nil
		}})
	if !errors.Is(err, down) || res.Enqueued != 200 {
		t.Fatalf("%+v %v; want the error after 200 enqueued", res, err)
	}
}
