package emarsys

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testUser   = "etl_user"
	testSecret = "s3cret-Sup3r-Hidden"
	ftpPass    = "ftp-Pa55-word"
)

// newTestClient starts handler behind httptest and returns a client with
// fast retries.
func newTestClient(t *testing.T, h http.HandlerFunc, mod ...func(*Config)) (*Client, *bytes.Buffer) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	var logBuf bytes.Buffer
	cfg := Config{
		BaseURL:        srv.URL + "/api/v2",
		User:           testUser,
		Secret:         testSecret,
		HTTPClient:     srv.Client(),
		Logger:         slog.New(slog.NewTextHandler(&syncWriter{w: &logBuf}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RequestTimeout: 2 * time.Second,
		MaxAttempts:    4,
		RetryBase:      time.Millisecond,
		RetryMax:       5 * time.Millisecond,
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, &logBuf
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func reply(w http.ResponseWriter, httpStatus, code int, text string, data any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	json.NewEncoder(w).Encode(map[string]any{"replyCode": code, "replyText": text, "data": data})
}

func ftpRequest() ExportRequest {
	return ExportRequest{
		DistributionMethod: "ftp",
		TimeRange:          [2]string{"2026-03-01 00:00:00", "2026-03-02 00:00:00"},
		ContactFields:      []int{1, 3},
		Sources:            []string{"trackable_links", "mail_open"},
		AnalysisFields:     []int{5, 8, 12},
		Delimiter:          ";",
		FTPSettings:        &FTPSettings{Host: "ftp.example.com", Port: 21, Username: "emarsys", Password: ftpPass, Folder: "in"},
	}
}

func TestWSSEVector(t *testing.T) {
	got := wsseDigest("d36e3162829ed8fa7e0ae5ea6e1a1d4c", "2026-12-03T15:04:05+00:00", "s3cret")
	const want = "MzNiOGExNzllYzQyNjM3ZjlmMTlhZGFjN2UzOWMzNjYxYzNhNTM0MA=="
	if got != want {
		t.Fatalf("digest = %s, want %s", got, want)
	}
	h := WSSEHeader("u", "s3cret", "d36e3162829ed8fa7e0ae5ea6e1a1d4c", "2026-12-03T15:04:05+00:00")
	wantH := `UsernameToken Username="u", PasswordDigest="` + want + `", Nonce="d36e3162829ed8fa7e0ae5ea6e1a1d4c", Created="2026-12-03T15:04:05+00:00"`
	if h != wantH {
		t.Fatalf("header = %s\nwant     %s", h, wantH)
	}
}

var wsseRE = regexp.MustCompile(`^UsernameToken Username="([^"]*)", PasswordDigest="([^"]+)", Nonce="([0-9a-f]{32})", Created="(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00)"$`)

// checkWSSE verifies the header as the API would and returns the nonce.
func checkWSSE(r *http.Request) (string, error) {
	m := wsseRE.FindStringSubmatch(r.Header.Get("X-WSSE"))
	if m == nil {
		return "", fmt.Errorf("malformed X-WSSE %q", r.Header.Get("X-WSSE"))
	}
	sum := sha1.Sum([]byte(m[3] + m[4] + testSecret))
	if m[1] != testUser || m[2] != base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString(sum[:]))) {
		return "", errors.New("bad user or digest")
	}
	return m[3], nil
}

func TestHeaderFormat(t *testing.T) {
	fixed := time.Date(2026, 12, 3, 16, 4, 5, 0, time.FixedZone("CET", 3600))
	var got http.Header
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		if r.URL.Path != "/api/v2/export/7" {
			t.Errorf("path = %s", r.URL.Path)
		}
		if _, err := checkWSSE(r); err != nil {
			t.Error(err)
		}
		reply(w, 200, 0, "OK", map[string]any{"id": "7", "status": "done"})
	}, func(c *Config) { c.Now = func() time.Time { return fixed } })
	if _, err := c.ExportStatus(context.Background(), 7); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got.Get("X-WSSE"), `Created="2026-12-03T15:04:05+00:00"`) {
		t.Fatalf("Created not in UTC: %s", got.Get("X-WSSE"))
	}
}

