// Package config reads and checks the emarsys-etl YAML configuration.
//
// Secrets come in through ${ENV_VAR} expansion; a bad value stops start-up with
// a message that names the key and what is wrong with it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/emarsys-etl/emarsys-etl/schema"
)

// Config is the whole file.
type Config struct {
	Account    string     `yaml:"account"`
	TimeZone   string     `yaml:"timezone"`
	Emarsys    Emarsys    `yaml:"emarsys"`
	Export     Export     `yaml:"export"`
	FTP        FTP        `yaml:"ftp"`
	ClickHouse ClickHouse `yaml:"clickhouse"`
	Schedule   Schedule   `yaml:"schedule"`
	HTTP       HTTP       `yaml:"http"`
	Notify     Notify     `yaml:"notify"`

	// Loc is TimeZone loaded; set by Validate.
	Loc *time.Location `yaml:"-"`
}

// Emarsys is the API account.
type Emarsys struct {
	BaseURL string `yaml:"base_url"`
	// Auth is oauth2 (default; v3 paths) or wsse (v2 paths): base_url's
	// /api/v2/ or /api/v3/ is made to match it.
	Auth string `yaml:"auth"`
	// TokenURL is the OAuth 2.0 token endpoint; default the vendor's for
	// api.emarsys.net, else /oauth2/token on base_url's host.
	TokenURL      string        `yaml:"token_url"`
	User          string        `yaml:"user"`      // WSSE user or OAuth client id
	Secret        string        `yaml:"secret"`    // WSSE secret or OAuth client secret
	PageRows      int           `yaml:"page_rows"` // rows per GET export/{id}/data page (local)
	RequestTimout time.Duration `yaml:"request_timeout"`
	PollInitial   time.Duration `yaml:"poll_initial"`
	PollMax       time.Duration `yaml:"poll_max"`
	ExportTimeout time.Duration `yaml:"export_timeout"`
	StuckAfter    time.Duration `yaml:"stuck_after"`
}

// CustomField declares an account's own contact field (id above 100).
type CustomField struct {
	Column string `yaml:"column"`
	Header string `yaml:"header"`
	Type   string `yaml:"type"` // string (default), uint64, date
}

// Export is the export request sent for every window.
type Export struct {
	// DistributionMethod is ftp (default: the vendor uploads to ftp.*) or
	// local (the file is downloaded from the API).
	DistributionMethod string              `yaml:"distribution_method"`
	ContactFields      []int               `yaml:"contact_fields"`
	AnalysisFields     []int               `yaml:"analysis_fields"`
	Sources            []string            `yaml:"sources"`
	Delimiter          string              `yaml:"delimiter"`
	Language           string              `yaml:"language"`
	Header             *bool               `yaml:"header"`
	EmailID            int64               `yaml:"email_id"`
	ContactList        int64               `yaml:"contactlist"`
	CustomFields       map[int]CustomField `yaml:"custom_fields"`
	MaxRejectShare     float64             `yaml:"max_reject_share"`
	// RejectAllowance is how many rejected rows any window may have whatever
	// its size, so one broken row cannot fail a small window for ever.
	RejectAllowance int `yaml:"reject_allowance"`
}

// FTP is the server Emarsys delivers to and the ETL reads from.
type FTP struct {
	Host     string        `yaml:"host"`
	Port     int           `yaml:"port"`
	User     string        `yaml:"user"`
	Password string        `yaml:"password"`
	Folder   string        `yaml:"folder"`
	Timeout  time.Duration `yaml:"timeout"`
	// DeliverHost/DeliverPort: the address Emarsys must use when it differs from
	// the one the ETL reads from (NAT, a public name); default Host/Port.
	DeliverHost   string `yaml:"deliver_host"`
	DeliverPort   int    `yaml:"deliver_port"`
	AfterLoad     string `yaml:"after_load"` // keep | delete | archive
	ArchiveFolder string `yaml:"archive_folder"`
	// TLS: explicit FTPS (AUTH TLS) when the ETL reads; the certificate is
	// checked against CAFile (PEM), or the system's roots when empty.
	TLS    bool   `yaml:"tls"`
	CAFile string `yaml:"ca_file"`
}

