package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

// Shared defaults once at the top level; three accounts that override what
// differs. clickhouse and http are global.
const threeAccounts = `
timezone: Europe/Vienna
emarsys: {auth: wsse, user: shared_user, secret: "${SECRET_DEFAULT}", poll_max: 1m}
export: {contact_fields: [1, 3], sources: [mail_open]}
ftp: {host: ftp.example.com, user: f, password: "${FTP_PASSWORD}", folder: exports}
schedule: {window: 6h, concurrency: 2}
clickhouse: {addr: "ch:9000", database: warehouse}
http: {listen: ""}
accounts:
  - account: shop_at
  - account: shop_de
    timezone: Europe/Berlin
    emarsys: {secret: "${SECRET_DE}"}
    ftp: {folder: de}
  - account: shop_uk
    timezone: Europe/London
    emarsys: {auth: oauth2, user: client_uk}
    export: {contact_fields: [1, 2, 3]}
    ftp: {host: ftp.example.co.uk, port: 2121}
    schedule: {window: 1h, cron: "5 * * * *"}
`

func TestParseAccountsInherits(t *testing.T) {
	cs, err := ParseAccounts([]byte(threeAccounts), env(map[string]string{"SECRET_DEFAULT": "s-all", "SECRET_DE": "s-de", "FTP_PASSWORD": "pw-ftp"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 {
		t.Fatalf("%d accounts, want 3", len(cs))
	}
	at, de, uk := cs[0], cs[1], cs[2]
	if at.Account != "shop_at" || de.Account != "shop_de" || uk.Account != "shop_uk" {
		t.Fatalf("names: %s %s %s", at.Account, de.Account, uk.Account)
	}
	// shop_at: everything from the top level.
	if at.TimeZone != "Europe/Vienna" || at.Emarsys.Secret != "s-all" || at.Emarsys.User != "shared_user" || at.FTP.Folder != "exports" ||
		at.Emarsys.Auth != "wsse" || at.Emarsys.PollMax != time.Minute || at.Schedule.Window != 6*time.Hour {
		t.Errorf("shop_at did not inherit: %+v", at)
	}
	// shop_de: one key of emarsys and ftp replaced, the rest of each mapping kept.
	if de.TimeZone != "Europe/Berlin" || de.Loc.String() != "Europe/Berlin" || de.Emarsys.Secret != "s-de" || de.Emarsys.User != "shared_user" ||
		de.Emarsys.PollMax != time.Minute || de.FTP.Folder != "de" || de.FTP.Host != "ftp.example.com" || de.FTP.Password != "pw-ftp" {
		t.Errorf("shop_de merge: tz=%s secret=%s user=%s poll_max=%s ftp=%+v", de.TimeZone, de.Emarsys.Secret, de.Emarsys.User, de.Emarsys.PollMax, de.FTP)
	}
	// shop_uk: own auth mode (so v3 paths), list replaced, own FTP and schedule;
	// defaults still applied per account (deliver port follows the port).
	if uk.Emarsys.Auth != "oauth2" || !strings.HasSuffix(uk.Emarsys.BaseURL, "/api/v3/") || uk.Emarsys.User != "client_uk" ||
		len(uk.Export.ContactFields) != 3 || len(uk.Export.Sources) != 1 || uk.FTP.Host != "ftp.example.co.uk" || uk.FTP.Port != 2121 ||
		uk.FTP.DeliverPort != 2121 || uk.FTP.Folder != "exports" || uk.Schedule.Window != time.Hour || uk.Schedule.Cron != "5 * * * *" ||
		uk.Schedule.Concurrency != 2 {
		t.Errorf("shop_uk: %+v", uk)
	}
	if !strings.HasSuffix(at.Emarsys.BaseURL, "/api/v2/") {
		t.Errorf("shop_at base_url %s: wsse wants v2", at.Emarsys.BaseURL)
	}
	for _, c := range cs {
		if c.ClickHouse.Addr != "ch:9000" || c.ClickHouse.Database != "warehouse" || c.HTTP.Addr() != "" {
			t.Errorf("%s: global keys not shared: %+v %q", c.Account, c.ClickHouse, c.HTTP.Addr())
		}
	}
	// Entries never share mutable state: changing one leaves the others.
	de.Export.ContactFields[0] = 99
	if at.Export.ContactFields[0] != 1 {
		t.Error("accounts share a slice")
	}
	if got := AllSecrets(cs); strings.Join(got, ",") != "s-all,pw-ftp,s-de" {
		t.Errorf("AllSecrets = %v", got)
	}
}

// A file without accounts: is one account, exactly as Parse reads it.
func TestParseAccountsSingle(t *testing.T) {
	vars := env(map[string]string{"SECRET": "s3", "FTP_PASSWORD": "pw"})
	cs, err := ParseAccounts([]byte(minimal), vars)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := Parse([]byte(minimal), vars)
	if len(cs) != 1 || cs[0].Account != "shop" || cs[0].Emarsys.Secret != "s3" || cs[0].Emarsys.BaseURL != c.Emarsys.BaseURL || cs[0].FTP != c.FTP {
		t.Fatalf("single-account file: %+v", cs)
	}
}

func TestParseAccountsErrorsNameTheEntry(t *testing.T) {
	vars := env(map[string]string{"SECRET": "s3", "FTP_PASSWORD": "pw"})
	base := `
emarsys: {user: u, secret: "${SECRET}"}
export: {contact_fields: [1, 3]}
ftp: {host: ftp.example.com, user: f, password: "${FTP_PASSWORD}"}
`
	cases := []struct{ name, yaml, want string }{
		{"duplicate", base + "accounts: [{account: a}, {account: b}, {account: a}]", `accounts[2].account: "a" is already the name of accounts[0]`},
		{"unnamed", base + "accounts: [{account: a}, {timezone: UTC}]", "accounts[1].account: is required"},
		{"bad value", base + "accounts: [{account: a}, {account: b, ftp: {port: 70000}}]", "accounts[1].ftp.port: must be 1-65535, got 70000"},
		{"missing secret", "emarsys: {user: u}\nexport: {contact_fields: [1]}\nftp: {host: h, user: f}\naccounts: [{account: a, emarsys: {secret: x}}, {account: b}]",
			"accounts[1].emarsys.secret: is required"},
		{"env var", base + "accounts: [{account: a, ftp: {password: \"${NOPE}\"}}]", "accounts[0].ftp.password: environment variable NOPE is not set"},
		{"global key", base + "accounts: [{account: a, clickhouse: {database: x}}]", "accounts[0].clickhouse: is global"},
		{"unknown key", base + "accounts: [{account: a, ftpp: {}}]", "accounts[0].ftpp: unknown key"},
		{"unknown nested key", base + "accounts: [{account: a, ftp: {hots: x}}]", "accounts[0]."},
		{"unknown nested key named", base + "accounts: [{account: a, ftp: {hots: x}}]", "hots"},
		{"top-level account", "account: x\n" + base + "accounts: [{account: a}]", "account: with an accounts: list"},
		{"empty list", base + "accounts: []", "accounts: must be a list"},
		{"bad name", base + "accounts: [{account: Shop-AT}]", `accounts[0].account: "Shop-AT" must be lowercase`},
		{"global problem keeps its name", base + "clickhouse: {addr: nope}\naccounts: [{account: a}]", "\nclickhouse.addr: must be host:port"},
	}
	for _, tc := range cases {
		_, err := ParseAccounts([]byte(tc.yaml), vars)
		if err == nil || !strings.Contains("\n"+err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

// The example file's commented accounts: block, switched on, is valid.
func TestExampleAccountsBlock(t *testing.T) {
	b, err := os.ReadFile("../../configs/emarsys-etl.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	on := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "account:") {
			continue
		}
		if strings.HasPrefix(l, "# accounts:") {
			on = true
		}
		if on {
			l = strings.TrimPrefix(l, "# ")
		}
		lines = append(lines, l)
	}
	if !on {
		t.Fatal("the example has no accounts: block")
	}
	cs, err := ParseAccounts([]byte(strings.Join(lines, "\n")), func(k string) (string, bool) { return "v-" + k, true })
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Account != "shop_at" || cs[1].Account != "shop_de" || cs[1].Emarsys.Secret != "v-EMARSYS_SECRET_DE" ||
		cs[0].Emarsys.Secret != "v-EMARSYS_SECRET" || cs[1].FTP.Folder != "exports/de" || cs[1].FTP.Host != cs[0].FTP.Host || cs[1].TimeZone != "Europe/Berlin" {
		t.Errorf("example accounts: %+v", cs)
	}
}