func TestNonceUniqueConcurrent(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	fixed := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // same second for all: nonces alone must differ
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		n, err := checkWSSE(r)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		seen[n]++
		mu.Unlock()
		reply(w, 200, 0, "OK", map[string]any{"id": "1", "status": "scheduled"})
	}, func(c *Config) { c.Now = func() time.Time { return fixed } })
	const n = 64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := c.ExportStatus(context.Background(), 1); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d distinct nonces in %d requests", len(seen), n)
	}
}

func TestStartExport(t *testing.T) {
	var body map[string]any
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/api/v2/email/getresponses" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		json.NewDecoder(r.Body).Decode(&body)
		reply(w, 200, 0, "OK", map[string]any{"id": 2140})
	})
	id, err := c.StartResponsesExport(context.Background(), ftpRequest())
	if err != nil || id != 2140 {
		t.Fatalf("id, err = %d, %v", id, err)
	}
	// Documented form: numbers and arrays.
	if _, ok := body["contact_fields"].([]any)[0].(float64); !ok {
		t.Errorf("contact_fields not numbers: %v", body["contact_fields"])
	}
	if port, ok := body["ftp_settings"].(map[string]any)["port"].(float64); !ok || port != 21 {
		t.Errorf("port not a number: %v", body["ftp_settings"])
	}
	if _, ok := body["sources"].([]any); !ok {
		t.Errorf("sources not an array: %v", body["sources"])
	}
	if _, ok := body["email_id"]; ok {
		t.Errorf("unset email_id sent")
	}
}

func TestEnvelopeDecoding(t *testing.T) {
	t.Run("status with string id", func(t *testing.T) {
		c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			reply(w, 200, 0, "OK", map[string]any{"id": "2140", "created": "2026-03-02 10:00:00", "status": "Done",
				"type": "responses", "file_name": "responses_2140.csv", "ftp_host": "ftp.example.com", "ftp_dir": "in"})
		})
		st, err := c.ExportStatus(context.Background(), 2140)
		if err != nil {
			t.Fatal(err)
		}
		want := ExportStatus{ID: 2140, Created: "2026-03-02 10:00:00", Status: "done", Type: "responses",
			FileName: "responses_2140.csv", FTPHost: "ftp.example.com", FTPDir: "in"}
		if st != want {
			t.Fatalf("got %+v\nwant %+v", st, want)
		}
	})
	t.Run("null file name", func(t *testing.T) {
		c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			reply(w, 200, 0, "OK", map[string]any{"id": 5, "status": "in progress", "file_name": nil})
		})
		st, err := c.ExportStatus(context.Background(), 5)
		if err != nil || st.Status != StatusInProgress || st.FileName != "" {
			t.Fatalf("%+v, %v", st, err)
		}
	})
	t.Run("replyCode with HTTP 200", func(t *testing.T) {
		var calls atomic.Int32
		c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			reply(w, 200, 10001, "Invalid export ID", nil)
		})
		_, err := c.ExportStatus(context.Background(), 9)
		var ae *APIError
		if !errors.As(err, &ae) || ae.ReplyCode != 10001 || ae.HTTPStatus != 200 || ae.Endpoint != "export/9" {
			t.Fatalf("err = %#v", err)
		}
		if calls.Load() != 1 {
			t.Fatalf("a client error was retried: %d calls", calls.Load())
		}
		if !strings.Contains(err.Error(), "Invalid export ID") {
			t.Fatalf("reply text missing: %v", err)
		}
	})
	t.Run("HTML 503", func(t *testing.T) {
		var calls atomic.Int32
		page := "<html><head><title>503 Service Unavailable</title></head><body>" + strings.Repeat("x", 500) + "</body></html>"
		c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(503)
			io.WriteString(w, page)
		})
		_, err := c.ExportStatus(context.Background(), 9)
		var ae *APIError
		if !errors.As(err, &ae) || ae.HTTPStatus != 503 {
			t.Fatalf("err = %v", err)
		}
		if !strings.HasPrefix(ae.BodyPrefix, "<html><head><title>503") || len(ae.BodyPrefix) > 200 {
			t.Fatalf("BodyPrefix = %q", ae.BodyPrefix)
		}
		if strings.Contains(err.Error(), "invalid character") {
			t.Fatalf("JSON parse error leaked: %v", err)
		}
		if calls.Load() != 4 || !IsRetryable(err) {
			t.Fatalf("calls = %d, retryable = %v", calls.Load(), IsRetryable(err))
		}
	})
}

