package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emarsys-etl/emarsys-etl/schema"
)

// Params is a validated getresponses request.
type Params struct {
	DistributionMethod string    // "ftp" or "local"
	TimeRange          [2]string // as sent
	From, To           time.Time // UTC instants; the export holds From <= t <= To
	ContactFields      []int
	AnalysisFields     []int
	Sources            []string // request values; nil means all
	EmailID            uint64   // 0: every campaign
	ContactList        int64    // accepted, not applied: the simulator has no lists
	Delimiter          rune
	Header             bool
	Language           string
	FTP                *FTPSettings // nil for local
	NotificationURL    string
}

// FTPSettings is where the vendor uploads the file.
type FTPSettings struct {
	Host     string
	Port     int
	Username string
	Password string
	Folder   string
}

// reqError is a refused request: HTTP status, replyCode, replyText.
type reqError struct {
	status, code int
	text         string
}

func (e *reqError) Error() string { return e.text }

func bad(format string, a ...any) *reqError {
	return &reqError{400, 10001, fmt.Sprintf(format, a...)}
}

var languages = []string{"en", "de", "fr", "it", "es", "pl", "cs", "hu", "nl", "pt", "ru", "tr", "zh", "ja", "sv", "da", "fi", "no", "sk", "sl", "hr", "ro", "bg", "el"}

// parseParams validates a getresponses body as the vendor does, in the order
// of its parameter table, and returns the first error found.
func parseParams(body []byte, loc *time.Location) (Params, *reqError) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return Params{}, bad("Invalid JSON in request body")
	}
	for _, k := range []string{"distribution_method", "time_range", "contact_fields", "sources", "analysis_fields"} {
		if v, ok := m[k]; !ok || string(v) == "null" {
			return Params{}, bad("Missing parameter: %s", k)
		}
	}
	var p Params

	dm, ok := str(m["distribution_method"])
	if !ok || (dm != "ftp" && dm != "local") {
		return p, bad("Invalid distribution method: %s", text(m["distribution_method"]))
	}
	p.DistributionMethod = dm

	var tr []json.RawMessage
	if json.Unmarshal(m["time_range"], &tr) != nil {
		return p, bad("Invalid data format for time_range. Array expected")
	}
	if len(tr) != 2 {
		return p, bad("Invalid data format for time_range. Array size must be 2")
	}
	var ends [2]time.Time
	for i, raw := range tr {
		s, ok := str(raw)
		t, err := parseLocal(s, loc)
		if !ok || err != nil || t.Before(minStart(loc)) {
			return p, bad("Valid start_date and end_date is required")
		}
		p.TimeRange[i], ends[i] = s, t
	}
	if ends[1].Before(ends[0]) {
		return p, bad("Invalid value for end_date: end_date is earlier than the start_date")
	}
	p.From, p.To = ends[0].UTC(), ends[1].UTC()

	cf, err := intArray(m, "contact_fields")
	if err != nil {
		return p, err
	}
	if len(cf) == 0 {
		return p, bad("Invalid number of fields")
	}
	var invalid []string
	for _, id := range cf {
		_, known := schema.ContactField(id)
		if !known && id <= 100 {
			invalid = append(invalid, strconv.Itoa(id))
		}
	}
	if len(invalid) > 0 {
		return p, bad("Invalid contact field id: %s", strings.Join(invalid, ", "))
	}
	p.ContactFields = cf

	af, err := intArray(m, "analysis_fields")
	if err != nil {
		return p, err
	}
	for _, id := range af {
		if _, ok := schema.AnalysisField(id); !ok {
			return p, bad("Invalid value for analysis_fields: %d", id)
		}
	}
	p.AnalysisFields = af
	if n := len(cf) + len(af); n < 1 || n > 20 {
		return p, bad("Invalid number of fields")
	}

	// The vendor's own example sends "sources":"all" as a plain string.
	if s, ok := str(m["sources"]); ok {
		if s != "all" {
			return p, bad("Invalid value for sources: %s", s)
		}
	} else {
		var ss []json.RawMessage
		if json.Unmarshal(m["sources"], &ss) != nil {
			return p, bad("Invalid data format for sources. Array expected")
		}
		all := false
		for _, raw := range ss {
			s, ok := str(raw)
			if _, known := requestSources[s]; !ok || (!known && s != "all") {
				return p, bad("Invalid value for sources: %s", text(raw))
			}
			all = all || s == "all"
			p.Sources = append(p.Sources, s)
		}
		if all {
			p.Sources = nil
		}
	}

	for _, k := range []string{"email_id", "contactlist"} {
		raw, ok := m[k]
		if !ok || string(raw) == "null" {
			continue
		}
		n, ok := num(raw)
		if !ok || n <= 0 {
			return p, bad("Invalid value for %s: %s", k, text(raw))
		}
		if k == "email_id" {
			p.EmailID = uint64(n)
		} else {
			p.ContactList = n
		}
	}

	p.Delimiter = ','
	if raw, ok := m["delimiter"]; ok {
		s, ok := str(raw)
		if !ok || (s != "," && s != ";") {
			return p, bad("Invalid value for delimiter: %s", text(raw))
		}
		p.Delimiter = rune(s[0])
	}

	p.Header = true
	if raw, ok := m["add_field_names_header"]; ok {
		n, ok := num(raw)
		if !ok || (n != 0 && n != 1) {
			return p, bad("Invalid value for add_field_names_header: %s", text(raw))
		}
		p.Header = n == 1
	}

	p.Language = "en"
	if raw, ok := m["language"]; ok {
		s, ok := str(raw)
		if !ok || !slices.Contains(languages, s) {
			return p, bad("Invalid value for language: %s", text(raw))
		}
		p.Language = s
	}

	if raw, ok := m["notification_url"]; ok {
		s, ok := str(raw)
		if !ok || !(strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")) {
			return p, bad("Invalid value for notification_url: %s", text(raw))
		}
		p.NotificationURL = s
	}

	if dm == "ftp" {
		f, err := parseFTP(m["ftp_settings"])
		if err != nil {
			return p, err
		}
		p.FTP = f
	}
	return p, nil
}