// ClickHouse is the warehouse.
type ClickHouse struct {
	Addr      string `yaml:"addr"`
	Database  string `yaml:"database"`
	User      string `yaml:"user"`
	Password  string `yaml:"password"`
	BatchRows int    `yaml:"batch_rows"`
	// Compression of the native protocol: auto (the default) sends LZ4 to a
	// remote server and nothing to one on this host, as clickhouse-client
	// does: on loopback compressing costs CPU on both ends and saves nothing.
	Compression string `yaml:"compression"`
	// Cluster switches cluster mode on: the name of the cluster in the
	// servers' remote_servers (README, "Cluster mode"). Empty: one server.
	Cluster string `yaml:"cluster"`
}

// Notify is the notification_url receiver, served on http.listen.
type Notify struct {
	// PublicURL is the base URL at which Emarsys reaches http.listen (e.g.
	// https://etl.example.com); empty: no notification_url, polling only.
	PublicURL string `yaml:"public_url"`
}

// DefaultListen is where the daemon serves /metrics, /healthz and /readyz
// unless http.listen says otherwise.
const DefaultListen = "127.0.0.1:8790"

// HTTP is the daemon's listener (metrics, health, mounted handlers).
type HTTP struct {
	// Listen is host:port; nil (key absent) means DefaultListen, "" disables
	// the listener: a pointer tells the two apart.
	Listen *string `yaml:"listen"`
}

// Addr is the address to listen on, "" when the listener is disabled.
func (h HTTP) Addr() string {
	if h.Listen == nil {
		return DefaultListen
	}
	return *h.Listen
}

// Schedule says when and in which windows exports run.
type Schedule struct {
	Cron        string        `yaml:"cron"`
	Window      time.Duration `yaml:"window"`
	Lag         time.Duration `yaml:"lag"`
	Overlap     time.Duration `yaml:"overlap"`
	Start       string        `yaml:"start"` // first instant the daemon loads when the ledger is empty (RFC 3339 or YYYY-MM-DD, UTC)
	Concurrency int           `yaml:"concurrency"`
	// Loads is how many of those windows stream a file into ClickHouse at
	// once; the others wait for their exports meanwhile. A load is CPU-bound
	// on both ends, so more at once only adds memory (README, Performance).
	Loads    int `yaml:"loads"`
	Attempts int `yaml:"attempts"`
	// Grace is how long running windows may go on after SIGTERM/SIGINT
	// before they are cancelled (no new window starts once a stop is asked).
	Grace time.Duration `yaml:"grace"`

	StartTime time.Time `yaml:"-"`
}

// Load reads, expands and validates a config file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML, expanding ${VAR} in every value with lookup.
func Parse(b []byte, lookup func(string) (string, bool)) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if err := expandNode(&root, "", lookup); err != nil {
		return nil, err
	}
	var c Config
	if len(root.Content) > 0 {
		doc := mustMarshal(&root)
		dec := yaml.NewDecoder(bytes.NewReader(doc))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			return nil, keyedDecodeError(err, doc)
		}
	}
	set := c
	c.applyDefaults()
	c.keepExplicitZeros(set, setKeys(&root))
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func mustMarshal(n *yaml.Node) []byte {
	b, err := yaml.Marshal(n)
	if err != nil {
		panic(err) // a node tree we just decoded always marshals
	}
	return b
}

var envRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandNode replaces ${VAR} in scalar values; the path names the key in
// errors, and every unset variable is reported at once, not one per run.
func expandNode(n *yaml.Node, path string, lookup func(string) (string, bool)) error {
	var errs []string
	expandInto(n, path, lookup, &errs)
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

func expandInto(n *yaml.Node, path string, lookup func(string) (string, bool), errs *[]string) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			expandInto(c, p, lookup, errs)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			expandInto(n.Content[i+1], p, lookup, errs)
		}
	case yaml.ScalarNode:
		var missing string
		orig := n.Value
		n.Value = envRe.ReplaceAllStringFunc(n.Value, func(m string) string {
			name := envRe.FindStringSubmatch(m)[1]
			v, ok := lookup(name)
			if !ok && missing == "" {
				missing = name
			}
			return v
		})
		if missing != "" {
			*errs = append(*errs, fmt.Sprintf("%s: environment variable %s is not set", path, missing))
			return
		}
		if n.Value != orig && n.Tag == "!!str" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			// A plain ${VAR} takes the type of its value (port: ${FTP_PORT});
			// string keys still get the text as is. A value YAML reads as
			// null stays a string, so a secret "null" is not lost.
			switch n.Value {
			case "", "~", "null", "Null", "NULL":
			default:
				n.Tag = ""
			}
		}
	}
}

// keyedDecodeError rewrites the decoder's "line N: ..." messages (lines of
// doc, the expanded document, not of the file) into messages naming the key.
func keyedDecodeError(err error, doc []byte) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var root yaml.Node
	keys := map[int][]keyAt{}
	if yaml.Unmarshal(doc, &root) == nil {
		lineKeys(&root, "", keys)
	}
	lineRe := regexp.MustCompile(`^line ([0-9]+): (.*)$`)
	typeRe := regexp.MustCompile("^cannot unmarshal !!\\w+ `(.*)` into (.*)$")
	dupRe := regexp.MustCompile(`^mapping key "(.*)" already defined at line [0-9]+$`)
	var out []string
	for _, m := range te.Errors {
		var on []keyAt
		msg := m
		if sm := lineRe.FindStringSubmatch(m); sm != nil {
			var line int
			fmt.Sscan(sm[1], &line)
			on, msg = keys[line], sm[2]
		}
		// The key on that line whose name (or value) the message quotes.
		pick := func(name, value string) string {
			for _, k := range on {
				if (name != "" && (k.path == name || strings.HasSuffix(k.path, "."+name))) || (value != "" && k.value == value) {
					return k.path
				}
			}
			if len(on) > 0 {
				return on[0].path
			}
			return name
		}
		var key string
		switch tm, dm := typeRe.FindStringSubmatch(msg), dupRe.FindStringSubmatch(msg); {
		case strings.HasPrefix(msg, "field ") && strings.Contains(msg, " not found in type "):
			key, msg = pick(strings.Fields(msg)[1], ""), "unknown key (configs/emarsys-etl.yaml shows every key)"
		case dm != nil:
			key, msg = pick(dm[1], ""), "is set twice"
		case tm != nil:
			want := map[string]string{
				"time.Duration": "a duration such as 90s, 15m or 6h",
				"int":           "a whole number", "int64": "a whole number",
				"float64": "a number", "bool": "true or false", "string": "a text",
				"[]int": "a list of numbers such as [1, 2, 3]", "[]string": "a list such as [a, b]",
			}[tm[2]]
			if want == "" {
				want = "of the right type"
			}
			key, msg = pick("", tm[1]), fmt.Sprintf("%q is not %s", tm[1], want)
		default:
			key = pick("", "")
		}
		if key == "" {
			key = "config"
		}
		out = append(out, key+": "+msg)
	}
	return errors.New(strings.Join(out, "\n"))
}

type keyAt struct{ path, value string }

// lineKeys maps each line of a document to the keys written on it, with
// their scalar values.
func lineKeys(n *yaml.Node, path string, out map[int][]keyAt) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			lineKeys(c, path, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if c.Kind == yaml.ScalarNode {
				out[c.Line] = append(out[c.Line], keyAt{path, c.Value})
			}
			lineKeys(c, p, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			v := n.Content[i+1]
			k := keyAt{path: p}
			if v.Kind == yaml.ScalarNode {
				k.value = v.Value
			}
			out[n.Content[i].Line] = append(out[n.Content[i].Line], k)
			lineKeys(v, p, out)
		}
	}
}

