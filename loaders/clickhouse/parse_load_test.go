package clickhouse

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/pipeline/csvrows"
	"github.com/emarsys-etl/emarsys-etl/schema"
)

type parsedRow struct {
	user            uint64
	title, url, src string
	invalid         uint8
}

// Parse -> Load -> Commit, compared row by row with what was written: the
// parser hands the Load strings that share its read buffer, so a Load that
// kept one instead of copying it would store a later line's text. The file is
// much larger than the buffer, with lines longer than it,
// quoted lines, invalid UTF-8 and rows outside the window (the stage).
func TestParseIntoLoadRowByRow(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(map[bool]string{true: "direct", false: "staged"}[direct], func(t *testing.T) {
			s, ctx := directStore(t, 1000)
			s.keysAgree = direct // off: every row takes the stage
			plan, err := csvrows.NewPlan(nil, []int{schema.AnalysisCampaignTitle, schema.AnalysisURL, schema.AnalysisTime}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ws := testBase
			spec := LoadSpec{Account: "rv", WindowStart: ws, WindowEnd: ws.Add(time.Hour), ExportID: 5, Plan: plan}
			var file bytes.Buffer
			want := map[uint64]parsedRow{}
			const n = 60000
			for i := 0; i < n; i++ {
				u := uint64(i + 1)
				title := fmt.Sprintf("title-%d-%s", i, strings.Repeat(string(rune('a'+i%26)), i%37))
				url := fmt.Sprintf("https://x/%d?%s", i*7, strings.Repeat("Ü", i%11))
				src := []string{"open", "click", " click ", "weird", "unsubscribe"}[i%5] + fmt.Sprint(i%3)
				inv := uint8(0)
				if i%1013 == 0 {
					title = strings.Repeat("L", 70<<10) + fmt.Sprint(i)
				}
				if i%97 == 0 {
					title += "\xff\xfe"
					inv = 1
				}
				et := ws.Add(time.Duration(i%3600) * time.Second)
				if i%7 == 0 {
					et = ws.Add(-time.Duration(1+i%100) * time.Second) // stage path
				}
				if i%501 == 0 {
					fmt.Fprintf(&file, "%d;\"%s\";%s;%s;%s\n", u, strings.ReplaceAll(title, "\"", "\"\""), url, et.Format(time.DateTime), src)
				} else {
					fmt.Fprintf(&file, "%d;%s;%s;%s;%s\n", u, title, url, et.Format(time.DateTime), src)
				}
				want[u] = parsedRow{u, title, url, strings.TrimSpace(src), inv}
			}
			l, err := s.BeginLoad(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			st, err := csvrows.Parse(&file, csvrows.Options{Plan: plan, Loc: time.UTC}, l.Append, func(rj csvrows.Reject) error {
				t.Fatalf("reject %+v", rj.Reason)
				return nil
			})
			if err != nil || st.Loaded != n {
				t.Fatalf("parse: %v %+v", err, st)
			}
			if _, err := l.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			rows, err := s.conn.Query(ctx, "SELECT user_id, campaign_title, url, source_raw, invalid_utf8, response_key = "+ResponseKeySQL+" FROM "+s.table(factTable))
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			got := 0
			for rows.Next() {
				var r parsedRow
				var keyOK bool
				if err := rows.Scan(&r.user, &r.title, &r.url, &r.src, &r.invalid, &keyOK); err != nil {
					t.Fatal(err)
				}
				if w := want[r.user]; w != r {
					t.Fatalf("user %d: got %q %q %q %d want %q %q %q %d", r.user, trunc(r.title), r.url, r.src, r.invalid, trunc(w.title), w.url, w.src, w.invalid)
				}
				if !keyOK {
					t.Fatalf("user %d: key", r.user)
				}
				got++
			}
			if got != n {
				t.Fatalf("%d rows, want %d", got, n)
			}
		})
	}
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60]
	}
	return s
}
