package emarsys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// ExportRequest is the body of POST email/getresponses, in the documented
// form (numbers and arrays, not the strings of the vendor's example).
type ExportRequest struct {
	DistributionMethod  string       `json:"distribution_method"` // "ftp" or "local"
	TimeRange           [2]string    `json:"time_range"`          // account-local times
	ContactFields       []int        `json:"contact_fields"`
	Sources             []string     `json:"sources"`
	AnalysisFields      []int        `json:"analysis_fields"`
	EmailID             *int64       `json:"email_id,omitempty"`
	ContactList         *int64       `json:"contactlist,omitempty"`
	Delimiter           string       `json:"delimiter,omitempty"`
	AddFieldNamesHeader *int         `json:"add_field_names_header,omitempty"`
	Language            string       `json:"language,omitempty"`
	FTPSettings         *FTPSettings `json:"ftp_settings,omitempty"`
	NotificationURL     string       `json:"notification_url,omitempty"`
}

// FTPSettings tells the vendor where to upload the file.
type FTPSettings struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Username string `json:"username"`
	Password string `json:"password"`
	Folder   string `json:"folder,omitempty"`
}

// String hides the password from %v and %s.
func (s FTPSettings) String() string {
	return fmt.Sprintf("{Host:%s Port:%d Username:%s Password:*** Folder:%s}", s.Host, s.Port, s.Username, s.Folder)
}

// GoString hides the password from %#v.
func (s FTPSettings) GoString() string { return "emarsys.FTPSettings" + s.String() }

// Masked returns a copy with the FTP password replaced by "***", for logs
// and stored request snapshots.
func (r ExportRequest) Masked() ExportRequest {
	if r.FTPSettings != nil {
		fs := *r.FTPSettings
		if fs.Password != "" {
			fs.Password = "***"
		}
		r.FTPSettings = &fs
	}
	if i := strings.LastIndex(r.NotificationURL, "/"); i >= 0 && i < len(r.NotificationURL)-1 {
		// The last path element is the per-export secret token.
		r.NotificationURL = r.NotificationURL[:i+1] + "***"
	}
	r.ContactFields = append([]int(nil), r.ContactFields...)
	r.AnalysisFields = append([]int(nil), r.AnalysisFields...)
	r.Sources = append([]string(nil), r.Sources...)
	return r
}

// LogValue makes slog print the masked request.
func (r ExportRequest) LogValue() slog.Value {
	b, err := json.Marshal(r.Masked())
	if err != nil {
		return slog.StringValue("(unprintable export request)")
	}
	return slog.StringValue(string(b))
}

// notExportable names the contact fields the API refuses in this export.
// A switch, not a map, to keep the package free of mutable globals.
func notExportable(field int) (string, bool) {
	switch field {
	case 27:
		return "avg. length of visit", true
	case 28:
		return "avg. pages per day", true
	case 29:
		return "last mail received", true
	case 32:
		return "user status", true
	case 33:
		return "contact source", true
	}
	return "", false
}

// Validate checks what the API would refuse, so the user learns it before
// an export is requested.
func (r ExportRequest) Validate() error {
	var errs []error
	switch r.DistributionMethod {
	case "ftp":
		if r.FTPSettings == nil || r.FTPSettings.Host == "" {
			errs = append(errs, errors.New("distribution_method ftp needs ftp_settings with a host"))
		} else if p := r.FTPSettings.Port; p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("ftp_settings.port %d is not a TCP port", p))
		}
	case "local":
	default:
		errs = append(errs, fmt.Errorf("distribution_method %q: use ftp or local", r.DistributionMethod))
	}
	if r.TimeRange[0] == "" || r.TimeRange[1] == "" {
		errs = append(errs, errors.New("time_range needs a start and an end"))
	} else {
		from, err1 := parseRangeTime(r.TimeRange[0])
		to, err2 := parseRangeTime(r.TimeRange[1])
		switch {
		case err1 != nil || err2 != nil:
			errs = append(errs, fmt.Errorf("Invalid value for time_range: %q..%q (use YYYY-MM-DD HH:MM:SS, YYYY-MM-DD HH:MM or YYYY-MM-DD)", r.TimeRange[0], r.TimeRange[1]))
		case from.Before(time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)):
			errs = append(errs, fmt.Errorf("Invalid value for time_range: the start %s is before 1970-01-02", r.TimeRange[0]))
		case !to.After(from):
			errs = append(errs, fmt.Errorf("Invalid value for time_range: the end %s is not after the start %s", r.TimeRange[1], r.TimeRange[0]))
		}
	}
	if len(r.Sources) == 0 {
		errs = append(errs, errors.New("Invalid value for sources: at least one source is required"))
	}
	if r.DistributionMethod == "local" && r.FTPSettings != nil {
		errs = append(errs, errors.New("distribution_method local takes no ftp_settings"))
	}
	if len(r.ContactFields) == 0 {
		errs = append(errs, errors.New("contact_fields must not be empty"))
	}
	for _, f := range r.ContactFields {
		if name, ok := notExportable(f); ok {
			errs = append(errs, fmt.Errorf("contact field %d (%s) cannot be exported here: remove it", f, name))
		}
	}
	if n := len(r.ContactFields) + len(r.AnalysisFields); n > 20 {
		errs = append(errs, fmt.Errorf("%d contact and analysis fields asked for; the API allows 1 to 20", n))
	}
	if r.Delimiter != "" && r.Delimiter != "," && r.Delimiter != ";" {
		errs = append(errs, fmt.Errorf("delimiter %q: use , or ;", r.Delimiter))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid responses export request: %w", err)
	}
	return nil
}

