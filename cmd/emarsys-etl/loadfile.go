package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/emarsys-etl/emarsys-etl/pipeline"
)

// loadFileFlags are --load-file and the flags that describe the file.
type loadFileFlags struct {
	path, fields, delimiter, language *string
	noHeader                          *bool
}

func addLoadFileFlags(fs *flag.FlagSet) loadFileFlags {
	return loadFileFlags{
		path:      fs.String("load-file", "", "load a CSV exported by hand from the Emarsys web interface, then exit"),
		fields:    fs.String("fields", "", "with --load-file: the file's fields as CONTACT_IDS:ANALYSIS_IDS in file order, e.g. 1,2,3:1,8,12 (default: the config's)"),
		delimiter: fs.String("delimiter", "", "with --load-file: the file's delimiter, ; or , (default: the config's)"),
		noHeader:  fs.Bool("no-header", false, "with --load-file: the file has no header line"),
		language:  fs.String("language", "", "with --load-file: the language of the file's header (names are checked in every known language)"),
	}
}

// check returns a usage problem, or "". other is set when a flag that runs
// something else was given too.
func (f loadFileFlags) check(other bool) string {
	if *f.path == "" {
		if *f.fields != "" || *f.delimiter != "" || *f.noHeader || *f.language != "" {
			return "--fields, --delimiter, --no-header and --language need --load-file"
		}
		return ""
	}
	if other {
		return "--load-file runs alone (not with --backfill, --once, --status, --check-config or --dry-run)"
	}
	if *f.fields != "" {
		if _, _, err := pipeline.ParseFields(*f.fields); err != nil {
			return err.Error()
		}
	}
	if d := *f.delimiter; d != "" && d != ";" && d != "," {
		return fmt.Sprintf("--delimiter %q: use ; or ,", d)
	}
	return ""
}

// runLoadFile loads one file and prints read, loaded and rejected. It exits
// non-zero when the manual window is failed (too many rejects, a header that
// does not match) or the file cannot be read.
func runLoadFile(ctx context.Context, r *pipeline.Runner, f loadFileFlags, w io.Writer, log *slog.Logger) int {
	m := pipeline.ManualLoad{Path: *f.path, Delimiter: *f.delimiter, NoHeader: *f.noHeader, Language: *f.language}
	if *f.fields != "" {
		m.ContactFields, m.AnalysisFields, _ = pipeline.ParseFields(*f.fields) // checked with the flags
		m.Fields = true
	}
	res, err := pipeline.LoadFile(ctx, r, m)
	if err != nil {
		log.Error("load file", "file", m.Path, "err", err)
		fmt.Fprintf(w, "load %s: %v\n", m.Path, err)
		return exitFailed
	}
	if pipeline.IsNoRows(res.Err) {
		fmt.Fprintf(w, "%s: read=0 loaded=0 rejected=0: the file holds no data rows, nothing to load\n", m.Path)
		return exitOK
	}
	if res.Err != nil && res.Window.Start.IsZero() {
		// Stopped before a window was known: unreadable file, header mismatch, all rows rejected.
		fmt.Fprintf(w, "%s: read=%d loaded=0 rejected=%d\nfailed: %v\n", m.Path, res.Read, res.Rejected, res.Err)
		return exitFailed
	}
	status := res.State
	if res.Skipped {
		status = "already loaded"
	}
	fmt.Fprintf(w, "%s: window %s %s read=%d loaded=%d new=%d rejected=%d\n",
		m.Path, res.Window, status, res.Read, res.Loaded, res.New, res.Rejected)
	if res.Err != nil {
		fmt.Fprintf(w, "failed: %v\n", res.Err)
		return exitFailed
	}
	return exitOK
}
