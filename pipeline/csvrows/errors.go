package csvrows

import (
	"fmt"
	"strings"
)

func errInvalidAnalysis(id int) error {
	return fmt.Errorf("Invalid value for analysis_fields: %d (valid: 1, 2, 3, 4, 5, 8, 12, 13, 14, 15)", id)
}

// HeaderMismatchError is a header line that does not name the columns the
// export request asked for, in that order. Loading such a file would put
// values in the wrong columns, so the whole file stops.
type HeaderMismatchError struct {
	Expected []string // the plan's header names
	Got      []string // the header cells as they came
	Column   int      // 1-based position of the first column that differs
}

func (e *HeaderMismatchError) Error() string {
	return fmt.Sprintf("header does not match the export request at column %d: expected %q, got %q",
		e.Column, strings.Join(e.Expected, ";"), strings.Join(e.Got, ";"))
}
