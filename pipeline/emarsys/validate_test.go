package emarsys

import (
	"strings"
	"testing"
)

// The request is checked with the vendor's wording before any call.
func TestValidateVendorRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*ExportRequest)
		want string // "" = valid
	}{
		{"ok", func(*ExportRequest) {}, ""},
		{"date only", func(r *ExportRequest) { r.TimeRange = [2]string{"2026-03-01", "2026-03-02"} }, ""},
		{"minutes", func(r *ExportRequest) { r.TimeRange = [2]string{"2026-03-01 00:00", "2026-03-01 06:00"} }, ""},
		{"bad time", func(r *ExportRequest) { r.TimeRange[0] = "01.03.2026" }, "Invalid value for time_range"},
		{"before 1970-01-02", func(r *ExportRequest) { r.TimeRange[0] = "1970-01-01 12:00:00" }, "before 1970-01-02"},
		{"end not after start", func(r *ExportRequest) { r.TimeRange[1] = r.TimeRange[0] }, "is not after the start"},
		{"no sources", func(r *ExportRequest) { r.Sources = nil }, "Invalid value for sources"},
		{"local with ftp", func(r *ExportRequest) { r.DistributionMethod = "local" }, "local takes no ftp_settings"},
		{"local", func(r *ExportRequest) { r.DistributionMethod, r.FTPSettings = "local", nil }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ftpRequest()
			tc.mod(&r)
			err := r.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
