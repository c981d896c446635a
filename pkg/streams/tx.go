package streams

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// txCall is an enqueue's part: with adds, freshScript's run after its
// packs and events entry in one transaction (MULTI/EXEC); without,
// enqueueScript's run alone.
type txCall struct {
	adds []streamAdd
	call scriptCall
}

// streamAdd is one XADD of a one-field entry: value a string or a
// []byte (sent as it is, not copied into a string first).
type streamAdd struct {
	key, field string
	value      any
}

// txPipeliner runs a transaction: a client or one connection.
type txPipeliner interface {
	TxPipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// runEnqueue runs the calls of an enqueue, with WaitReplicas: those that
// add entries before their script as transactions (runTx), the others
// (all of enqueueScript) as plain runs, and returns their replies in
// order.
func (q *Queue) runEnqueue(ctx context.Context, calls []txCall) []*redis.Cmd {
	var tx, plain []int
	for i, c := range calls {
		if len(c.adds) > 0 {
			tx = append(tx, i)
		} else {
			plain = append(plain, i)
		}
	}
	out := make([]*redis.Cmd, len(calls))
	if len(plain) > 0 {
		runs := make([]scriptCall, len(plain))
		for j, i := range plain {
			runs[j] = calls[i].call
		}
		for j, c := range q.runAllReplicated(ctx, enqueueScript, runs) {
			out[plain[j]] = c
		}
	}
	if len(tx) == 0 {
		return out
	}
	var cmds []*redis.Cmd
	if q.repl == nil {
		cmds = runTx(ctx, q.rdb, calls, tx)
	} else {
		firsts := make([]string, len(tx))
		for j, i := range tx {
			firsts[j] = calls[i].call.keys[0]
		}
		cmds = q.byMaster(ctx, firsts,
			func(at []int) []*redis.Cmd { return runTx(ctx, q.rdb, calls, pick(tx, at)) },
			func(node *redis.Client, at []int, want int) ([]*redis.Cmd, int, error) {
				conn := node.Conn() // WAIT waits for its own connection's writes
				defer conn.Close()
				cmds := runTx(ctx, conn, calls, pick(tx, at))
				acked, err := conn.Do(ctx, "wait", want, q.repl.timeout.Milliseconds()).Int()
				return cmds, acked, err
			})
	}
	for j, c := range cmds {
		out[tx[j]] = c
	}
	return out
}

// pick is the elements of all at the positions at.
func pick(all, at []int) []int {
	out := make([]int, len(at))
	for j, i := range at {
		out[j] = all[i]
	}
	return out
}

// runTx runs the calls at of calls, each its XADDs and then freshScript in
// a transaction of its own (MULTI/EXEC: a cluster's transaction must keep
// to one slot, and each call's keys share theirs; on one server too, as
// everywhere), and returns the scripts' replies; when a transaction
// fails, or an XADD in it, its script's reply has the error. The script
// is sent whole (EVAL): in a transaction, an EVALSHA that found no script
// would fail after the entries were added. On a client the transactions
// go at once, each on a connection of its own; on one connection (tx a
// *redis.Conn), one after the other.
func runTx(ctx context.Context, tx txPipeliner, calls []txCall, at []int) []*redis.Cmd {
	out := make([]*redis.Cmd, len(at))
	run := func(j int) {
		c := calls[at[j]]
		adds := make([]*redis.StringCmd, len(c.adds))
		_, _ = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for k, a := range c.adds {
				adds[k] = p.XAdd(ctx, &redis.XAddArgs{Stream: a.key, Values: []any{a.field, a.value}})
			}
			out[j] = freshScript.Eval(ctx, p, c.call.keys, c.call.args...)
			return nil
		})
		for k, a := range adds {
			if err := a.Err(); err != nil && out[j].Err() == nil {
				out[j].SetErr(fmt.Errorf("enqueue: XADD %s in its transaction: %w", c.adds[k].key, err))
			}
		}
	}
	if _, one := tx.(*redis.Conn); one {
		for j := range at {
			run(j)
		}
		return out
	}
	var wg sync.WaitGroup
	for j := range at {
		wg.Go(func() { run(j) })
	}
	wg.Wait()
	return out
}
