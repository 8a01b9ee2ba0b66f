// Package clickhouse stores email responses, their rejects and the window
// ledger in ClickHouse, and runs the schema migrations.
//
// It speaks the native protocol (clickhouse-go/v2; LZ4 to a remote server)
// and works against ClickHouse 18.16 as well as current releases: every
// statement names its columns, sends only integer settings (18.16 accepts
// no others), and uses only types 18.16 has (DateTime, not DateTime64;
// String, not LowCardinality). The server version is read at Open for the
// few places where newer servers allow more (Date32), and the server's
// cityHash64 is compared with the Go response key (key.go).
//
// # Exactly once, without insert deduplication tokens
//
// A window is loaded by a Load:
//
//  1. BeginLoad drops and recreates the window's staging tables, and, on a
//     single server whose cityHash64 matches the Go key (key.go, checked at
//     Open), its shadow table, made AS email_responses. Their names come
//     from a hash of account and window only (_stage_<16 hex>[_rej|_direct]),
//     so a re-run after a crash replaces whatever the earlier attempt left.
//  2. Append sends a row whose time lies inside the window down the direct
//     path (direct.go): as a finished email_responses row into the shadow,
//     over two INSERTs that take blocks of BatchRows rows in turn, each sent
//     by a goroutine of its own that also hashes the block's response_keys.
//     Every other row (outside the window, or the file has no Time field, or
//     the direct path is off) is streamed into the stage (engine Log) the
//     same way (stream.go); Reject does the same for rejects.
//  3. Commit ends the INSERTs and refuses to go on if the shadow or the
//     stage holds fewer rows than were sent (never a silent loss). Then,
//     taking turns with the account's other commits (Store.commitLock):
//     the shadow first. If it holds a key twice (the file repeats a
//     response) it is deduplicated by OPTIMIZE FINAL, being a
//     ReplacingMergeTree ordered by the key. If email_responses has no row of
//     the account in the window's time range, the shadow's partitions are
//     attached to it as they are (ALTER TABLE ... ATTACH PARTITION ID ...
//     FROM); otherwise only the shadow's rows whose key is missing there are
//     copied. Then the stage: rows_new is the number of distinct staged keys
//     (response_key computed in SQL, see ResponseKeySQL) NOT IN the keys that
//     email_responses holds for the account in the stage's time range; one
//     INSERT SELECT (two at once, split by key, for large windows) moves
//     exactly those rows, one per key (LIMIT 1 BY); rejects go in the same
//     way keyed by raw_key; the shadow and staging tables are dropped.
//
// Nothing before the commit touches email_responses, so a Load aborted for
// any reason (including the reject share) leaves it as it was. Attaching is
// exact because the range was empty under the commit lock and the shadow holds
// each key once; every other move is an anti-join, which makes the commit
// idempotent: if the process dies anywhere, including between two attached
// partitions or halfway through an INSERT SELECT, loading the window again
// finds part of the range stored and adds exactly the rows that are still
// missing. An overlapping window adds only the rows the earlier one did not
// have; two overlapping windows loading at once each fill their own shadow,
// and whichever commits second finds its range no longer empty. This relies
// on one committer per account at a time: within a Store an account's
// commits take turns (commitLock), and across processes the account lease (lease.go, etl_leases:
// claim, read back, argMax by version) keeps a second instance out.
//
// email_responses is a ReplacingMergeTree(loaded_at) keyed on response_key
// as a safety net only; correctness never waits for a merge. The ledger
// (etl_windows) is append-only, one row per save with a growing version,
// and is read with argMax(column, version), never relying on merges either.
//
// Staging and shadow tables live in the product's database, named with a
// leading underscore; one left behind by a crash is harmless and replaced by
// the next attempt at that window.
//
// # Cluster mode
//
// With Config.Cluster the staged path alone runs on a replicated, sharded
// cluster (no shadow: parts cannot be attached across shards): staging stays local to the connected server, the anti-join and the final
// INSERT go through the Distributed email_responses (sharded by
// cityHash64(user_id)) with insert_distributed_sync=1, and a commit first
// waits until every live replica of email_responses_local is caught up.
// cluster.go explains why that keeps exactly once when a replica dies.
package clickhouse
