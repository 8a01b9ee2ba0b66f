package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/pipeline/dashboard"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// TestBrowser is `make e2e-browser`: headless Chromium loads the page, runs
// its script against the JSON endpoints, and the rendered DOM must show the
// numbers of the fact table. Skipped unless E2E_BROWSER=1 (needs chromium).
func TestBrowser(t *testing.T) {
	if os.Getenv("E2E_BROWSER") != "1" {
		t.Skip("set E2E_BROWSER=1 (make e2e-browser)")
	}
	bin := os.Getenv("CHROMIUM")
	if bin == "" {
		bin = "chromium"
	}
	h := pipelinetest.New(t, pipelinetest.Options{Window: 12 * time.Hour})
	from := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	to := from.Add(48 * time.Hour)
	h.Backfill(from, to)
	mux := http.NewServeMux()
	dashboard.Mount(mux, h.Store, "acme", func() time.Time { return to })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=10000", "--dump-dom", srv.URL+"/").Output()
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	dom := string(out)
	opens := h.Count("SELECT countIf(source = 'open') FROM {db}.email_responses")
	clicks := h.Count("SELECT countIf(source = 'click') FROM {db}.email_responses")
	for id, n := range map[string]uint64{"opens": opens, "clicks": clicks} {
		want := fmt.Sprintf(`id="%s">%s<`, id, thousands(n))
		if !strings.Contains(dom, want) {
			t.Errorf("page does not show %s: want %s", id, want)
		}
	}
	if m := regexp.MustCompile(`<rect `).FindAllString(dom, -1); len(m) != 4 {
		t.Errorf("chart has %d bars, want 4 (2 days x opens, clicks)", len(m))
	}
	if !strings.Contains(dom, `id="error"><`) {
		t.Errorf("page shows an error: %s", dom[strings.Index(dom, `id="error"`):][:200])
	}
}

// thousands formats n as the page's toLocaleString("en") does.
func thousands(n uint64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