// setKeys lists the key paths a document sets (emarsys, emarsys.secret, ...).
func setKeys(n *yaml.Node) map[string]bool {
	out := map[string]bool{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				out[p] = true
				walk(n.Content[i+1], p)
			}
		}
	}
	walk(n, "")
	return out
}

// keepExplicitZeros undoes defaults for numbers the file sets to zero on
// purpose: lag: 0s and max_reject_share: 0 mean zero, and attempts: 0 or
// timeout: 0s are errors Validate names, not a silent default. set is the
// config as decoded, before applyDefaults.
func (c *Config) keepExplicitZeros(set Config, keys map[string]bool) {
	dur := map[string][2]*time.Duration{
		"emarsys.request_timeout": {&c.Emarsys.RequestTimout, &set.Emarsys.RequestTimout},
		"emarsys.poll_initial":    {&c.Emarsys.PollInitial, &set.Emarsys.PollInitial},
		"emarsys.poll_max":        {&c.Emarsys.PollMax, &set.Emarsys.PollMax},
		"emarsys.export_timeout":  {&c.Emarsys.ExportTimeout, &set.Emarsys.ExportTimeout},
		"emarsys.stuck_after":     {&c.Emarsys.StuckAfter, &set.Emarsys.StuckAfter},
		"ftp.timeout":             {&c.FTP.Timeout, &set.FTP.Timeout},
		"schedule.window":         {&c.Schedule.Window, &set.Schedule.Window},
		"schedule.lag":            {&c.Schedule.Lag, &set.Schedule.Lag},
		"schedule.grace":          {&c.Schedule.Grace, &set.Schedule.Grace},
	}
	for k, v := range dur {
		if keys[k] {
			*v[0] = *v[1]
		}
	}
	ints := map[string][2]*int{
		"emarsys.page_rows":       {&c.Emarsys.PageRows, &set.Emarsys.PageRows},
		"ftp.port":                {&c.FTP.Port, &set.FTP.Port},
		"ftp.deliver_port":        {&c.FTP.DeliverPort, &set.FTP.DeliverPort},
		"clickhouse.batch_rows":   {&c.ClickHouse.BatchRows, &set.ClickHouse.BatchRows},
		"schedule.concurrency":    {&c.Schedule.Concurrency, &set.Schedule.Concurrency},
		"schedule.loads":          {&c.Schedule.Loads, &set.Schedule.Loads},
		"schedule.attempts":       {&c.Schedule.Attempts, &set.Schedule.Attempts},
		"export.reject_allowance": {&c.Export.RejectAllowance, &set.Export.RejectAllowance},
	}
	for k, v := range ints {
		if keys[k] {
			*v[0] = *v[1]
		}
	}
	if keys["export.max_reject_share"] {
		c.Export.MaxRejectShare = set.Export.MaxRejectShare
	}
}

