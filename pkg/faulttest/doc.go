// Package faulttest is the fault-injection suite of the delivery
// guarantee (issue #10: restarts, crashes and Redis outages never multiply
// a message). It holds no code, only tests: they run the real engine
// binary (built once, without -race) against a real redis-server with an
// append-only file and an in-process SMTP receiver that counts every copy
// of every recipient, then kill -9 the engine, SIGTERM it, stop Redis
// under it, or let a second engine take over a dead one's jobs, and check
// that nothing is lost and nothing arrives more often than the faults
// allow. Each test prints its figures (t.Logf; see them with go test -v).
package faulttest
