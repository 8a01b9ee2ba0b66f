package sim

import (
	"bytes"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/ftpd"
)

const (
	testUser   = "acme001"
	testSecret = "s3cret"
)

type envelope struct {
	ReplyCode int             `json:"replyCode"`
	ReplyText string          `json:"replyText"`
	Data      json.RawMessage `json:"data"`
}

type harness struct {
	t   *testing.T
	sim *Server
	url string
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	cfg.User, cfg.Secret = testUser, testSecret
	cfg.Logger = slog.New(slog.DiscardHandler)
	s := New(cfg)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); _ = s.Close() })
	return &harness{t: t, sim: s, url: hs.URL}
}

func nonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// do sends a request signed with a fresh nonce unless header is given.
func (h *harness) do(method, path, body string, header ...string) (int, envelope, http.Header) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if len(header) > 0 {
		if header[0] != "" {
			req.Header.Set("X-WSSE", header[0])
		}
	} else {
		req.Header.Set("X-WSSE", WSSEHeader(testUser, nonce(), time.Now().UTC().Format(time.RFC3339), testSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env envelope
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &env); err != nil {
			h.t.Fatalf("%s %s: bad JSON %q", method, path, raw)
		}
	} else {
		env.ReplyText = string(raw)
	}
	return resp.StatusCode, env, resp.Header
}

func (h *harness) status(id int64) map[string]any {
	h.t.Helper()
	code, env, _ := h.do("GET", fmt.Sprintf("/api/v2/export/%d", id), "")
	if code != 200 || env.ReplyCode != 0 {
		h.t.Fatalf("status %d: %d %+v", id, code, env)
	}
	var d map[string]any
	_ = json.Unmarshal(env.Data, &d)
	return d
}

