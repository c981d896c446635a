package streams

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// MessageKey is where a job's ready-made message is kept (transactional
// mail submitted over SMTP or the API carries its own message; campaign
// jobs are rendered from their campaign instead).
func (q *Queue) MessageKey(jobID string) string { return q.ks.Key("msg", jobID) }

var addMessageScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('SET', KEYS[4], ARGV[4])
redis.call('XADD', KEYS[1], '*', 'j', ARGV[3])
redis.call('HINCRBY', KEYS[2], 'total', 1)
redis.call('HINCRBY', KEYS[2], 'queued', 1)
return 1
`)

// AddMessage stores msg and queues j to send it, in one atomic step: when
// it returns nil the job is durable (a submission server may then answer
// 250). j.ID must be unique; j.HasMessage is set.
func (q *Queue) AddMessage(ctx context.Context, j *Job, t Tally, msg []byte) error {
	j.HasMessage = true
	raw, err := j.encode()
	if err != nil {
		return err
	}
	n, err := addMessageScript.Run(ctx, q.rdb, []string{q.Stream(j.Lane), t.Counters, t.Records, q.MessageKey(j.ID)},
		j.RecordField(), Record{Status: "queued", JobID: j.ID}.Encode(), raw, msg).Int()
	if err != nil {
		return fmt.Errorf("enqueue message %s: %w", j.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("enqueue message %s: job id already used", j.ID)
	}
	return nil
}

// ErrNoMessage means a job's stored message is gone.
var ErrNoMessage = errors.New("stored message not found")

// Message returns a job's stored message.
func (q *Queue) Message(ctx context.Context, jobID string) ([]byte, error) {
	b, err := q.rdb.Get(ctx, q.MessageKey(jobID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("job %s: %w", jobID, ErrNoMessage)
	}
	if err != nil {
		return nil, fmt.Errorf("job %s: load message: %w", jobID, err)
	}
	return b, nil
}
