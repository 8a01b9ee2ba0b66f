package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/emarsys-etl/emarsys-etl/schema"
)

const (
	factTable     = "email_responses"
	rejectTable   = "email_responses_rejected"
	windowTable   = "etl_windows"
	migrTable     = "schema_migrations"
	contactAnchor = "invalid_utf8" // contact columns go right before it
)

// Migrate creates the database, applies the embedded migrations that the
// database has not seen yet, in order, and adds the contact columns. Running
// it again is a no-op: applied versions are recorded, and every statement is
// idempotent anyway, so a run cut short is finished by the next one.
func (s *Store) Migrate(ctx context.Context, contact []schema.Field) error {
	migrations, err := schema.MigrationsFor(s.db, s.cluster)
	if err != nil {
		return err
	}
	if err := s.exec(ctx, "create database "+s.db, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(s.db)+s.onCluster()); err != nil {
		return err
	}
	engine := "ReplacingMergeTree"
	if s.cluster != "" {
		engine = schema.ReplicatedEngine("ReplacingMergeTree", "", s.db, migrTable, false)
	}
	// The record table is made here, not in a migration: the runner must
	// read it before it knows which migrations to run.
	if err := s.exec(ctx, "create "+migrTable, "CREATE TABLE IF NOT EXISTS "+s.table(migrTable)+s.onCluster()+
		" (version UInt32, name String, applied_at DateTime) ENGINE = "+engine+" ORDER BY version"); err != nil {
		return err
	}
	applied, err := s.appliedMigrations(ctx)
	if err != nil {
		return err
	}
	for v := range applied {
		if int(v) > len(migrations) {
			return fmt.Errorf("migrate %s: database is at schema version %d, this binary knows only up to %d: run a newer emarsys-etl", s.db, v, len(migrations))
		}
	}
	for _, m := range migrations {
		if applied[m.Version] {
			continue
		}
		for i, stmt := range m.Statements {
			if err := s.exec(ctx, fmt.Sprintf("apply migration %04d_%s statement %d", m.Version, m.Name, i+1), stmt); err != nil {
				return err
			}
		}
		if err := s.recordMigration(ctx, m); err != nil {
			return err
		}
	}
	if err := s.ensureContactColumns(ctx, contact, true); err != nil {
		return err
	}
	if err := s.ensureContactsView(ctx); err != nil { // its columns follow the contact columns
		return err
	}
	return s.ensureBIForms(ctx)
}

// recordMigration notes m as applied. It goes through a batch: over the
// native protocol an INSERT ... VALUES sent as query text waits for a data
// block that Exec never sends (seen hanging on 18.16).
func (s *Store) recordMigration(ctx context.Context, m schema.Migration) error {
	what := fmt.Sprintf("record migration %04d_%s", m.Version, m.Name)
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.table(migrTable)+" (version, name, applied_at)")
	if err != nil {
		return s.scrub(fmt.Errorf("%s: %w", what, err))
	}
	defer batch.Abort()
	if err := batch.Append(m.Version, m.Name, time.Now()); err != nil {
		return s.scrub(fmt.Errorf("%s: %w", what, err))
	}
	if err := batch.Send(); err != nil {
		return s.scrub(fmt.Errorf("%s: %w", what, err))
	}
	return nil
}

// SchemaVersion returns the highest applied migration version (0 for none).
func (s *Store) SchemaVersion(ctx context.Context) (uint32, error) {
	applied, err := s.appliedMigrations(ctx)
	if err != nil {
		return 0, err
	}
	var latest uint32
	for v := range applied {
		latest = max(latest, v)
	}
	return latest, nil
}

func (s *Store) appliedMigrations(ctx context.Context) (map[uint32]bool, error) {
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT version FROM "+s.table(migrTable))
	if err != nil {
		return nil, s.scrub(fmt.Errorf("read applied migrations: %w", err))
	}
	defer rows.Close()
	applied := map[uint32]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, s.scrub(fmt.Errorf("read applied migrations: %w", err))
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, s.scrub(fmt.Errorf("read applied migrations: %w", err))
	}
	return applied, nil
}

type columnInfo struct{ name, typ string }

// tableColumns lists a table's columns in table order. system.columns is
// used rather than DESCRIBE because it answers "no such table" with no rows.
func (s *Store) tableColumns(ctx context.Context, table string) ([]columnInfo, error) {
	return s.tableColumnsOn(ctx, s.conn, table)
}

// tableColumnsOn is tableColumns read over conn (one server of a cluster).
func (s *Store) tableColumnsOn(ctx context.Context, conn driver.Conn, table string) ([]columnInfo, error) {
	q := fmt.Sprintf("SELECT name, type FROM system.columns WHERE database = %s AND table = %s",
		quoteString(s.db), quoteString(table))
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, s.scrub(fmt.Errorf("read columns of %s.%s: %w", s.db, table, err))
	}
	defer rows.Close()
	var out []columnInfo
	for rows.Next() {
		var c columnInfo
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			return nil, s.scrub(fmt.Errorf("read columns of %s.%s: %w", s.db, table, err))
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.scrub(fmt.Errorf("read columns of %s.%s: %w", s.db, table, err))
	}
	return out, nil
}

