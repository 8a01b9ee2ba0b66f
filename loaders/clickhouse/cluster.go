package clickhouse

// # Cluster mode (clickhouse.cluster)
//
// With Config.Cluster set, Migrate creates everything ON CLUSTER and every
// table with the Replicated engine of its family (schema/cluster.go):
//
//   - email_responses_local: ReplicatedReplacingMergeTree with {shard} in
//     its ZooKeeper path, one copy per shard, on both replicas of it;
//     email_responses: Distributed(cluster, db, email_responses_local,
//     cityHash64(user_id)). Every read and write of facts goes through the
//     Distributed table, so BI queries and the product name the same table
//     as on one server. Sharding by user_id keeps a user's responses (and
//     every copy of one response_key, which includes user_id) on one shard:
//     the ReplacingMergeTree safety net and per-user questions stay local
//     to a shard.
//   - etl_windows, etl_leases, email_responses_rejected, the agg_* tables and
//     schema_migrations: Replicated with a path WITHOUT {shard}: all servers
//     are replicas of one table. They are small; the product writes and
//     reads them on the server it is connected to, so it always reads its
//     own writes, and every other server receives each version whole.
//   - staging tables stay local Log tables on the connected server.
//
// Exactly once on the cluster. The commit's anti-join reads the keys
// through the Distributed table, which asks one replica per shard. A
// replica that died after storing part of an earlier attempt, before its
// peer fetched that part, would make the peer look incomplete and the retry
// would add those rows a second time once the dead replica came back. So
// before the anti-join, a commit waits (ReplicaWait) until every live
// replica of email_responses_local has an empty insert queue and has read
// the replication log to its end, and every shard has a live replica: then
// whichever replica the read reaches holds every part ever acknowledged.
// A replica that is down with parts only it holds blocks commits (the
// window fails with the reason and is retried) until it is back. The final
// INSERT goes into the Distributed table with insert_distributed_sync=1: it
// returns only when every shard has stored its rows, so a retry after a
// crash sees what landed.

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/emarsys-etl/emarsys-etl/schema"
)

// Cluster is the cluster name of cluster mode ("" on one server).
func (s *Store) Cluster() string { return s.cluster }

// onCluster is " ON CLUSTER name" in cluster mode, else "".
func (s *Store) onCluster() string { return schema.OnCluster(s.cluster) }

// clusterServer is one server of the cluster as system.clusters lists it.
type clusterServer struct {
	addr  string
	shard uint32
}

// clusterServers lists the servers of s.cluster, read on the connected server.
func (s *Store) clusterServers(ctx context.Context) ([]clusterServer, error) {
	rows, err := s.conn.Query(ctx, "SELECT host_name, port, shard_num FROM system.clusters WHERE cluster = "+quoteString(s.cluster)+" ORDER BY shard_num, replica_num")
	if err != nil {
		return nil, s.scrub(fmt.Errorf("read cluster %s from system.clusters: %w", s.cluster, err))
	}
	defer rows.Close()
	var out []clusterServer
	for rows.Next() {
		var (
			host  string
			port  uint16
			shard uint32
		)
		if err := rows.Scan(&host, &port, &shard); err != nil {
			return nil, s.scrub(fmt.Errorf("read cluster %s: %w", s.cluster, err))
		}
		out = append(out, clusterServer{addr: net.JoinHostPort(host, strconv.Itoa(int(port))), shard: shard})
	}
	if err := rows.Err(); err != nil {
		return nil, s.scrub(fmt.Errorf("read cluster %s: %w", s.cluster, err))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("clickhouse.cluster: the server knows no cluster %q (see remote_servers in its config and system.clusters)", s.cluster)
	}
	return out, nil
}

// dialServer opens a one-connection client to one server of the cluster.
func (s *Store) dialServer(ctx context.Context, addr string) (driver.Conn, error) {
	conn, err := ch.Open(&ch.Options{
		Addr:         []string{addr},
		Auth:         ch.Auth{Username: s.user, Password: s.password},
		DialTimeout:  min(s.dialTimeout, 3*time.Second),
		MaxOpenConns: 1,
	})
	if err != nil {
		return nil, s.scrub(fmt.Errorf("connect to cluster server %s: %w", addr, err))
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, s.scrub(fmt.Errorf("connect to cluster server %s: %w", addr, err))
	}
	return conn, nil
}

