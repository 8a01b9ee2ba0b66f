package pipeline_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/csvrows"
	"github.com/emarsys-etl/emarsys-etl/pipeline/pipelinetest"
)

// The vendor's own example file (export-responses.rst) goes through the real
// fetch, parse and load path, and the warehouse holds exactly its three rows.
func TestVendorExampleFileLoadsExactly(t *testing.T) {
	h := pipelinetest.New(t, pipelinetest.Options{ContactFields: []int{1, 2, 3}})
	// The example was exported with contact fields 1,2,3 and analysis fields
	// 1,4,5 (no Time): bind the columns as that request would.
	plan, err := csvrows.NewPlan([]int{1, 2, 3}, []int{1, 4, 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Runner.Plan = plan
	fixture, err := os.ReadFile("csvrows/testdata/vendor-example.csv")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(h.FTPDir, "exports"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.FTPDir, "exports", "responses_2140.csv"), fixture, 0o644); err != nil {
		t.Fatal(err)
	}
	w := pipeline.Window{Start: time.Date(2015, 4, 9, 0, 0, 0, 0, time.UTC), End: time.Date(2015, 4, 10, 0, 0, 0, 0, time.UTC)}
	// The ledger says the export is ready: the runner resumes from there.
	if err := h.Store.SaveWindow(t.Context(), chstore.WindowRecord{Account: "acme", Start: w.Start, End: w.End,
		State: pipeline.StateReady, ExportID: 2140, FileName: "responses_2140.csv"}); err != nil {
		t.Fatal(err)
	}
	r := h.Runner.Run(t.Context(), w)
	if r.Err != nil || r.State != pipeline.StateDone || r.Read != 3 || r.Loaded != 3 || r.Rejected != 0 {
		t.Fatalf("load: %+v", r)
	}

	rows, err := h.Conn.Query(t.Context(), "SELECT toString(user_id), first_name, last_name, email, campaign_title, link_title, url, source_raw, toString(source), toString(export_id) FROM `"+h.DB+"`.email_responses")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		v := make([]string, 10)
		if err := rows.Scan(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join(v, ";"))
	}
	sort.Strings(got)
	want := []string{
		"287705659;user3;test_import;test1@emarsys.com;AC_recurring_2015_04_09_10_05_03;;;open;open;2140",
		"287705659;user3;test_import;test1@emarsys.com;RSS_2015_04_09_10_05_03;;www.google.com.com;click;click;2140",
		"287705659;user3;test_import;test1@emarsys.com;VisualCMS_2015_04_09_10_05_03;;www.emarsys.com;click;click;2140",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("warehouse holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The file was archived after the load.
	if _, err := os.Stat(filepath.Join(h.FTPDir, "exports", "archive", "responses_2140.csv")); err != nil {
		t.Errorf("file not archived: %v", err)
	}
}