// parseRangeTime reads the three time_range forms the API accepts.
func parseRangeTime(s string) (time.Time, error) {
	var err error
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		var t time.Time
		if t, err = time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

// StartResponsesExport starts an export (POST email/getresponses) and returns
// its id. It retries 5xx, rate limits and network errors; a 4001 reply
// (matching ErrAlreadyRunning) is returned at once.
func (c *Client) StartResponsesExport(ctx context.Context, req ExportRequest) (int64, error) {
	const endpoint = "email/getresponses"
	if err := req.Validate(); err != nil {
		return 0, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("start responses export: encode request: %w", err)
	}
	var ftpPassword string
	if req.FTPSettings != nil {
		ftpPassword = req.FTPSettings.Password
	}
	data, err := c.call(ctx, "POST", endpoint, body, ftpPassword)
	if err != nil {
		if errors.Is(err, ErrAlreadyRunning) {
			return 0, fmt.Errorf("start responses export %s..%s: %w (possibly started by an earlier attempt of this call that timed out: wait for it to finish, then retry)",
				req.TimeRange[0], req.TimeRange[1], err)
		}
		return 0, fmt.Errorf("start responses export %s..%s: %w", req.TimeRange[0], req.TimeRange[1], err)
	}
	var d struct {
		ID flexInt64 `json:"id"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return 0, fmt.Errorf("start responses export: decode reply data: %w", err)
	}
	if d.ID <= 0 {
		return 0, errors.New("start responses export: the reply holds no export id")
	}
	return int64(d.ID), nil
}

// Export statuses, in the order an export goes through them.
const (
	StatusScheduled  = "scheduled"
	StatusInProgress = "in progress"
	StatusReady      = "ready" // file made, not yet delivered to FTP
	StatusDone       = "done"  // delivered
	StatusError      = "error"
)

// ExportStatus is the data of GET export/{id}. Status is lower-cased.
type ExportStatus struct {
	ID       int64
	Created  string // Vienna local time, as the API sends it
	Status   string
	Type     string
	FileName string // empty until done
	FTPHost  string
	FTPDir   string
}

// ExportStatus fetches the status of export id (GET export/{id}), retrying
// retryable errors.
func (c *Client) ExportStatus(ctx context.Context, id int64) (ExportStatus, error) {
	endpoint := "export/" + strconv.FormatInt(id, 10)
	data, err := c.call(ctx, "GET", endpoint, nil)
	if err != nil {
		return ExportStatus{}, fmt.Errorf("status of export %d: %w", id, err)
	}
	var d struct {
		ID       flexInt64  `json:"id"`
		Created  flexString `json:"created"`
		Status   flexString `json:"status"`
		Type     flexString `json:"type"`
		FileName flexString `json:"file_name"`
		FTPHost  flexString `json:"ftp_host"`
		FTPDir   flexString `json:"ftp_dir"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return ExportStatus{}, fmt.Errorf("status of export %d: decode reply data: %w", id, err)
	}
	st := ExportStatus{
		ID:       int64(d.ID),
		Created:  string(d.Created),
		Status:   strings.ToLower(strings.TrimSpace(string(d.Status))),
		Type:     string(d.Type),
		FileName: string(d.FileName),
		FTPHost:  string(d.FTPHost),
		FTPDir:   string(d.FTPDir),
	}
	if st.ID == 0 {
		st.ID = id
	}
	if st.Status == "" {
		return st, fmt.Errorf("status of export %d: the reply holds no status", id)
	}
	return st, nil
}

// WaitOptions tunes WaitDone. Zero values get the defaults in brackets.
type WaitOptions struct {
	Initial    time.Duration // first poll delay [5s]
	Max        time.Duration // poll delay cap [1m]
	Deadline   time.Duration // overall wait [6h]
	StuckAfter time.Duration // how long 'ready' may last before ErrStuck; 0 = never
	OnPoll     func(ExportStatus)
	// Wake, when it yields, cuts the current poll delay short (the
	// notification_url call came). Polling goes on without it.
	Wake <-chan struct{}
}

// WaitDone polls export id with growing, jittered delays until it is done.
// Status 'error' returns *ExportFailedError. An export left 'ready' for longer
// than StuckAfter returns an error wrapping ErrStuck. Failed polls that are
// retryable do not end the wait: an API outage during a long export is
// outlived until the deadline.
func (c *Client) WaitDone(ctx context.Context, id int64, o WaitOptions) (ExportStatus, error) {
	if o.Initial <= 0 {
		o.Initial = 5 * time.Second
	}
	if o.Max <= 0 {
		o.Max = time.Minute
	}
	if o.Max < o.Initial {
		o.Max = o.Initial
	}
	if o.Deadline <= 0 {
		o.Deadline = 6 * time.Hour
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, o.Deadline)
	defer cancel()

	var (
		last        ExportStatus
		lastErr     error
		readySince  time.Time // monotonic: real elapsed time, not Config.Now
		polls       int
		failedPolls int // in a row
	)
	for {
		st, err := c.ExportStatus(ctx, id)
		switch {
		case err == nil:
			last, lastErr, failedPolls = st, nil, 0
			if o.OnPoll != nil {
				o.OnPoll(st)
			}
			switch st.Status {
			case StatusDone:
				return st, nil
			case StatusError:
				return st, &ExportFailedError{Status: st}
			case StatusReady:
				if readySince.IsZero() {
					readySince = time.Now()
				}
				if o.StuckAfter > 0 && time.Since(readySince) >= o.StuckAfter {
					return st, fmt.Errorf("export %d has been %q for %s without delivery: the vendor likely cannot reach or log in to the FTP server %s (check host, port, firewall, user and password of ftp_settings); it retries hourly: %w",
						id, st.Status, time.Since(readySince).Round(time.Second), ftpTarget(st), ErrStuck)
				}
			default:
				readySince = time.Time{}
			}
		case ctx.Err() == nil && IsRetryable(err):
			lastErr = err
			failedPolls++
			if failedPolls == 1 || failedPolls%10 == 0 {
				// An API that stays unreachable is otherwise silent until
				// the export's deadline (hours).
				c.log.Warn("emarsys: status poll failed, polling on until emarsys.export_timeout", "export_id", id,
					"failed_polls", failedPolls, "err", err)
			} else {
				c.log.Debug("emarsys: status poll failed, will poll again", "endpoint", fmt.Sprintf("export/%d", id))
			}
		default:
			if ctx.Err() == nil {
				return last, err
			}
			lastErr = err
		}

		delay := jitter(expDelay(o.Initial, o.Max, polls))
		polls++
		if err := sleepOrWake(ctx, delay, o.Wake); err != nil || ctx.Err() != nil {
			if parent.Err() != nil {
				return last, fmt.Errorf("wait for export %d: %w", id, parent.Err())
			}
			status := last.Status
			if status == "" {
				status = "unknown"
			}
			if lastErr != nil {
				return last, fmt.Errorf("wait for export %d: still %q after %s: %w (last poll error: %w)", id, status, o.Deadline, context.DeadlineExceeded, lastErr)
			}
			return last, fmt.Errorf("wait for export %d: still %q after %s: %w", id, status, o.Deadline, context.DeadlineExceeded)
		}
	}
}

// sleepOrWake waits for d, a wake-up or the end of ctx.
func sleepOrWake(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	case <-wake:
		return nil
	}
}

func ftpTarget(st ExportStatus) string {
	if st.FTPHost == "" {
		return "in ftp_settings"
	}
	if st.FTPDir != "" {
		return st.FTPHost + " (folder " + st.FTPDir + ")"
	}
	return st.FTPHost
}
