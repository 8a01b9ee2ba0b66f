package config

import (
	"os"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const minimal = `
account: shop
emarsys: {user: u, secret: "${SECRET}"}
export: {contact_fields: [1, 3]}
ftp: {host: ftp.example.com, user: f, password: "${FTP_PASSWORD}"}
`

func TestParseMinimalAppliesDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), env(map[string]string{"SECRET": "s3", "FTP_PASSWORD": "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Emarsys.Secret != "s3" || c.FTP.Password != "pw" {
		t.Fatalf("secrets not expanded: %q %q", c.Emarsys.Secret, c.FTP.Password)
	}
	if c.TimeZone != "Europe/Vienna" || c.Loc.String() != "Europe/Vienna" {
		t.Fatalf("time zone default: %q", c.TimeZone)
	}
	if c.Export.Delimiter != ";" || !*c.Export.Header || c.ClickHouse.Database != "emarsys" || c.FTP.Port != 21 {
		t.Fatalf("defaults: %+v", c)
	}
	if c.FTP.DeliverHost != "ftp.example.com" || c.FTP.DeliverPort != 21 {
		t.Fatalf("deliver address defaults to the read address: %s:%d", c.FTP.DeliverHost, c.FTP.DeliverPort)
	}
	red := c.Redacted()
	if red.Emarsys.Secret != "***" || red.FTP.Password != "***" || c.Emarsys.Secret != "s3" {
		t.Fatal("Redacted must mask a copy")
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	b, err := os.ReadFile("../../configs/emarsys-etl.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(b, env(map[string]string{"EMARSYS_USER": "u", "EMARSYS_SECRET": "s", "FTP_PASSWORD": "p", "CLICKHOUSE_PASSWORD": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Account != "shop_at" || len(c.Export.ContactFields) != 6 || c.Schedule.StartTime.IsZero() {
		t.Fatalf("example config read wrong: %+v", c)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	vars := env(map[string]string{"SECRET": "s3", "FTP_PASSWORD": "pw"})
	cases := []struct {
		name, yaml, want string
	}{
		{"missing env", strings.Replace(minimal, "${SECRET}", "${NOPE}", 1), "emarsys.secret: environment variable NOPE is not set"},
		{"forbidden contact field", strings.Replace(minimal, "[1, 3]", "[1, 27]", 1), "export.contact_fields: Invalid contact field id: 27"},
		{"unknown key", minimal + "colour: blue\n", "colour: unknown key"},
		{"unknown nested key", minimal + "schedule: {windw: 1h}\n", "schedule.windw: unknown key"},
		{"wrong type", minimal + "schedule: {cron: \"* * * * *\",\n  window: abc}\n", `schedule.window: "abc" is not a duration`},
		{"wrong type in a list", strings.Replace(minimal, "[1, 3]", "[1, x]", 1), `export.contact_fields`},
		{"negative timeout", strings.Replace(minimal, "{user: u,", "{user: u, export_timeout: -5m,", 1), "emarsys.export_timeout: must be a positive duration"},
		{"key twice", minimal + "timezone: UTC\ntimezone: UTC\n", "timezone: is set twice"},
		{"explicit zero attempts", minimal + "schedule: {attempts: 0}\n", "schedule.attempts: must be 1-20, got 0"},
		{"explicit zero loads", minimal + "schedule: {loads: 0}\n", "schedule.loads: must be 1-16, got 0"},
		{"quoted number from env", strings.Replace(minimal, "host: ftp.example.com", "host: ftp.example.com, port: \"${SECRET}\"", 1), `ftp.port: "s3" is not a whole number`},
		{"bad cron", minimal + "schedule: {cron: \"every day\"}\n", "schedule.cron:"},
		{"overlap too long", minimal + "schedule: {window: 1h, overlap: 2h}\n", "schedule.overlap: must be at least 0 and shorter than schedule.window"},
		{"bad timezone", minimal + "timezone: Mars/Olympus\n", "timezone: unknown time zone"},
		{"bad after_load", strings.Replace(minimal, "host: ftp.example.com", "host: ftp.example.com, after_load: shred", 1), "ftp.after_load: must be keep, delete or archive"},
		{"too many fields", strings.Replace(minimal, "[1, 3]", "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]", 1), "Invalid number of fields"},
		{"bad database name", minimal + "clickhouse: {database: \"x; DROP TABLE y\"}\n", "clickhouse.database:"},
		{"custom field without declaration", strings.Replace(minimal, "[1, 3]", "[1, 101]", 1), "declare it under export.custom_fields"},
		{"custom column smuggling SQL", strings.Replace(minimal, "[1, 3]}", "[1, 101], custom_fields: {101: {column: \"a` String, b\"}}}", 1), "export.custom_fields:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), vars)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	_, err := Parse([]byte(strings.Replace(minimal, "[1, 3]}", "[1, 3], delimiter: \"|\"}", 1)), vars)
	if err == nil || !strings.Contains(err.Error(), `export.delimiter: must be ";" or ","`) {
		t.Fatalf("delimiter: %v", err)
	}
	_, err = Parse([]byte(strings.Replace(minimal, "[1, 3]}", "[1, 3], analysis_fields: [1, 5]}", 1)), vars)
	if err == nil || !strings.Contains(err.Error(), "export.analysis_fields: must include 8 (Time)") {
		t.Fatalf("time field: %v", err)
	}
}

