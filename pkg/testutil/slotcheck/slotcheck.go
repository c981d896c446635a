// Package slotcheck checks, in tests, that what a Redis client sends
// would be legal on a Redis Cluster: the keys of every script call, of
// every multi-key command and of every MULTI/EXEC transaction share one
// hash slot (keyspace.Slot). It is a go-redis hook on a single-node
// client, so any test can run its operations through it.
package slotcheck

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// Hook records the commands whose keys span several slots.
type Hook struct {
	info map[string]*redis.CommandInfo

	mu      sync.Mutex
	bad     []string
	checked int
}

// Attach adds a Hook to rdb and has t fail at its end if anything sent
// through rdb would be refused by a cluster (CROSSSLOT).
func Attach(t testing.TB, rdb *redis.Client) *Hook {
	t.Helper()
	info, err := rdb.Command(context.Background()).Result()
	if err != nil {
		t.Fatalf("slotcheck: COMMAND: %v", err)
	}
	h := &Hook{info: info}
	rdb.AddHook(h)
	t.Cleanup(func() {
		for _, b := range h.Violations() {
			t.Errorf("slotcheck: keys in several slots: %s", b)
		}
	})
	return h
}

// Violations lists what was sent across slots, one line each.
func (h *Hook) Violations() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bad...)
}

// Checked is how many commands with keys the hook has seen.
func (h *Hook) Checked() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.checked
}

// DialHook passes dialling through.
func (h *Hook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

// ProcessHook checks one command.
func (h *Hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error {
		h.check([]redis.Cmder{c}, false)
		return next(ctx, c)
	}
}

// ProcessPipelineHook checks each command of a pipeline, and a
// transaction's commands together.
func (h *Hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cs []redis.Cmder) error {
		h.check(cs, len(cs) > 0 && cs[0].Name() == "multi")
		return next(ctx, cs)
	}
}

func (h *Hook) check(cs []redis.Cmder, tx bool) {
	var all []string
	for _, c := range cs {
		keys := h.keys(c)
		if len(keys) == 0 {
			continue
		}
		all = append(all, keys...)
		h.note(c.Name(), keys)
	}
	if tx {
		h.note("MULTI/EXEC", all)
	}
}

func (h *Hook) note(what string, keys []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checked++
	for _, k := range keys[1:] {
		if keyspace.Slot(k) != keyspace.Slot(keys[0]) {
			h.bad = append(h.bad, what+" "+strings.Join(keys, " "))
			return
		}
	}
}

// keys returns the keys of a command: scripts and XREAD by their own
// syntax, the rest by COMMAND INFO (first key, last key, step).
func (h *Hook) keys(c redis.Cmder) []string {
	args := make([]string, len(c.Args()))
	for i, a := range c.Args() {
		args[i] = fmt.Sprint(a)
	}
	name := strings.ToLower(args[0])
	switch name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		n, _ := strconv.Atoi(args[2])
		return args[3:min(3+n, len(args))]
	case "xread", "xreadgroup":
		for i, a := range args {
			if strings.EqualFold(a, "streams") {
				rest := args[i+1:]
				return rest[:len(rest)/2]
			}
		}
		return nil
	}
	in := h.info[name]
	if in == nil || in.FirstKeyPos <= 0 || int(in.FirstKeyPos) >= len(args) {
		return nil
	}
	last := int(in.LastKeyPos)
	if last < 0 {
		last += len(args)
	}
	step := max(int(in.StepCount), 1)
	var keys []string
	for i := int(in.FirstKeyPos); i <= last && i < len(args); i += step {
		keys = append(keys, args[i])
	}
	return keys
}
