package schema

import (
	"strings"
	"testing"
)

func TestMigrationsForCluster(t *testing.T) {
	single, err := Migrations("emarsys")
	if err != nil {
		t.Fatal(err)
	}
	multi, err := MigrationsFor("emarsys", "emarsys_cluster")
	if err != nil {
		t.Fatal(err)
	}
	var all, dist []string
	for _, m := range single {
		for _, s := range m.Statements {
			if strings.Contains(s, "Replicated") || strings.Contains(s, "ON CLUSTER") || strings.Contains(s, "_local") {
				t.Errorf("single-server statement has cluster text: %.80q", s)
			}
		}
	}
	for _, m := range multi {
		for _, s := range m.Statements {
			all = append(all, s)
			if strings.Contains(s, "Distributed(") {
				dist = append(dist, s)
			}
			if strings.HasPrefix(s, "CREATE") && !strings.Contains(s, "ON CLUSTER emarsys_cluster") {
				t.Errorf("cluster DDL without ON CLUSTER: %.80q", s)
			}
			if strings.HasPrefix(s, "CREATE TABLE") && !strings.Contains(s, "Replicated") && !strings.Contains(s, "Distributed(") {
				t.Errorf("cluster table without a Replicated engine: %.80q", s)
			}
		}
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{
		"`emarsys`.email_responses_local ON CLUSTER emarsys_cluster (",
		"ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/emarsys/email_responses_local', '{replica}', loaded_at)",
		"ReplicatedReplacingMergeTree('/clickhouse/tables/all/emarsys/etl_windows', '{replica}', version)",
		"ReplicatedReplacingMergeTree('/clickhouse/tables/all/emarsys/email_responses_rejected', '{replica}', rejected_at)",
		"Distributed(emarsys_cluster, emarsys, email_responses_local, cityHash64(user_id))",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("cluster migrations lack %q", want)
		}
	}
	if len(dist) != 1 {
		t.Errorf("want one Distributed table, got %d", len(dist))
	}
	if _, err := MigrationsFor("emarsys", "bad name;"); err == nil {
		t.Error("a bad cluster name was accepted")
	}
}