func parseFTP(raw json.RawMessage) (*FTPSettings, *reqError) {
	if raw == nil || string(raw) == "null" {
		return nil, bad("Missing parameter: ftp_settings")
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return nil, bad("Invalid value for ftp_settings: %s", text(raw))
	}
	f := &FTPSettings{}
	for _, k := range []string{"host", "port", "username", "password"} {
		if v, ok := m[k]; !ok || string(v) == "null" {
			return nil, bad("Missing parameter: ftp_settings.%s", k)
		}
	}
	for k, dst := range map[string]*string{"host": &f.Host, "username": &f.Username, "password": &f.Password} {
		s, ok := str(m[k])
		if !ok || (k == "host" && s == "") {
			// Never echo a password back.
			shown := text(m[k])
			if k == "password" {
				shown = "(hidden)"
			}
			return nil, bad("Invalid value for ftp_settings.%s: %s", k, shown)
		}
		*dst = s
	}
	port, ok := num(m["port"])
	if !ok || port < 1 || port > 65535 {
		return nil, bad("Invalid value for ftp_settings.port: %s", text(m["port"]))
	}
	f.Port = int(port)
	if raw, ok := m["folder"]; ok && string(raw) != "null" {
		s, ok := str(raw)
		if !ok {
			return nil, bad("Invalid value for ftp_settings.folder: %s", text(raw))
		}
		f.Folder = s
	}
	return f, nil
}

// intArray reads an array of ids given as numbers or numeric strings.
func intArray(m map[string]json.RawMessage, key string) ([]int, *reqError) {
	var raws []json.RawMessage
	if json.Unmarshal(m[key], &raws) != nil {
		return nil, bad("Invalid data format for %s. Array expected", key)
	}
	out := make([]int, 0, len(raws))
	for _, raw := range raws {
		n, ok := num(raw)
		if !ok {
			return nil, bad("Invalid value for %s: %s", key, text(raw))
		}
		out = append(out, int(n))
	}
	return out, nil
}

// num reads an integer sent as a JSON number or a numeric string.
func num(raw json.RawMessage) (int64, bool) {
	s, ok := str(raw)
	if !ok {
		s = string(raw)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n, err == nil
}

func str(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// text shows a raw value in a message: strings without quotes, others as sent.
func text(raw json.RawMessage) string {
	if s, ok := str(raw); ok {
		return s
	}
	return string(raw)
}

func minStart(loc *time.Location) time.Time { return time.Date(1970, 1, 2, 0, 0, 0, 0, loc) }

var localLayouts = []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"}

// parseLocal reads a time_range value as a wall-clock time of the account zone.
//
// A wall time that occurs twice (the autumn change, 02:00-03:00 in Vienna)
// means its first, earlier instant, i.e. the summer-time reading. A wall time
// that does not exist (the spring gap) is read with the offset in force
// before the change, landing one hour later on the clock. Go's time.Date
// leaves both cases unspecified, so they are decided here.
func parseLocal(s string, loc *time.Location) (time.Time, error) {
	for _, l := range localLayouts {
		w, err := time.Parse(l, s) // wall clock fields, read as if UTC
		if err != nil {
			continue
		}
		return wallToInstant(w, loc), nil
	}
	return time.Time{}, fmt.Errorf("time %q: want YYYY-MM-DD[ HH:MM[:SS]]", s)
}

// wallToInstant maps wall-clock fields (carried in a UTC time) to the first
// instant in loc showing them.
func wallToInstant(w time.Time, loc *time.Location) time.Time {
	var best time.Time
	// Offsets in force a day either side cover any single transition.
	_, offBefore := w.Add(-24 * time.Hour).In(loc).Zone()
	_, offAfter := w.Add(24 * time.Hour).In(loc).Zone()
	for _, off := range []int{offBefore, offAfter} {
		u := w.Add(-time.Duration(off) * time.Second)
		if _, o := u.In(loc).Zone(); o == off && (best.IsZero() || u.Before(best)) {
			best = u
		}
	}
	if best.IsZero() {
		best = w.Add(-time.Duration(offBefore) * time.Second)
	}
	return best.UTC()
}