func (c *Config) applyDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Account, "default")
	def(&c.TimeZone, "Europe/Vienna")
	def(&c.Emarsys.Auth, "oauth2")
	if c.Emarsys.Auth == "wsse" {
		def(&c.Emarsys.BaseURL, "https://api.emarsys.net/api/v2/")
	}
	def(&c.Emarsys.BaseURL, "https://api.emarsys.net/api/v3/")
	if c.Emarsys.PageRows == 0 {
		c.Emarsys.PageRows = 1_000_000
	}
	def(&c.Export.DistributionMethod, "ftp")
	defDur(&c.Emarsys.RequestTimout, 60*time.Second)
	defDur(&c.Emarsys.PollInitial, 5*time.Second)
	defDur(&c.Emarsys.PollMax, 2*time.Minute)
	defDur(&c.Emarsys.ExportTimeout, 3*time.Hour)
	defDur(&c.Emarsys.StuckAfter, 90*time.Minute)
	if len(c.Export.Sources) == 0 {
		c.Export.Sources = []string{"trackable_links", "mail_open"}
	}
	if len(c.Export.AnalysisFields) == 0 {
		c.Export.AnalysisFields = []int{1, 4, 5, 8, 12, 13, 14, 15}
	}
	def(&c.Export.Delimiter, ";")
	def(&c.Export.Language, "en")
	if c.Export.Header == nil {
		t := true
		c.Export.Header = &t
	}
	if c.Export.MaxRejectShare == 0 {
		c.Export.MaxRejectShare = 0.01
	}
	if c.Export.RejectAllowance == 0 {
		c.Export.RejectAllowance = 5
	}
	if c.FTP.Port == 0 {
		c.FTP.Port = 21
	}
	defDur(&c.FTP.Timeout, 30*time.Second)
	defDur(&c.Schedule.Grace, 30*time.Second)
	def(&c.FTP.AfterLoad, "archive")
	def(&c.FTP.ArchiveFolder, "archive")
	def(&c.FTP.DeliverHost, c.FTP.Host)
	if c.FTP.DeliverPort == 0 {
		c.FTP.DeliverPort = c.FTP.Port
	}
	def(&c.ClickHouse.Addr, "127.0.0.1:9000")
	def(&c.ClickHouse.Database, "emarsys")
	def(&c.ClickHouse.User, "default")
	if c.ClickHouse.Compression == "" {
		c.ClickHouse.Compression = "auto"
	}
	if c.ClickHouse.BatchRows == 0 {
		c.ClickHouse.BatchRows = 2500 // measured: the fastest, in the least memory but for 1000 (README, Performance)
	}
	def(&c.Schedule.Cron, "*/15 * * * *")
	defDur(&c.Schedule.Window, 6*time.Hour)
	defDur(&c.Schedule.Lag, 2*time.Hour)
	if c.Schedule.Concurrency == 0 {
		c.Schedule.Concurrency = 2
	}
	if c.Schedule.Loads == 0 {
		c.Schedule.Loads = 1
	}
	if c.Schedule.Attempts == 0 {
		c.Schedule.Attempts = 3
	}
}

// Sources the vendor accepts in getresponses.
var validSources = []string{"trackable_links", "registration_forms", "tell_a_friend", "contact_us",
	"change_profile", "unsubscribe", "mail_open", "complaint", "all"}