func (h *harness) waitStatus(id int64, want string) map[string]any {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := h.status(id)
		if d["status"] == want {
			return d
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("export %d is %v, want %s", id, d["status"], want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) start(body string) int64 {
	h.t.Helper()
	code, env, _ := h.do("POST", "/api/v2/email/getresponses", body)
	if code != 200 || env.ReplyCode != 0 {
		h.t.Fatalf("start: %d %+v", code, env)
	}
	var d struct{ ID int64 }
	if err := json.Unmarshal(env.Data, &d); err != nil {
		h.t.Fatalf("start data %s: %v", env.Data, err)
	}
	return d.ID
}

const validBody = `{"distribution_method":"local","time_range":["2026-11-20 10:00:00","2026-11-20 11:00:00"],
 "contact_fields":[1,3],"sources":["mail_open","trackable_links"],"analysis_fields":[8,12]}`

// with returns validBody with each key set to the raw JSON value that
// follows it, or removed when the value is "".
func with(kv ...string) string {
	var m map[string]json.RawMessage
	_ = json.Unmarshal([]byte(validBody), &m)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = json.RawMessage(kv[i+1])
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestStartValidation(t *testing.T) {
	h := newHarness(t, Config{ScheduledDelay: time.Hour})
	ftpOK := `{"host":"ftp.example.com","port":21,"username":"u","password":"p","folder":"in"}`
	tests := []struct {
		name, body string
		status     int
		code       int
		text       string
	}{
		{"missing distribution_method", with("distribution_method", ""), 400, 10001, "Missing parameter: distribution_method"},
		{"missing time_range", with("time_range", ""), 400, 10001, "Missing parameter: time_range"},
		{"missing contact_fields", with("contact_fields", ""), 400, 10001, "Missing parameter: contact_fields"},
		{"missing sources", with("sources", ""), 400, 10001, "Missing parameter: sources"},
		{"missing analysis_fields", with("analysis_fields", ""), 400, 10001, "Missing parameter: analysis_fields"},
		{"missing ftp_settings", with("distribution_method", `"ftp"`), 400, 10001, "Missing parameter: ftp_settings"},
		{"time_range not array", with("time_range", `"2026-11-20"`), 400, 10001, "Invalid data format for time_range. Array expected"},
		{"contact_fields not array", with("contact_fields", `1`), 400, 10001, "Invalid data format for contact_fields. Array expected"},
		{"analysis_fields not array", with("analysis_fields", `"8"`), 400, 10001, "Invalid data format for analysis_fields. Array expected"},
		{"sources not array", with("sources", `{"a":1}`), 400, 10001, "Invalid data format for sources. Array expected"},
		{"time_range size", with("time_range", `["2026-11-20"]`), 400, 10001, "Invalid data format for time_range. Array size must be 2"},
		{"distribution method", with("distribution_method", `"email"`), 400, 10001, "Invalid distribution method: email"},
		{"invalid delimiter", with("delimiter", `"|"`), 400, 10001, "Invalid value for delimiter: |"},
		{"invalid header flag", with("add_field_names_header", `2`), 400, 10001, "Invalid value for add_field_names_header: 2"},
		{"invalid source", with("sources", `["mail_open","sms"]`), 400, 10001, "Invalid value for sources: sms"},
		{"invalid analysis field", with("analysis_fields", `[8,7]`), 400, 10001, "Invalid value for analysis_fields: 7"},
		{"invalid email_id", with("email_id", `"abc"`), 400, 10001, "Invalid value for email_id: abc"},
		{"invalid language", with("language", `"xx"`), 400, 10001, "Invalid value for language: xx"},
		{"invalid contact fields", with("contact_fields", `[1,27,3,32]`), 400, 10001, "Invalid contact field id: 27, 32"},
		{"no contact fields", with("contact_fields", `[]`), 400, 10001, "Invalid number of fields"},
		{"too many fields", with("contact_fields", `[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18]`), 400, 10001, "Invalid number of fields"},
		{"bad start date", with("time_range", `["2026-11-31","2026-12-01"]`), 400, 10001, "Valid start_date and end_date is required"},
		{"bad end format", with("time_range", `["2026-11-20","20.11.2026"]`), 400, 10001, "Valid start_date and end_date is required"},
		{"before 1970-01-02", with("time_range", `["1970-01-01 12:00","2026-12-01"]`), 400, 10001, "Valid start_date and end_date is required"},
		{"end before start", with("time_range", `["2026-11-20 10:00:01","2026-11-20 10:00:00"]`), 400, 10001, "Invalid value for end_date: end_date is earlier than the start_date"},
		{"ftp port", with("distribution_method", `"ftp"`, "ftp_settings", `{"host":"h","port":"x","username":"u","password":"p"}`), 400, 10001, "Invalid value for ftp_settings.port: x"},
		{"ftp host missing", with("distribution_method", `"ftp"`, "ftp_settings", `{"port":21,"username":"u","password":"p"}`), 400, 10001, "Missing parameter: ftp_settings.host"},
		{"ok documented form", validBody, 200, 0, "OK"},
		{"ok vendor example form", `{"distribution_method":"ftp","sources":"all","email_id":"89268","time_range":["2012-02-09","2014-08-13"],
			"contact_fields":["1","3"],"analysis_fields":["5","8","15"],"delimiter":";","add_field_names_header":1,"language":"en",
			"ftp_settings":` + strings.Replace(ftpOK, `21`, `"21"`, 1) + `}`, 200, 0, "OK"},
		{"same settings running", validBody, 400, 4001, "An export with the same setting is currently running. It is not possible to run the same export more than once simultaneously."},
		{"ok other settings", with("delimiter", `";"`), 200, 0, "OK"},
		{"ok ftp", with("distribution_method", `"ftp"`, "ftp_settings", ftpOK), 200, 0, "OK"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			code, env, _ := h.do("POST", "/api/v2/email/getresponses", tc.body)
			if code != tc.status || env.ReplyCode != tc.code || env.ReplyText != tc.text {
				t.Fatalf("got %d %d %q, want %d %d %q", code, env.ReplyCode, env.ReplyText, tc.status, tc.code, tc.text)
			}
		})
	}
	h.t = t
	// The id comes as a number on start and as a string on status.
	id := h.start(with("language", `"de"`))
	if d := h.status(id); d["id"] != fmt.Sprint(id) || d["status"] != StatusScheduled || d["file_name"] != nil || d["type"] != "responses" {
		t.Fatalf("status data %v", d)
	}
	if code, env, _ := h.do("GET", "/api/v2/export/999999", ""); code != 400 || env.ReplyCode != 10001 || env.ReplyText != "Invalid export ID" {
		t.Fatalf("unknown export: %d %+v", code, env)
	}
	if code, env, _ := h.do("GET", "/api/v2/export/abc", ""); code != 400 || env.ReplyText != "Invalid export ID" {
		t.Fatalf("bad export id: %d %+v", code, env)
	}
}

func TestAuth(t *testing.T) {
	now := time.Date(2026, 12, 3, 15, 4, 5, 0, time.UTC)
	h := newHarness(t, Config{Now: func() time.Time { return now }})
	created := now.Format(time.RFC3339)
	good := WSSEHeader(testUser, nonce(), created, testSecret)
	tests := []struct {
		name, header string
		status       int
		text         string
	}{
		{"missing header", "", 401, "Unauthorized: X-WSSE header is missing"},
		{"unknown user", WSSEHeader("mallory", nonce(), created, testSecret), 401, "Unauthorized: unknown user"},
		{"wrong digest", WSSEHeader(testUser, nonce(), created, "guess"), 401, "Unauthorized: invalid PasswordDigest"},
		{"good", good, 400, "Invalid export ID"},
		{"reused nonce", good, 401, "Unauthorized: nonce already used"},
		{"clock skew", WSSEHeader(testUser, nonce(), now.Add(-6*time.Minute).Format(time.RFC3339), testSecret), 401, "time frame is invalid"},
		{"small skew ok", WSSEHeader(testUser, nonce(), now.Add(4*time.Minute).Format("2006-01-02T15:04:05-07:00"), testSecret), 400, "Invalid export ID"},
	}
	for _, tc := range tests {
		code, env, hdr := h.do("GET", "/api/v2/export/1", "", tc.header)
		if code != tc.status || !strings.Contains(env.ReplyText, tc.text) {
			t.Errorf("%s: got %d %q, want %d %q", tc.name, code, env.ReplyText, tc.status, tc.text)
		}
		if d, err := http.ParseTime(hdr.Get("Date")); err != nil || !d.Equal(now) {
			t.Errorf("%s: Date header %q", tc.name, hdr.Get("Date"))
		}
	}
	if got := h.sim.Requests(); got != int64(len(tests)) {
		t.Errorf("Requests() = %d, want %d", got, len(tests))
	}
}

func TestOAuthV3(t *testing.T) {
	h := newHarness(t, Config{})
	resp, err := http.PostForm(h.url+"/oauth2/token", map[string][]string{
		"grant_type": {"client_credentials"}, "client_id": {testUser}, "client_secret": {testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	req, _ := http.NewRequest("GET", h.url+"/api/v3/export/1", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if tok.AccessToken == "" || resp.StatusCode != 400 {
		t.Fatalf("v3 with token: %d", resp.StatusCode)
	}
}

func startFTP(t *testing.T) (*ftpd.Server, string) {
	t.Helper()
	root := t.TempDir()
	fs, err := ftpd.Start(ftpd.Options{Root: root, User: "etl", Password: "ftp-pass"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.Close() })
	return fs, root
}

func ftpBody(fs *ftpd.Server, password string, extra string) string {
	return fmt.Sprintf(`{"distribution_method":"ftp","time_range":["2026-10-24 23:30:00","2026-10-25 03:15"],
	  "contact_fields":[1,2,3,4,101],"sources":["mail_open","trackable_links","unsubscribe"],"analysis_fields":[1,5,8,12,15],
	  "delimiter":";","add_field_names_header":1,"language":"en"%s,
	  "ftp_settings":{"host":%q,"port":%d,"username":"etl","password":%q,"folder":"exports/responses"}}`,
		extra, fs.Host(), fs.Port(), password)
}

func TestLifeCycleFTP(t *testing.T) {
	fs, root := startFTP(t)
	g := Generator{Seed: 11, Tricky: true}
	h := newHarness(t, Config{Generator: g, ScheduledDelay: 20 * time.Millisecond, InProgressDelay: 20 * time.Millisecond, ReadyDelay: 20 * time.Millisecond})
	id := h.start(ftpBody(fs, "ftp-pass", ""))
	d := h.waitStatus(id, StatusDone)
	name, _ := d["file_name"].(string)
	if !strings.HasPrefix(name, fmt.Sprintf("responses_%d_", id)) || d["ftp_host"] != fs.Host() || d["ftp_dir"] != "exports/responses" {
		t.Fatalf("status data %v", d)
	}
	f, err := os.Open(filepath.Join(root, "exports", "responses", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.Comma = ';'
	recs, err := cr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}

	// The oracle: the generator's rows for the range, both ends inclusive, in
	// the account zone (the autumn night, 02:00-03:00 happens twice).
	loc := g.Location()
	from := time.Date(2026, 10, 24, 23, 30, 0, 0, loc)
	to, _ := parseLocal("2026-10-25 03:15:00", loc)
	want := g.Filter(g.Responses(from, to.Add(time.Second)), []string{"mail_open", "trackable_links", "unsubscribe"})
	info, _ := h.sim.Export(id)
	if !reflect.DeepEqual(info.Responses, want) || info.Rows != len(want) || info.Status != StatusDone || info.FileName != name {
		t.Fatalf("export info: %d rows, status %s", info.Rows, info.Status)
	}
	if len(recs) != len(want)+1 || recs[0][0] != "user_id" || recs[0][len(recs[0])-1] != "source" {
		t.Fatalf("file has %d records, want %d + header", len(recs), len(want))
	}
	o := CSVOptions{ContactFields: []int{1, 2, 3, 4, 101}, AnalysisFields: []int{1, 5, 8, 12, 15}, Loc: loc}
	for i, r := range want {
		exp := Record(r, o)
		for j := range exp {
			if w := strings.ReplaceAll(exp[j], "\r\n", "\n"); recs[i+1][j] != w {
				t.Fatalf("row %d col %d = %q, want %q", i, j, recs[i+1][j], w)
			}
		}
	}
}

func TestStuckReadyThenRecovers(t *testing.T) {
	fs, _ := startFTP(t)
	h := newHarness(t, Config{FTPRetryInterval: 20 * time.Millisecond})
	id := h.start(ftpBody(fs, "wrong", ""))
	time.Sleep(150 * time.Millisecond)
	if d := h.status(id); d["status"] != StatusReady || d["file_name"] == nil {
		t.Fatalf("status data %v", d)
	}
	info, _ := h.sim.Export(id)
	if info.UploadAttempts < 2 || strings.Contains(info.LastUploadErr, "wrong") {
		t.Fatalf("attempts %d, last error %q", info.UploadAttempts, info.LastUploadErr)
	}
}

func TestFaultHooks(t *testing.T) {
	h := newHarness(t, Config{FailNextStatus: 2, ErrorExports: true})
	id := h.start(validBody)
	for range 2 {
		code, env, _ := h.do("GET", fmt.Sprintf("/api/v2/export/%d", id), "")
		if code != 503 || !strings.Contains(env.ReplyText, "<html>") {
			t.Fatalf("want HTML 503, got %d %q", code, env.ReplyText)
		}
	}
	h.waitStatus(id, StatusError)
	h.sim.SetErrorExports(false)
	h.sim.SetBrokenRowsPerExport(3)
	id = h.start(with("analysis_fields", `[8]`))
	h.waitStatus(id, StatusDone)
	info, _ := h.sim.Export(id)
	if len(info.Broken) != 3 {
		t.Fatalf("%d broken rows", len(info.Broken))
	}
}

func TestLocalDownload(t *testing.T) {
	h := newHarness(t, Config{Generator: Generator{Seed: 2}, BrokenRowsPerExport: 1})
	id := h.start(with("email_id", `100003`))
	h.waitStatus(id, StatusDone)
	info, _ := h.sim.Export(id)
	if info.Rows == 0 {
		t.Fatal("no rows")
	}
	for _, r := range info.Responses {
		if r.CampaignID != 100003 {
			t.Fatalf("email_id filter let %d through", r.CampaignID)
		}
	}
	var all bytes.Buffer
	for off := 0; ; off += 7 {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v2/export/%d/data?offset=%d&limit=7", h.url, id, off), nil)
		req.Header.Set("X-WSSE", WSSEHeader(testUser, nonce(), time.Now().UTC().Format(time.RFC3339), testSecret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
			t.Fatalf("content type %q: %s", resp.Header.Get("Content-Type"), b)
		}
		all.Write(b)
		if n := bytes.Count(b, []byte("\n")); n < 7 || (off == 0 && n < 8) {
			break
		}
	}
	var whole bytes.Buffer
	o := h.sim.csvOptions(info.Params)
	o.Broken = info.Broken
	_ = WriteCSV(&whole, info.Responses, o)
	if all.String() != whole.String() {
		t.Fatalf("pages differ from the whole file:\n%s\nvs\n%s", all.String(), whole.String())
	}
}

func TestSimResponses(t *testing.T) {
	g := Generator{Seed: 4}
	h := newHarness(t, Config{Generator: g})
	resp, err := http.Get(h.url + "/sim/responses?from=2026-11-20T10:00:00Z&to=2026-11-20T12:00:00%2B01:00")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Count   int
		Sources map[string]int
	}
	_ = json.NewDecoder(resp.Body).Decode(&got)
	want, n := g.Count(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC))
	if got.Count != n || !reflect.DeepEqual(got.Sources, want) {
		t.Fatalf("got %+v, want %d %v", got, n, want)
	}
}
