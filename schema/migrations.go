package schema

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// The DDL ships inside the binary so that a deployed version always carries
// exactly the schema it was built and tested against.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// DefaultDatabase is the database the tables live in when the config names none.
const DefaultDatabase = "emarsys"

// dbPlaceholder marks where the (validated, quoted) database name goes in a
// migration file. A placeholder rather than text/template: the files are SQL
// that a reader should be able to paste into clickhouse-client after one
// search-and-replace, and nothing but this one name is ever substituted.
const dbPlaceholder = "{{db}}"

// Migration is one versioned DDL file, rendered for a database.
type Migration struct {
	Version    uint32   // from the file name: 0001_init.sql -> 1
	Name       string   // from the file name: 0001_init.sql -> init
	Statements []string // in file order; each is idempotent (IF NOT EXISTS)
}

// Migrations returns the embedded migrations for database db, ordered by
// version. Versions must run 1, 2, 3, ... without gaps so that "applied up to
// N" is a complete description of a database.
func Migrations(db string) ([]Migration, error) { return MigrationsFor(db, "") }

// MigrationsFor renders the migrations for db on one server (cluster "") or
// ON CLUSTER cluster with Replicated engines and Distributed tables (see
// cluster.go for the placeholders).
func MigrationsFor(db, cluster string) ([]Migration, error) {
	if cluster != "" && !ValidClusterName(cluster) {
		return nil, fmt.Errorf("render migrations: cluster name %q must be letters, digits and _", cluster)
	}
	if !ValidIdentifier(db) {
		return nil, fmt.Errorf("render migrations: database name %q must be lowercase letters, digits and _, starting with a letter", db)
	}
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("list embedded migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		m, err := parseMigrationName(e.Name())
		if err != nil {
			return nil, err
		}
		body, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		m.Statements, err = renderCluster(splitStatements(strings.ReplaceAll(string(body), dbPlaceholder, "`"+db+"`")), db, cluster)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		if len(m.Statements) == 0 {
			return nil, fmt.Errorf("migration %s holds no statement", e.Name())
		}
		for _, s := range m.Statements {
			if strings.Contains(s, "{{") {
				return nil, fmt.Errorf("migration %s: unknown placeholder in %.60q", e.Name(), s)
			}
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != uint32(i+1) {
			return nil, fmt.Errorf("migrations: expected version %d, found %d (%s): versions must be contiguous from 1", i+1, m.Version, m.Name)
		}
	}
	return out, nil
}

// parseMigrationName reads "0001_init.sql" as version 1, name "init".
func parseMigrationName(file string) (Migration, error) {
	base := strings.TrimSuffix(file, ".sql")
	num, name, ok := strings.Cut(base, "_")
	if !ok || len(num) != 4 || !ValidIdentifier(name) {
		return Migration{}, fmt.Errorf("migration file %q: name must look like 0001_some_name.sql", file)
	}
	v, err := strconv.ParseUint(num, 10, 32)
	if err != nil || v == 0 {
		return Migration{}, fmt.Errorf("migration file %q: version must be a number from 0001", file)
	}
	return Migration{Version: uint32(v), Name: name}, nil
}

// splitStatements drops "--" comment lines and splits on a ';' that ends a
// line. The native protocol runs one statement per query, and the DDL files
// never hold a ';' inside a literal at a line end, so this is enough.
func splitStatements(sql string) []string {
	var (
		out []string
		cur strings.Builder
	)
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	for line := range strings.SplitSeq(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		if strings.HasSuffix(trimmed, ";") {
			cur.WriteString(strings.TrimSuffix(strings.TrimRight(line, " \t\r"), ";"))
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return out
}
