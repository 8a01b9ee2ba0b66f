package csvrows

import "fmt"

func errInvalidAnalysis(id int) error {
	return fmt.Errorf("Invalid value for analysis_fields: %d (valid: 1, 2, 3, 4, 5, 8, 12, 13, 14, 15)", id)
}