// A plain ${VAR} takes the type of its value; an explicit zero is not
// replaced by the default.
func TestEnvNumbersAndExplicitZeros(t *testing.T) {
	vars := env(map[string]string{"SECRET": "null", "FTP_PASSWORD": "123", "PORT": "2121", "LAG": "0s", "HDR": "false"})
	y := `
account: shop
emarsys:
  user: u
  secret: ${SECRET}
export: {contact_fields: [1, 3]}
ftp:
  host: ftp.example.com
  port: ${PORT}
  user: f
  password: ${FTP_PASSWORD}
schedule:
  lag: ${LAG}
`
	c, err := Parse([]byte(y), vars)
	if err != nil {
		t.Fatal(err)
	}
	if c.FTP.Port != 2121 || c.Schedule.Lag != 0 || c.FTP.Password != "123" || c.Emarsys.Secret != "null" {
		t.Fatalf("port %d lag %s password %q secret %q", c.FTP.Port, c.Schedule.Lag, c.FTP.Password, c.Emarsys.Secret)
	}
	c, err = Parse([]byte(strings.Replace(minimal, "[1, 3]}", "[1, 3], max_reject_share: 0}", 1)), vars)
	if err != nil {
		t.Fatal(err)
	}
	if c.Export.MaxRejectShare != 0 {
		t.Fatalf("max_reject_share %v, want 0 as written", c.Export.MaxRejectShare)
	}
}

// A secret from the environment is kept as is, whatever YAML would read it as.
func TestSecretShapes(t *testing.T) {
	for _, v := range []string{"2026-01-01", "1e3", "0x10", "true", ".inf", "*abc", "a: b", "#x", "- x", "[x", "'q", "\"q", "{x", "012", "1_000", "<<", "~x", " lead", "trail ", "a\nb", "!tag", "%x", "|x", ">x", "?x", "@x", "`x"} {
		y := "account: shop\nemarsys:\n  user: u\n  secret: ${S}\nexport: {contact_fields: [1, 3]}\nftp: {host: h, user: f, password: p}\n"
		c, err := Parse([]byte(y), func(k string) (string, bool) { return v, true })
		if err != nil {
			t.Errorf("%q: %v", v, err)
			continue
		}
		if c.Emarsys.Secret != v {
			t.Errorf("%q: got %q", v, c.Emarsys.Secret)
		}
	}
}

func TestEveryUnsetVariableReportedAtOnce(t *testing.T) {
	_, err := Parse([]byte(minimal), env(map[string]string{}))
	if err == nil {
		t.Fatal("unset variables accepted")
	}
	for _, want := range []string{"emarsys.secret: environment variable SECRET is not set", "ftp.password: environment variable FTP_PASSWORD is not set"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// The configurations docker-compose runs are valid too.
func TestComposeConfigsAreValid(t *testing.T) {
	for _, f := range []string{"../../configs/emarsys-etl.compose.yaml", "../../configs/emarsys-etl.compose-cluster.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(b, env(map[string]string{"EMARSYS_SECRET": "s", "FTP_PASSWORD": "p", "CLICKHOUSE_PASSWORD": ""}))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if c.Account != "demo" || c.FTP.Host != "emarsys-sim" {
			t.Fatalf("%s read wrong: %+v", f, c)
		}
	}
}

func TestRejectAllowance(t *testing.T) {
	vars := env(map[string]string{"SECRET": "s3", "FTP_PASSWORD": "pw"})
	c, err := Parse([]byte(minimal), vars)
	if err != nil || c.Export.RejectAllowance != 5 {
		t.Fatalf("default allowance %d, %v", c.Export.RejectAllowance, err)
	}
	c, err = Parse([]byte(strings.Replace(minimal, "[1, 3]}", "[1, 3], reject_allowance: 0}", 1)), vars)
	if err != nil || c.Export.RejectAllowance != 0 {
		t.Fatalf("explicit 0: %d, %v", c.Export.RejectAllowance, err)
	}
	if _, err := Parse([]byte(strings.Replace(minimal, "[1, 3]}", "[1, 3], reject_allowance: -1}", 1)), vars); err == nil || !strings.Contains(err.Error(), "export.reject_allowance: must not be negative") {
		t.Fatalf("negative: %v", err)
	}
}

func TestClickHouseCompression(t *testing.T) {
	vars := env(map[string]string{"SECRET": "s3", "FTP_PASSWORD": "pw"})
	c, err := Parse([]byte(minimal), vars)
	if err != nil || c.ClickHouse.Compression != "auto" || c.ClickHouse.BatchRows != 2500 {
		t.Fatalf("defaults: compression %q, batch_rows %d, %v", c.ClickHouse.Compression, c.ClickHouse.BatchRows, err)
	}
	c, err = Parse([]byte(minimal+"clickhouse: {compression: lz4}\n"), vars)
	if err != nil || c.ClickHouse.Compression != "lz4" {
		t.Fatalf("lz4: %q, %v", c.ClickHouse.Compression, err)
	}
	if _, err := Parse([]byte(minimal+"clickhouse: {compression: zstd}\n"), vars); err == nil || !strings.Contains(err.Error(), `clickhouse.compression: must be auto, lz4 or none, got "zstd"`) {
		t.Fatalf("zstd: %v", err)
	}
}
