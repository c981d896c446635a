// Package clustere2e is issue #12's acceptance on a real Redis Cluster
// (clustertest: three masters, three replicas). It holds no code, only
// tests: two in-process engines (enginetest) with different consumer names
// deliver a campaign to in-process SMTP receivers on loopback, and the
// tests count every copy each recipient got at the receiver.
//
//   - TestSpread: 20,000 recipients (2,000 under -short) arrive exactly
//     once; each master holds 20–45% of the deployment's keys and served
//     20–45% of its commands (the sharding of issue #12 does that: without
//     it every key sits under one hash tag on one master).
//   - TestFailover: kill -9 of a master mid-campaign, as is and with its
//     replica cut off half a second before; both engines carry on without
//     a restart and the campaign completes. Lost recipients (never
//     received) and duplicates (received twice) are printed and held to
//     what the README promises, with and without redis.wait_replicas.
//   - TestScaleOut: a fourth master joins mid-campaign and takes over,
//     keys and all, four shards' slots and the deployment's own while both
//     engines deliver (ASK, TRYAGAIN and MOVED meanwhile); every recipient
//     arrives exactly once and no engine restarts.
//   - TestRebalanceSpreadsShards: grown with redis-cli's rebalance from
//     three masters to four, then six, every master holds as many of a
//     deployment's twelve shards as the others.
//   - TestProviderLimits: a provider limited to 50 msg/s and 5 connections
//     sees no more from the two engines together.
//
// campaignctl's status, report, pause, resume and cancel on the cluster are
// tested where its binary is built, in cmd/campaignctl
// (cluster_lifecycle_test.go).
package clustere2e
