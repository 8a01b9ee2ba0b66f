package pipeline

import (
	"time"

	"github.com/emarsys-etl/emarsys-etl/pipeline/csvrows"
)

// exportRange is the first and last instant the export of window w covers, as
// the vendor reads the time_range that LocalRange sends. It is wider than w
// around the autumn clock change (see LocalRange). The parser uses it to tell
// the two occurrences of a repeated wall time apart; a zero result (which
// LocalRange never causes) only leaves that to the file's time order.
func exportRange(w Window, loc *time.Location) [2]time.Time {
	tr := LocalRange(w, loc)
	from, err1 := csvrows.VendorInstant(tr[0], loc)
	to, err2 := csvrows.VendorInstant(tr[1], loc)
	if err1 != nil || err2 != nil {
		return [2]time.Time{}
	}
	return [2]time.Time{from, to}
}