// EnsureContactColumns adds to email_responses the contact columns it lacks,
// after the existing contact columns (before invalid_utf8). Column names come
// only from schema.Field.Column and are validated; header text never reaches
// here. ADD COLUMN leaves existing rows untouched (they read the default).
// An existing column whose type does not fit the field's kind is an error
// naming it: changing a type in place could rewrite data BI users rely on.
//
// In cluster mode the replicated shard tables are altered ON CLUSTER and the
// Distributed table on every server; that needs every server up. A load
// (BeginLoad) only goes to every server when the connected one lacked a
// column, so a replica that is down does not stop loads; Migrate always does.
func (s *Store) EnsureContactColumns(ctx context.Context, fields []schema.Field) error {
	return s.ensureContactColumns(ctx, fields, false)
}

func (s *Store) ensureContactColumns(ctx context.Context, fields []schema.Field, everyServer bool) error {
	seen := map[string]schema.Kind{}
	for _, f := range fields {
		if err := validContactColumn(f.Column); err != nil {
			return fmt.Errorf("contact field %d (%s): %w", f.ID, f.Name, err)
		}
		if k, ok := seen[f.Column]; ok && k != f.Kind {
			return fmt.Errorf("contact column %s is configured twice with kinds %s and %s", f.Column, k, f.Kind)
		}
		seen[f.Column] = f.Kind
	}
	if len(fields) == 0 {
		return nil
	}
	if s.cluster == "" {
		_, err := s.ensureColumnsOn(ctx, s.conn, factTable, "", fields)
		return err
	}
	// Cluster: the shards' replicated tables ON CLUSTER (replication carries
	// the change to the peers), then the Distributed table on every server.
	addedLocal, err := s.ensureColumnsOn(ctx, s.conn, factTable+schema.ShardedSuffix, s.onCluster(), fields)
	if err != nil {
		return err
	}
	addedHere, err := s.ensureColumnsOn(ctx, s.conn, factTable, "", fields)
	if err != nil {
		return err
	}
	if !everyServer && !addedLocal && !addedHere {
		return nil
	}
	return s.alterDistributedColumns(ctx, fields)
}

// ensureColumnsOn adds the missing contact columns to table, read and
// altered over conn; onCluster is appended to the table name in the ALTER.
func (s *Store) ensureColumnsOn(ctx context.Context, conn driver.Conn, table, onCluster string, fields []schema.Field) (added bool, err error) {
	cols, err := s.tableColumnsOn(ctx, conn, table)
	if err != nil {
		return false, err
	}
	if len(cols) == 0 {
		return false, fmt.Errorf("add contact columns: table %s.%s does not exist: run Migrate first", s.db, table)
	}
	existing := map[string]string{}
	prev := ""
	for i, c := range cols {
		existing[c.name] = c.typ
		if c.name == contactAnchor && i > 0 {
			prev = cols[i-1].name
		}
	}
	if prev == "" {
		return false, fmt.Errorf("add contact columns: %s.%s has no column %s to place them before", s.db, table, contactAnchor)
	}
	for _, f := range fields {
		if typ, ok := existing[f.Column]; ok {
			if !compatibleType(f.Kind, typ) {
				return false, fmt.Errorf("contact column %s.%s.%s has type %s, but field %d (%s) needs %s: rename the column in the config or migrate it by hand",
					s.db, table, f.Column, typ, f.ID, f.Name, s.contactType(f.Kind))
			}
			continue
		}
		typ := s.contactType(f.Kind)
		q := fmt.Sprintf("ALTER TABLE %s%s ADD COLUMN %s %s AFTER %s", s.table(table), onCluster, quoteIdent(f.Column), typ, quoteIdent(prev))
		if err := conn.Exec(ctx, q); err != nil {
			err = s.scrub(fmt.Errorf("add contact column %s to %s: %w", f.Column, table, err))
			// ADD COLUMN IF NOT EXISTS does not exist on 18.16: another
			// process may have added it between our read and our ALTER.
			again, rerr := s.tableColumnsOn(ctx, conn, table)
			if rerr != nil || !hasColumn(again, f.Column, f.Kind) {
				return false, err
			}
		}
		existing[f.Column] = typ
		prev = f.Column
		added = true
	}
	return added, nil
}

func hasColumn(cols []columnInfo, name string, k schema.Kind) bool {
	for _, c := range cols {
		if c.name == name {
			return compatibleType(k, c.typ)
		}
	}
	return false
}

// validContactColumn accepts a catalogue column or a custom "cf_" column,
// and refuses the names of the table's own columns.
func validContactColumn(col string) error {
	ok := schema.ValidIdentifier(col)
	if rest, custom := strings.CutPrefix(col, "cf_"); custom {
		ok = schema.ValidIdentifier(rest)
	}
	if !ok {
		return fmt.Errorf("column name %q is not a valid identifier", col)
	}
	if isFixedColumn(col) {
		return fmt.Errorf("column name %q is one of email_responses' own columns", col)
	}
	return nil
}

// isFixedColumn reports whether col is a column of email_responses that
// migration 0001 defines (not a contact column).
func isFixedColumn(col string) bool {
	switch col {
	case "account", "event_time", "event_date", "user_id", "source", "source_raw",
		"invalid_utf8", "response_key", "export_id", "window_start", "window_end", "loaded_at":
		return true
	}
	for _, id := range schema.AnalysisFieldIDs() {
		if f, _ := schema.AnalysisField(id); f.Column == col {
			return true
		}
	}
	return false
}
