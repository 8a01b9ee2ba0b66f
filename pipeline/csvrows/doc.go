// Package csvrows turns the bytes of an Emarsys responses export into typed rows.
//
// Parse streams one file: records are split exactly as encoding/csv splits
// them (RFC 4180 quoting, CRLF or LF, a leading UTF-8 BOM skipped), by a
// splitter of its own for records on one line (with or without quotes) and
// by encoding/csv for the others (fastreader.go), columns are bound by position to a Plan
// built from the export request, and each cell is typed by its field's
// schema.Kind. A record that cannot be typed becomes a Reject holding its exact
// bytes; only I/O errors, a header that contradicts the plan and callback
// errors stop the file. A Row's strings are views of the read buffer, valid
// until the callback returns: the parser allocates nothing per row, and a
// consumer that keeps a value copies it.
//
// # Times
//
// The Time column (event_time) holds wall-clock times of the account's zone
// (Options.Loc, Europe/Vienna by default). Accepted forms are
// "YYYY-MM-DD HH:MM:SS", the same with 'T' for the space, with ":SS" left off,
// with a fraction of a second, and a bare "YYYY-MM-DD" (midnight). A fraction
// is truncated, not rounded: ClickHouse stores whole seconds and truncation
// keeps 23:59:59.9 in its own day and export window.
//
// Daylight saving time:
//   - a wall time that does not exist (the spring-forward gap, e.g.
//     2026-03-29 02:30:00 in Europe/Vienna) is rejected;
//   - a wall time that occurs twice (the autumn fall-back hour, e.g.
//     2026-10-25 02:30:00) is resolved from the evidence around it (see
//     resolveRepeated): if only one of its two instants lies in the export's
//     range (Options.ExportRange), that one; else, since Emarsys writes rows
//     in time order, the first occurrence (summer time) until a reading of
//     that hour goes back on the clock, and the second from then on (not in
//     a file that goes back in time elsewhere: it is not time-ordered). A
//     reading neither settles is the first occurrence, as the vendor reads
//     a time_range.
//
// Dates (KindDate) are calendar dates with no zone: Value.T is midnight UTC of
// that day.
package csvrows