// Validate checks every key; the first problem is returned, named by its key.
func (c *Config) Validate() error {
	var errs []string
	bad := func(key, format string, a ...any) {
		errs = append(errs, key+": "+fmt.Sprintf(format, a...))
	}
	if !schema.ValidIdentifier(c.Account) {
		bad("account", "%q must be lowercase letters, digits and _, starting with a letter", c.Account)
	}
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		bad("timezone", "unknown time zone %q", c.TimeZone)
	}
	c.Loc = loc
	if !strings.HasPrefix(c.Emarsys.BaseURL, "http://") && !strings.HasPrefix(c.Emarsys.BaseURL, "https://") {
		bad("emarsys.base_url", "must be an http(s) URL, got %q", c.Emarsys.BaseURL)
	} else if !strings.HasSuffix(c.Emarsys.BaseURL, "/") {
		c.Emarsys.BaseURL += "/"
	}
	switch c.Emarsys.Auth {
	case "oauth2", "wsse":
		c.Emarsys.BaseURL = matchAPIVersion(c.Emarsys.BaseURL, c.Emarsys.Auth)
		if c.Emarsys.Auth == "oauth2" && c.Emarsys.TokenURL == "" {
			c.Emarsys.TokenURL = defaultTokenURL(c.Emarsys.BaseURL)
		}
		if c.Emarsys.Auth == "oauth2" && !strings.HasPrefix(c.Emarsys.TokenURL, "http://") && !strings.HasPrefix(c.Emarsys.TokenURL, "https://") {
			bad("emarsys.token_url", "must be an http(s) URL, got %q", c.Emarsys.TokenURL)
		}
	default:
		bad("emarsys.auth", "must be oauth2 or wsse, got %q", c.Emarsys.Auth)
	}
	if c.Emarsys.PageRows < 1 || c.Emarsys.PageRows > 10_000_000 {
		bad("emarsys.page_rows", "must be 1 to 10000000, got %d", c.Emarsys.PageRows)
	}
	switch c.Export.DistributionMethod {
	case "ftp", "local":
	default:
		bad("export.distribution_method", "Invalid value for distribution_method: %q (valid: ftp, local)", c.Export.DistributionMethod)
	}
	if p := c.Notify.PublicURL; p != "" {
		if !strings.HasPrefix(p, "http://") && !strings.HasPrefix(p, "https://") {
			bad("notify.public_url", "must be an http(s) URL Emarsys can reach, got %q", p)
		}
		if c.HTTP.Addr() == "" {
			bad("notify.public_url", "needs the HTTP listener: set http.listen")
		}
	}
	if c.Emarsys.User == "" {
		bad("emarsys.user", "is required")
	}
	if c.Emarsys.Secret == "" {
		bad("emarsys.secret", "is required (use ${EMARSYS_SECRET} to read it from the environment)")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"emarsys.request_timeout", c.Emarsys.RequestTimout}, {"emarsys.poll_initial", c.Emarsys.PollInitial},
		{"emarsys.poll_max", c.Emarsys.PollMax}, {"emarsys.export_timeout", c.Emarsys.ExportTimeout},
		{"emarsys.stuck_after", c.Emarsys.StuckAfter}, {"ftp.timeout", c.FTP.Timeout},
	} {
		if d.v <= 0 {
			bad(d.key, "must be a positive duration such as 30s or 5m, got %s", d.v)
		}
	}
	if c.Emarsys.PollMax < c.Emarsys.PollInitial {
		bad("emarsys.poll_max", "must not be below emarsys.poll_initial")
	}

	custom, cerr := c.Export.Custom()
	if cerr != nil {
		bad("export.custom_fields", "%v", cerr)
	}
	if len(c.Export.ContactFields) == 0 {
		bad("export.contact_fields", "Invalid number of fields: at least one contact field is required")
	}
	seen := map[int]bool{}
	for _, id := range c.Export.ContactFields {
		if seen[id] {
			bad("export.contact_fields", "field %d is listed twice", id)
		}
		seen[id] = true
		if _, err := schema.ResolveContactField(id, custom); err != nil && cerr == nil {
			bad("export.contact_fields", "%v", err)
		}
	}
	hasTime := false
	seenA := map[int]bool{}
	for _, id := range c.Export.AnalysisFields {
		if _, ok := schema.AnalysisField(id); !ok {
			bad("export.analysis_fields", "Invalid value for analysis_fields: %d (valid: 1, 2, 3, 4, 5, 8, 12, 13, 14, 15)", id)
		}
		if seenA[id] {
			bad("export.analysis_fields", "field %d is listed twice", id)
		}
		seenA[id] = true
		hasTime = hasTime || id == schema.AnalysisTime
	}
	if !hasTime {
		bad("export.analysis_fields", "must include 8 (Time): without it a response cannot be placed in time or deduplicated")
	}
	if n := len(c.Export.ContactFields) + len(c.Export.AnalysisFields); n < 1 || n > 20 {
		bad("export", "Invalid number of fields: contact_fields and analysis_fields together must be 1 to 20, got %d", n)
	}
	for _, s := range c.Export.Sources {
		if !contains(validSources, s) {
			bad("export.sources", "Invalid value for sources: %s (valid: %s)", s, strings.Join(validSources, ", "))
		}
	}
	if c.Export.Delimiter != ";" && c.Export.Delimiter != "," {
		bad("export.delimiter", "must be \";\" or \",\", got %q", c.Export.Delimiter)
	}
	if c.Export.RejectAllowance < 0 {
		bad("export.reject_allowance", "must not be negative, got %d", c.Export.RejectAllowance)
	}
	if c.Export.MaxRejectShare < 0 || c.Export.MaxRejectShare > 1 {
		bad("export.max_reject_share", "must be between 0 and 1, got %v", c.Export.MaxRejectShare)
	}
	if c.Export.EmailID < 0 || c.Export.ContactList < 0 {
		bad("export", "email_id and contactlist must be positive ids")
	}

	if c.FTP.Host == "" && c.Export.DistributionMethod == "ftp" {
		bad("ftp.host", "is required")
	}
	if c.FTP.Port < 1 || c.FTP.Port > 65535 {
		bad("ftp.port", "must be 1-65535, got %d", c.FTP.Port)
	}
	if c.FTP.DeliverPort < 1 || c.FTP.DeliverPort > 65535 {
		bad("ftp.deliver_port", "must be 1-65535, got %d", c.FTP.DeliverPort)
	}
	if c.FTP.User == "" && c.Export.DistributionMethod == "ftp" {
		bad("ftp.user", "is required")
	}
	if strings.Contains(c.FTP.Folder, "..") {
		bad("ftp.folder", "must not contain '..'")
	}
	switch c.FTP.AfterLoad {
	case "keep", "delete", "archive":
	default:
		bad("ftp.after_load", "must be keep, delete or archive, got %q", c.FTP.AfterLoad)
	}
	if c.FTP.CAFile != "" {
		if !c.FTP.TLS {
			bad("ftp.ca_file", "is used only with ftp.tls: true")
		} else if _, err := os.Stat(c.FTP.CAFile); err != nil {
			bad("ftp.ca_file", "%v", err)
		}
	}
	if strings.Contains(c.FTP.ArchiveFolder, "..") {
		bad("ftp.archive_folder", "must not contain '..'")
	}

	if _, _, err := net.SplitHostPort(c.ClickHouse.Addr); err != nil {
		bad("clickhouse.addr", "must be host:port, got %q", c.ClickHouse.Addr)
	}
	if !schema.ValidIdentifier(c.ClickHouse.Database) {
		bad("clickhouse.database", "%q must be lowercase letters, digits and _, starting with a letter", c.ClickHouse.Database)
	}
	if c.ClickHouse.Cluster != "" && !schema.ValidClusterName(c.ClickHouse.Cluster) {
		bad("clickhouse.cluster", "%q must be letters, digits and _ (a cluster of remote_servers)", c.ClickHouse.Cluster)
	}
	if c.ClickHouse.BatchRows < 1000 {
		bad("clickhouse.batch_rows", "must be at least 1000, got %d", c.ClickHouse.BatchRows)
	}
	switch c.ClickHouse.Compression {
	case "auto", "lz4", "none":
	default:
		bad("clickhouse.compression", "must be auto, lz4 or none, got %q", c.ClickHouse.Compression)
	}

	if _, err := cron.ParseStandard(c.Schedule.Cron); err != nil {
		bad("schedule.cron", "%v", err)
	}
	if c.Schedule.Grace < 0 || c.Schedule.Grace > time.Hour {
		bad("schedule.grace", "must be between 0s and 1h, got %s", c.Schedule.Grace)
	}
	if c.Schedule.Window < time.Minute {
		bad("schedule.window", "must be at least 1m, got %s", c.Schedule.Window)
	}
	if c.Schedule.Lag < 0 {
		bad("schedule.lag", "must not be negative")
	}
	if c.Schedule.Overlap < 0 || c.Schedule.Overlap >= c.Schedule.Window {
		bad("schedule.overlap", "must be at least 0 and shorter than schedule.window (%s), got %s", c.Schedule.Window, c.Schedule.Overlap)
	}
	if c.Schedule.Concurrency < 1 || c.Schedule.Concurrency > 16 {
		bad("schedule.concurrency", "must be 1-16, got %d", c.Schedule.Concurrency)
	}
	if c.Schedule.Loads < 1 || c.Schedule.Loads > 16 {
		bad("schedule.loads", "must be 1-16, got %d", c.Schedule.Loads)
	}
	if c.Schedule.Attempts < 1 || c.Schedule.Attempts > 20 {
		bad("schedule.attempts", "must be 1-20, got %d", c.Schedule.Attempts)
	}
	if c.Schedule.Start != "" {
		t, err := ParseDay(c.Schedule.Start)
		if err != nil {
			bad("schedule.start", "%v", err)
		}
		c.Schedule.StartTime = t
	}
	if a := c.HTTP.Addr(); a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("http.listen", "must be host:port or \"\" to disable, got %q", a)
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// matchAPIVersion makes base_url's /api/v2/ or /api/v3/ fit the auth mode:
// the vendor serves OAuth on v3 and WSSE on v2, with the same paths.
func matchAPIVersion(base, auth string) string {
	from, to := "/api/v3/", "/api/v2/"
	if auth == "oauth2" {
		from, to = to, from
	}
	if strings.HasSuffix(base, from) {
		return strings.TrimSuffix(base, from) + to
	}
	return base
}