// clusterCtx adds the settings a cluster-mode commit needs: an INSERT into
// a Distributed table returns only once every shard stored its rows, and a
// read through it never picks a replica that is behind (one that came back
// after waitFactReplicas looked, and is still fetching), failing instead.
func (s *Store) clusterCtx(ctx context.Context) context.Context {
	if s.cluster == "" {
		return ctx
	}
	return ch.Context(ctx, ch.WithSettings(ch.Settings{
		"insert_distributed_sync":                            1,
		"max_replica_delay_for_distributed_queries":          1,
		"fallback_to_stale_replicas_for_distributed_queries": 0,
	}))
}

// waitFactReplicas returns once every live replica of the fact table is
// caught up and every shard has one, or fails after s.replicaWait. See the
// comment at the top of this file for why the anti-join needs it.
func (s *Store) waitFactReplicas(ctx context.Context) error {
	if s.cluster == "" {
		return nil
	}
	deadline := time.Now().Add(s.replicaWait)
	for {
		why, err := s.factReplicasBehind(ctx)
		if err != nil {
			return err
		}
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster %s: %s after waiting %s: a replica that is down may hold rows its peer lacks; commits wait until it is back (start it, or check system.replicas)",
				s.cluster, why, s.replicaWait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the replicas of %s: %w", factTable+schema.ShardedSuffix, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// factReplicasBehind says why a commit may not run yet ("" when it may).
func (s *Store) factReplicasBehind(ctx context.Context) (string, error) {
	servers, err := s.clusterServers(ctx)
	if err != nil {
		return "", err
	}
	live := map[uint32]int{}
	shards := map[uint32]bool{}
	var behind []string
	for _, sv := range servers {
		shards[sv.shard] = true
		conn, err := s.dialServer(ctx, sv.addr)
		if err != nil {
			continue // down: reads fail over to its peer, checked here
		}
		var inserts, readonly, logPtr, logMax, logEntries uint64
		var zkPath string
		q := fmt.Sprintf("SELECT toUInt64(inserts_in_queue), toUInt64(log_pointer), toUInt64(log_max_index), toUInt64(is_readonly), zookeeper_path FROM system.replicas WHERE database = %s AND table = %s",
			quoteString(s.db), quoteString(factTable+schema.ShardedSuffix))
		err = conn.QueryRow(ctx, q).Scan(&inserts, &logPtr, &logMax, &readonly, &zkPath)
		if err == nil && logPtr == 0 && logMax == 0 {
			// log_max_index is 0 both for an empty log and for one entry
			// (index 0) not pulled yet: count the entries in ZooKeeper.
			err = conn.QueryRow(ctx, "SELECT count() FROM system.zookeeper WHERE path = "+quoteString(zkPath+"/log")).Scan(&logEntries)
			if err == nil && logEntries == 0 {
				logPtr = 1 // nothing to pull
			}
		}
		conn.Close()
		switch {
		case err != nil:
			behind = append(behind, fmt.Sprintf("%s: %v", sv.addr, s.scrub(err)))
		case readonly != 0:
			// No ZooKeeper session yet (a restarted replica waits for its
			// old session to expire): reads skip it as stale (clusterCtx),
			// and parts only it holds show in its peer's queue. As if down.
		case inserts > 0 || logPtr <= logMax:
			behind = append(behind, fmt.Sprintf("%s has %d parts to fetch (log %d of %d)", sv.addr, inserts, logPtr, logMax+1))
		default:
			live[sv.shard]++
		}
	}
	for sh := range shards {
		if live[sh] == 0 {
			behind = append(behind, fmt.Sprintf("shard %d has no live replica", sh))
		}
	}
	if len(behind) > 0 {
		return "replicas not caught up: " + strings.Join(behind, "; "), nil
	}
	return "", nil
}

// alterDistributedColumns gives the Distributed fact table on every server
// the contact columns the local tables have: 18.16 refuses ALTER ... ON
// CLUSTER on a Distributed table (code 371), so it is altered per server.
func (s *Store) alterDistributedColumns(ctx context.Context, fields []schema.Field) error {
	servers, err := s.clusterServers(ctx)
	if err != nil {
		return err
	}
	for _, sv := range servers {
		conn, err := s.dialServer(ctx, sv.addr)
		if err != nil {
			return fmt.Errorf("add contact columns to %s on every server: %w", factTable, err)
		}
		_, err = s.ensureColumnsOn(ctx, conn, factTable, "", fields)
		conn.Close()
		if err != nil {
			return fmt.Errorf("on %s: %w", sv.addr, err)
		}
	}
	return nil
}
