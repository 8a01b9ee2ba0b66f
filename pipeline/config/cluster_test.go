package config

import (
	"strings"
	"testing"
)

// clickhouse.cluster switches cluster mode on; a name that cannot be a
// cluster in DDL is refused with the key.
func TestClickHouseCluster(t *testing.T) {
	vars := env(map[string]string{"SECRET": "s3", "FTP_PASSWORD": "pw"})
	c, err := Parse([]byte(minimal+"clickhouse: {cluster: emarsys_cluster}\n"), vars)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClickHouse.Cluster != "emarsys_cluster" {
		t.Errorf("cluster = %q", c.ClickHouse.Cluster)
	}
	if c, err := Parse([]byte(minimal), vars); err != nil || c.ClickHouse.Cluster != "" {
		t.Errorf("no cluster by default: %q, %v", c.ClickHouse.Cluster, err)
	}
	_, err = Parse([]byte(minimal+"clickhouse: {cluster: \"a b; DROP\"}\n"), vars)
	if err == nil || !strings.Contains(err.Error(), "clickhouse.cluster") {
		t.Errorf("bad cluster name: err = %v, want one naming clickhouse.cluster", err)
	}
}
