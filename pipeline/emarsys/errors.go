package emarsys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Reply codes the client acts on.
const (
	ReplyAlreadyRunning = 4001 // an export with the same settings is running
	ReplyRateLimited    = 7003 // too many requests

	// Replies of GET export/{id}/data.
	ReplyFileGone      = 4003 // file no longer stored: request the export again
	ReplyNotLocal      = 4004 // not a distribution_method local export
	ReplyInProgress    = 4005 // still being made: wait
	ReplyFileNotFound  = 4006
	ReplyDownloadError = 4007 // server error making the file
)

var (
	// ErrAlreadyRunning matches (errors.Is) an API reply 4001: an export with
	// the same settings is already running.
	ErrAlreadyRunning = errors.New("an export with the same settings is already running")
	// ErrClockSkew matches a 401 explained by the local clock differing from
	// the API's by more than the WSSE window allows.
	ErrClockSkew = errors.New("local clock differs from the API clock")
	// ErrStuck is wrapped by WaitDone when an export stays 'ready' longer than
	// WaitOptions.StuckAfter.
	ErrStuck = errors.New("export stuck in status ready")
	// ErrExportGone matches a download reply (4003, 4006) that only a new
	// export can fix.
	ErrExportGone = errors.New("the export's file is gone: request the export again")
)

// APIError is a reply the API did not accept: an HTTP status >= 400, a
// non-zero replyCode (even with HTTP 200) or a body that is not the JSON
// envelope. It never holds the API secret or the FTP password.
type APIError struct {
	HTTPStatus int
	ReplyCode  int
	ReplyText  string
	Endpoint   string // relative path, e.g. "email/getresponses"
	BodyPrefix string // first bytes of a non-JSON body, cleaned for printing
	// ClockSkew is local minus API time when a 401 is explained by the clock
	// (more than 4 minutes apart); zero otherwise.
	ClockSkew time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "emarsys API %s: HTTP %d", e.Endpoint, e.HTTPStatus)
	if e.ClockSkew != 0 {
		dir := "ahead of"
		if e.ClockSkew < 0 {
			dir = "behind"
		}
		fmt.Fprintf(&b, ": local clock is %d s %s the API; WSSE needs the clocks within 5 minutes, sync the clock (NTP)",
			int64(e.ClockSkew.Abs().Round(time.Second)/time.Second), dir)
		return b.String()
	}
	if e.ReplyCode != 0 {
		fmt.Fprintf(&b, ", replyCode %d", e.ReplyCode)
	}
	if e.ReplyText != "" {
		fmt.Fprintf(&b, ": %s", e.ReplyText)
	}
	if e.BodyPrefix != "" {
		fmt.Fprintf(&b, ": non-JSON reply %q", e.BodyPrefix)
	}
	switch e.ReplyCode {
	case ReplyFileGone:
		b.WriteString(" (the export file is no longer stored: the export must be requested again)")
	case ReplyNotLocal:
		b.WriteString(" (not a local export: only distribution_method local can be downloaded through the API)")
	case ReplyInProgress:
		b.WriteString(" (the export is still being made: wait and try again)")
	case ReplyFileNotFound:
		b.WriteString(" (the export file was not found: the export must be requested again)")
	case ReplyDownloadError:
		b.WriteString(" (the API failed to serve the file: retried)")
	case ReplyAlreadyRunning:
		b.WriteString(" (an export with the same settings is running: waiting for it)")
	}
	switch {
	case e.HTTPStatus == 401 && e.Endpoint == "oauth2/token":
		b.WriteString(" (OAuth token refused)")
	case e.HTTPStatus == 401:
		b.WriteString(" (authentication failed: check the API user name and secret)")
	case e.HTTPStatus == 403:
		b.WriteString(" (the API user lacks permission for this endpoint)")
	}
	return b.String()
}

// Is lets errors.Is match the sentinel errors for reply codes.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrAlreadyRunning:
		return e.ReplyCode == ReplyAlreadyRunning
	case ErrClockSkew:
		return e.ClockSkew != 0
	case ErrExportGone:
		return e.ReplyCode == ReplyFileGone || e.ReplyCode == ReplyFileNotFound
	}
	return false
}

func (e *APIError) rateLimited() bool {
	return e.HTTPStatus == 429 || e.ReplyCode == ReplyRateLimited
}

// IsRetryable reports whether err is worth another attempt: 5xx replies,
// rate limiting (429 / replyCode 7003) and network errors. A cancelled
// context is not.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.HTTPStatus >= 500 || ae.rateLimited() || ae.ReplyCode == ReplyInProgress || ae.ReplyCode == ReplyDownloadError
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// A per-attempt timeout; the caller's own deadline is checked separately.
		return true
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// ExportFailedError is returned by WaitDone when the export ends in status
// 'error'. The API gives no reason.
type ExportFailedError struct {
	Status ExportStatus
}

func (e *ExportFailedError) Error() string {
	return fmt.Sprintf("emarsys export %d (%s, created %s) ended with status %q; the API gives no reason: check the export settings and start it again",
		e.Status.ID, e.Status.Type, e.Status.Created, e.Status.Status)
}

// cleanPrefix returns up to n bytes of body as printable text, so an HTML
// error page can be quoted in an error without garbling a log line.
func cleanPrefix(body []byte, n int) string {
	if len(body) > n {
		body = body[:n]
		// Do not cut a UTF-8 sequence in half.
		for len(body) > 0 && !utf8.Valid(body) {
			body = body[:len(body)-1]
		}
	}
	s := strings.ToValidUTF8(string(body), "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// redact removes secrets from text taken from a reply: a server may echo the
// request, and the FTP password is in the start request.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}
