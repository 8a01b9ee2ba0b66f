package schema

import (
	"fmt"
	"regexp"
	"strings"
)

// Cluster placeholders in the migration files. On one server they render to
// the plain SQL the files always held; with clickhouse.cluster set:
//
//	{{on_cluster}}            -> ON CLUSTER <cluster>          (else nothing)
//	{{local}}                 -> _local, after a sharded table's name (else nothing)
//	{{engine:E(args)}}        -> ReplicatedE('/clickhouse/tables/{shard}/<db>/<t>', '{replica}', args)
//	                             for a table named *_local (sharded), and
//	                             ReplicatedE('/clickhouse/tables/all/<db>/<t>', '{replica}', args)
//	                             for any other table: one replica on every
//	                             server, the whole table on each (ledger,
//	                             leases, rejects, aggregates)
//	{{distributed:T:KEY}}     -> as a statement of its own: the Distributed
//	                             table T over T_local, sharded by KEY (dropped
//	                             on one server)
const (
	onClusterPlaceholder = "{{on_cluster}}"
	localPlaceholder     = "{{local}}"
)

var (
	enginePlaceholder = regexp.MustCompile(`\{\{engine:([A-Za-z]+)(?:\(([^(){}]*)\))?\}\}`)
	distPlaceholder   = regexp.MustCompile(`^\{\{distributed:([a-z][a-z0-9_]*):([^{}]+)\}\}$`)
	createdTable      = regexp.MustCompile("^CREATE TABLE IF NOT EXISTS `[^`]+`\\.([a-z][a-z0-9_]*)")
	clusterName       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidClusterName reports whether name can be a cluster name in DDL
// (letters, digits and _, not starting with a digit).
func ValidClusterName(name string) bool { return clusterName.MatchString(name) }

// ShardedSuffix is appended to a sharded table's name in cluster mode: T is
// then the Distributed table and T_local the replicated shard table.
const ShardedSuffix = "_local"

// ReplicatedEngine returns the Replicated form of engine (e.g.
// "ReplacingMergeTree", args "version") for table t of db. sharded puts the
// {shard} macro in the ZooKeeper path (one copy per shard); otherwise every
// server of the cluster is a replica of one and the same table.
func ReplicatedEngine(engine, args, db, table string, sharded bool) string {
	shard := "all"
	if sharded {
		shard = "{shard}"
	}
	out := fmt.Sprintf("Replicated%s('/clickhouse/tables/%s/%s/%s', '{replica}'", engine, shard, db, table)
	if strings.TrimSpace(args) != "" {
		out += ", " + strings.TrimSpace(args)
	}
	return out + ")"
}

// OnCluster is the ON CLUSTER clause for cluster ("" on one server).
func OnCluster(cluster string) string {
	if cluster == "" {
		return ""
	}
	return " ON CLUSTER " + cluster
}

func renderCluster(stmts []string, db, cluster string) ([]string, error) {
	out := make([]string, 0, len(stmts))
	for _, st := range stmts {
		if m := distPlaceholder.FindStringSubmatch(strings.TrimSpace(st)); m != nil {
			if cluster == "" {
				continue
			}
			t, key := m[1], strings.TrimSpace(m[2])
			out = append(out, fmt.Sprintf("CREATE TABLE IF NOT EXISTS `%s`.%s ON CLUSTER %s AS `%s`.%s%s ENGINE = Distributed(%s, %s, %s%s, %s)",
				db, t, cluster, db, t, ShardedSuffix, cluster, db, t, ShardedSuffix, key))
			continue
		}
		local := ""
		if cluster != "" {
			local = ShardedSuffix
		}
		st = strings.ReplaceAll(st, onClusterPlaceholder, OnCluster(cluster))
		st = strings.ReplaceAll(st, localPlaceholder, local)
		if enginePlaceholder.MatchString(st) {
			table := ""
			if m := createdTable.FindStringSubmatch(st); m != nil {
				table = m[1]
			}
			if cluster != "" && table == "" {
				return nil, fmt.Errorf("{{engine:...}} outside CREATE TABLE IF NOT EXISTS `db`.name: %.60q", st)
			}
			st = enginePlaceholder.ReplaceAllStringFunc(st, func(p string) string {
				m := enginePlaceholder.FindStringSubmatch(p)
				if cluster == "" {
					if m[2] == "" && !strings.Contains(p, "(") {
						return m[1]
					}
					return m[1] + "(" + m[2] + ")"
				}
				return ReplicatedEngine(m[1], m[2], db, table, strings.HasSuffix(table, ShardedSuffix))
			})
		}
		out = append(out, st)
	}
	return out, nil
}