// defaultTokenURL is the vendor's token endpoint for the vendor's API, else
// /oauth2/token on the API's own host (a simulator, a proxy).
func defaultTokenURL(base string) string {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || u.Hostname() == "api.emarsys.net" {
		return "https://auth.emarsys.net/oauth2/token"
	}
	return u.Scheme + "://" + u.Host + "/oauth2/token"
}

// Custom resolves the custom field declarations into catalogue fields.
func (e Export) Custom() (map[int]schema.Field, error) {
	out := map[int]schema.Field{}
	ids := make([]int, 0, len(e.CustomFields))
	for id := range e.CustomFields {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		cf := e.CustomFields[id]
		kind := schema.KindString
		switch cf.Type {
		case "", "string":
		case "uint64":
			kind = schema.KindUInt64
		case "date":
			kind = schema.KindDate
		default:
			return nil, fmt.Errorf("field %d: type must be string, uint64 or date, got %q", id, cf.Type)
		}
		f, err := schema.CustomField(id, cf.Column, cf.Header, kind)
		if err != nil {
			return nil, err
		}
		out[id] = f
	}
	return out, nil
}

// ContactSchema returns the catalogue fields of the configured contact fields.
func (e Export) ContactSchema() ([]schema.Field, error) {
	custom, err := e.Custom()
	if err != nil {
		return nil, err
	}
	out := make([]schema.Field, 0, len(e.ContactFields))
	for _, id := range e.ContactFields {
		f, err := schema.ResolveContactField(id, custom)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// ParseDay reads a UTC day (YYYY-MM-DD) or an RFC 3339 instant.
func ParseDay(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither YYYY-MM-DD nor an RFC 3339 time", s)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Redacted returns a copy safe to print: every secret replaced by "***".
func (c Config) Redacted() Config {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "***"
	}
	c.Emarsys.Secret = mask(c.Emarsys.Secret)
	c.FTP.Password = mask(c.FTP.Password)
	c.ClickHouse.Password = mask(c.ClickHouse.Password)
	return c
}

// Secrets lists the secret values, for scrubbing text that must never carry them.
func (c Config) Secrets() []string {
	var out []string
	for _, s := range []string{c.Emarsys.Secret, c.FTP.Password, c.ClickHouse.Password} {
		if len(s) >= 3 {
			out = append(out, s)
		}
	}
	return out
}
