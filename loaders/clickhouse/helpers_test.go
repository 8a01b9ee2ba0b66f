package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/pipeline/csvrows"
	"github.com/emarsys-etl/emarsys-etl/schema"
)

// testAddr is where the integration tests find ClickHouse.
func testAddr() string {
	if a := os.Getenv("CLICKHOUSE_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:9000"
}

// requireServer skips when no server listens, unless CI says one must.
func requireServer(t testing.TB) {
	t.Helper()
	c, err := net.DialTimeout("tcp", testAddr(), 2*time.Second)
	if err == nil {
		c.Close()
		return
	}
	if os.Getenv("CLICKHOUSE_REQUIRED") == "1" {
		t.Fatalf("ClickHouse at %s is unreachable and CLICKHOUSE_REQUIRED=1: %v", testAddr(), err)
	}
	t.Skipf("ClickHouse at %s is unreachable (%v): set CLICKHOUSE_ADDR to run the integration tests", testAddr(), err)
}

// newTestStore opens a Store on a fresh database that is dropped at the end.
func newTestStore(t testing.TB, batchRows int) *Store {
	t.Helper()
	requireServer(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	db := "etltest_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Config{Addr: testAddr(), Database: db, BatchRows: batchRows})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.exec(ctx, "drop test database", "DROP DATABASE IF EXISTS "+quoteIdent(db)); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		s.Close()
	})
	return s
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// fullPlan asks for three contact fields (one a date, one custom) and all
// ten analysis fields.
func fullPlan(t testing.TB) csvrows.Plan {
	t.Helper()
	custom, err := schema.CustomField(101, "tier", "Tier", schema.KindString)
	if err != nil {
		t.Fatal(err)
	}
	p, err := csvrows.NewPlan([]int{3, 4, 101}, schema.AnalysisFieldIDs(), map[int]schema.Field{101: custom})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func countRows(t testing.TB, s *Store, table string) uint64 {
	t.Helper()
	var n uint64
	if err := s.conn.QueryRow(testCtx(t), "SELECT count() FROM "+s.table(table)).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// migrateFor migrates s with the contact columns plan asks for.
func migrateFor(t testing.TB, s *Store, plan csvrows.Plan) {
	t.Helper()
	var contact []schema.Field
	for _, f := range plan.Fields {
		if !isFixedColumn(f.Column) {
			contact = append(contact, f)
		}
	}
	if err := s.Migrate(testCtx(t), contact); err != nil {
		t.Fatal(err)
	}
}