func TestRetryThenSuccess(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			var calls atomic.Int32
			nonces := map[string]bool{}
			c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				n, _ := checkWSSE(r)
				if nonces[n] {
					t.Errorf("nonce reused on retry")
				}
				nonces[n] = true
				if calls.Add(1) < 3 {
					reply(w, 502, 0, "bad gateway", nil)
					return
				}
				reply(w, 200, 0, "OK", map[string]any{"id": 11, "status": "done"})
			})
			var err error
			if method == "GET" {
				_, err = c.ExportStatus(context.Background(), 11)
			} else {
				_, err = c.StartResponsesExport(context.Background(), ftpRequest())
			}
			if err != nil || calls.Load() != 3 {
				t.Fatalf("err = %v after %d calls", err, calls.Load())
			}
		})
	}
}

func TestAlreadyRunning(t *testing.T) {
	var calls atomic.Int32
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		reply(w, 400, 4001, "An export with the same setting is currently running.", nil)
	})
	_, err := c.StartResponsesExport(context.Background(), ftpRequest())
	if !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("err = %v, want ErrAlreadyRunning", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("4001 retried: %d calls", calls.Load())
	}
}

func TestRateLimit(t *testing.T) {
	t.Run("reset header, lower case", func(t *testing.T) {
		var calls atomic.Int32
		var first time.Time
		// A fixed local clock makes the wait exactly 1 s (+ up to 250 ms jitter).
		now := time.Unix(1_800_000_000, 0)
		c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				first = time.Now()
				w.Header()["x-ratelimit-reset"] = []string{strconv.FormatInt(now.Unix()+1, 10)}
				reply(w, 429, 7003, "Too many requests", nil)
				return
			}
			if time.Since(first) < 900*time.Millisecond {
				t.Errorf("retried after %s, before the reset", time.Since(first))
			}
			reply(w, 200, 0, "OK", map[string]any{"id": 3, "status": "done"})
		}, func(c *Config) { c.Now = func() time.Time { return now } })
		if _, err := c.ExportStatus(context.Background(), 3); err != nil || calls.Load() != 2 {
			t.Fatalf("err = %v, calls = %d", err, calls.Load())
		}
	})
	t.Run("7003 with HTTP 200, no header", func(t *testing.T) {
		var calls atomic.Int32
		c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) < 3 {
				reply(w, 200, 7003, "Too many requests", nil)
				return
			}
			reply(w, 200, 0, "OK", map[string]any{"id": 3, "status": "done"})
		})
		if _, err := c.ExportStatus(context.Background(), 3); err != nil || calls.Load() != 3 {
			t.Fatalf("err = %v, calls = %d", err, calls.Load())
		}
	})
	t.Run("bounded", func(t *testing.T) {
		var calls atomic.Int32
		c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			reply(w, 429, 7003, "Too many requests", nil)
		})
		_, err := c.ExportStatus(context.Background(), 3)
		if err == nil || calls.Load() != 4 {
			t.Fatalf("err = %v, calls = %d", err, calls.Load())
		}
	})
}

