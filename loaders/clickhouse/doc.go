// Package clickhouse stores email responses, their rejects and the window
// ledger in ClickHouse, and runs the schema migrations.
//
// It speaks the native protocol (clickhouse-go/v2, LZ4) and works against
// ClickHouse 18.16 as well as current releases: every statement names its
// columns, sends no settings, and uses only types 18.16 has (DateTime, not
// DateTime64; String, not LowCardinality). The server version is read at
// Open for the few places where newer servers allow more (Date32).
//
// # Exactly once, without insert deduplication tokens
//
// A window is loaded by a Load:
//
//  1. BeginLoad drops and recreates the window's staging tables. Their
//     names come from a hash of account and window only (_stage_<16 hex>),
//     so a re-run after a crash replaces whatever the earlier attempt left.
//  2. Append streams typed rows into the stage in columnar blocks of
//     BatchRows rows (engine Log), all on one INSERT that a goroutine sends
//     while the parser fills the next block (stream.go). Reject does the
//     same for rejects, block by block.
//  3. Commit ends that INSERT, counts the stage and refuses to go on if it
//     holds fewer rows than were sent (a short stage is an error, never a
//     silent loss). It then computes, in SQL, response_key (see
//     ResponseKeySQL) for every staged row; rows_new is the number of
//     distinct keys NOT IN the keys that email_responses already holds for
//     the account in the stage's time range. One INSERT SELECT (two at once,
//     split by key, for large windows) moves exactly those rows, one per key
//     (LIMIT 1 BY), from the stage into email_responses; rejects go in the
//     same way keyed by raw_key; the staging tables are dropped.
//
// Every step before the final INSERT SELECT touches only staging tables,
// and the anti-join makes the whole commit idempotent: if the process dies
// anywhere, including halfway through the final insert, loading the window
// again adds exactly the rows that are still missing. An overlapping window
// adds only the rows the earlier one did not have. This relies on one
// committer per account at a time, since two concurrent commits covering the
// same responses could both see them as missing: within a Store commits take
// turns (commitMu), and across processes the account lease (lease.go,
// etl_leases: claim, read back, argMax by version) keeps a second instance
// out.
//
// email_responses is a ReplacingMergeTree(loaded_at) keyed on response_key
// as a safety net only; correctness never waits for a merge. The ledger
// (etl_windows) is append-only, one row per save with a growing version,
// and is read with argMax(column, version), never relying on merges either.
//
// Staging tables live in the product's database, named with a leading
// underscore; one left behind by a crash is harmless and replaced by the
// next attempt at that window.
//
// # Cluster mode
//
// With Config.Cluster the same load runs on a replicated, sharded cluster:
// staging stays local to the connected server, the anti-join and the final
// INSERT go through the Distributed email_responses (sharded by
// cityHash64(user_id)) with insert_distributed_sync=1, and a commit first
// waits until every live replica of email_responses_local is caught up.
// cluster.go explains why that keeps exactly once when a replica dies.
package clickhouse