func TestUnauthorized(t *testing.T) {
	for _, tc := range []struct {
		name      string
		serverOff time.Duration
		want      string
	}{
		{"clock behind", 10 * time.Minute, "local clock is 600 s behind the API"},
		{"clock ahead", -7 * time.Minute, "local clock is 420 s ahead of the API"},
		{"bad credentials", 30 * time.Second, "check the API user name and secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
			c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Date", now.Add(tc.serverOff).Format(http.TimeFormat))
				reply(w, 401, 1, "Unauthorized", nil)
			}, func(c *Config) { c.Now = func() time.Time { return now } })
			_, err := c.ExportStatus(context.Background(), 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if skew := tc.serverOff.Abs() > 4*time.Minute; errors.Is(err, ErrClockSkew) != skew {
				t.Fatalf("errors.Is(err, ErrClockSkew) = %v", !skew)
			}
		})
	}
}

func TestWaitDone(t *testing.T) {
	seq := []string{"scheduled", "in progress", "in progress", "ready", "done"}
	var calls atomic.Int32
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		i := min(int(calls.Add(1))-1, len(seq)-1)
		data := map[string]any{"id": "42", "status": seq[i], "type": "responses", "file_name": nil}
		if seq[i] == "done" {
			data["file_name"] = "responses_42.csv"
		}
		if i == 2 { // one failed poll in the middle must not end the wait
			reply(w, 500, 0, "oops", nil)
			return
		}
		reply(w, 200, 0, "OK", data)
	})
	var got []string
	st, err := c.WaitDone(context.Background(), 42, WaitOptions{
		Initial: time.Millisecond, Max: 3 * time.Millisecond, Deadline: 5 * time.Second, StuckAfter: time.Second,
		OnPoll: func(s ExportStatus) { got = append(got, s.Status) },
	})
	if err != nil || st.FileName != "responses_42.csv" {
		t.Fatalf("%+v, %v", st, err)
	}
	if want := "scheduled,in progress,ready,done"; strings.Join(got, ",") != want {
		t.Fatalf("polled %v, want %s", got, want)
	}
}

func TestWaitDoneError(t *testing.T) {
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, 0, "OK", map[string]any{"id": "43", "status": "error", "type": "responses"})
	})
	_, err := c.WaitDone(context.Background(), 43, WaitOptions{Initial: time.Millisecond, Deadline: time.Second})
	var fe *ExportFailedError
	if !errors.As(err, &fe) || fe.Status.ID != 43 {
		t.Fatalf("err = %v", err)
	}
}

func TestWaitDoneStuck(t *testing.T) {
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, 0, "OK", map[string]any{"id": "44", "status": "ready", "ftp_host": "ftp.example.com"})
	})
	st, err := c.WaitDone(context.Background(), 44, WaitOptions{
		Initial: time.Millisecond, Max: 5 * time.Millisecond, Deadline: 5 * time.Second, StuckAfter: 30 * time.Millisecond,
	})
	if !errors.Is(err, ErrStuck) || st.Status != StatusReady {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "cannot reach or log in to the FTP server ftp.example.com") {
		t.Fatalf("err does not explain: %v", err)
	}
}

func TestWaitDoneDeadline(t *testing.T) {
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, 0, "OK", map[string]any{"id": "45", "status": "in progress"})
	})
	start := time.Now()
	_, err := c.WaitDone(context.Background(), 45, WaitOptions{Initial: time.Millisecond, Max: 5 * time.Millisecond, Deadline: 50 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `still "in progress"`) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("deadline not honoured: %s", time.Since(start))
	}
}

// TestSecretsNeverLeak drives every error path with a server that echoes
// the request back, and checks no error text or log line holds a secret.
func TestSecretsNeverLeak(t *testing.T) {
	handlers := map[string]http.HandlerFunc{
		"json echo": func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			reply(w, 400, 10001, "Invalid value for ftp_settings: "+string(b)+" "+testSecret, nil)
		},
		"html echo": func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.WriteHeader(500)
			fmt.Fprintf(w, "%s<pre>%s</pre>", testSecret, b)
		},
		"secret cut at 200 bytes": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(503)
			io.WriteString(w, strings.Repeat("x", 195)+testSecret)
		},
		"401": func(w http.ResponseWriter, r *http.Request) { reply(w, 401, 1, "Unauthorized", nil) },
		"4001": func(w http.ResponseWriter, r *http.Request) {
			reply(w, 400, 4001, "running", nil)
		},
		"hang": func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) },
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			c, logs := newTestClient(t, h, func(c *Config) { c.RequestTimeout = 50 * time.Millisecond; c.MaxAttempts = 2 })
			var errs []error
			_, err := c.StartResponsesExport(context.Background(), ftpRequest())
			errs = append(errs, err)
			_, err = c.ExportStatus(context.Background(), 1)
			errs = append(errs, err)
			_, err = c.WaitDone(context.Background(), 1, WaitOptions{Initial: time.Millisecond, Deadline: 100 * time.Millisecond})
			errs = append(errs, err)
			for _, err := range errs {
				if err == nil {
					t.Fatal("expected an error")
				}
				for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
					// Prefixes too: a cut body must not leak half a secret.
					if strings.Contains(s, testSecret[:6]) || strings.Contains(s, ftpPass[:6]) {
						t.Fatalf("secret in error: %s", s)
					}
				}
			}
			if strings.Contains(logs.String(), testSecret) || strings.Contains(logs.String(), ftpPass) {
				t.Fatalf("secret in logs: %s", logs)
			}
		})
	}
	// Formatting the request itself must not show the FTP password either.
	r := ftpRequest()
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("start", "req", r)
	for _, s := range []string{fmt.Sprintf("%v", *r.FTPSettings), fmt.Sprintf("%+v", *r.FTPSettings), fmt.Sprintf("%#v", *r.FTPSettings), buf.String()} {
		if strings.Contains(s, ftpPass) {
			t.Fatalf("FTP password printed: %s", s)
		}
	}
}

func TestMasked(t *testing.T) {
	r := ftpRequest()
	m := r.Masked()
	if m.FTPSettings.Password != "***" || r.FTPSettings.Password != ftpPass {
		t.Fatalf("masked %q, original %q", m.FTPSettings.Password, r.FTPSettings.Password)
	}
	m.ContactFields[0] = 99
	if r.ContactFields[0] == 99 {
		t.Fatal("Masked shares slices with the original")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*ExportRequest)
		want string
	}{
		{"ok", func(*ExportRequest) {}, ""},
		{"local needs no ftp", func(r *ExportRequest) { r.DistributionMethod = "local"; r.FTPSettings = nil }, ""},
		{"ftp without settings", func(r *ExportRequest) { r.FTPSettings = nil }, "ftp_settings"},
		{"bad method", func(r *ExportRequest) { r.DistributionMethod = "mail" }, "use ftp or local"},
		{"no contact fields", func(r *ExportRequest) { r.ContactFields = nil }, "must not be empty"},
		{"forbidden field", func(r *ExportRequest) { r.ContactFields = []int{3, 32} }, "field 32"},
		{"too many", func(r *ExportRequest) { r.ContactFields = make([]int, 18) }, "1 to 20"},
		{"empty range", func(r *ExportRequest) { r.TimeRange[1] = "" }, "time_range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ftpRequest()
			tc.mod(&r)
			err := r.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestNewRequiresConfig(t *testing.T) {
	if _, err := New(Config{BaseURL: "https://api.emarsys.net/api/v2/", User: "u"}); err == nil {
		t.Fatal("missing secret accepted")
	}
	if _, err := New(Config{BaseURL: "api.emarsys.net", User: "u", Secret: "s"}); err == nil {
		t.Fatal("relative base URL accepted")
	}
}
