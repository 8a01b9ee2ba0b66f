package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
	"github.com/emarsys-etl/emarsys-etl/pipeline/emarsys"
	"github.com/emarsys-etl/emarsys-etl/pipeline/fetch"
)

// NewAPIClient builds the Emarsys client from the config: auth mode, token
// URL, timeouts. main.go and the test harness both wire through here. hc may
// be nil; tune, when set, adjusts the client config last (tests: fast retries).
// One client (and so one rate limiter) serves every window of the account.
func NewAPIClient(cfg *config.Config, hc *http.Client, log *slog.Logger, tune func(*emarsys.Config)) (*emarsys.Client, error) {
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Emarsys.RequestTimout}
	}
	ec := emarsys.Config{
		BaseURL:        cfg.Emarsys.BaseURL,
		Auth:           cfg.Emarsys.Auth,
		TokenURL:       cfg.Emarsys.TokenURL,
		User:           cfg.Emarsys.User,
		Secret:         cfg.Emarsys.Secret,
		HTTPClient:     hc,
		Logger:         log,
		RequestTimeout: cfg.Emarsys.RequestTimout,
	}
	if tune != nil {
		tune(&ec)
	}
	c, err := emarsys.New(ec)
	if err != nil {
		return nil, fmt.Errorf("Emarsys client (emarsys.*): %w", err)
	}
	return c, nil
}

// NewSource returns where export files are read from: the FTP server, or
// the API's data download for distribution_method local.
func NewSource(cfg *config.Config, api *emarsys.Client) (Source, error) {
	if cfg.Export.DistributionMethod == "local" {
		return LocalSource{API: api, PageRows: cfg.Emarsys.PageRows, Header: *cfg.Export.Header}, nil
	}
	fc := fetch.FTPConfig{Host: cfg.FTP.Host, Port: cfg.FTP.Port, User: cfg.FTP.User,
		Password: cfg.FTP.Password, Folder: cfg.FTP.Folder, Timeout: cfg.FTP.Timeout, TLS: cfg.FTP.TLS}
	if cfg.FTP.CAFile != "" {
		pool, err := fetch.LoadCAFile(cfg.FTP.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ftp.ca_file: %w", err)
		}
		fc.RootCAs = pool
	}
	return FTPSource{Cfg: fc, AfterLoad: fetch.AfterLoad(cfg.FTP.AfterLoad), Archive: cfg.FTP.ArchiveFolder}, nil
}

// ExportSource is a Source that reads by export id rather than file name.
type ExportSource interface {
	OpenExport(ctx context.Context, exportID int64, fileName string) (io.ReadCloser, error)
}

// LocalSource reads a distribution_method local export from
// GET export/{id}/data, paged and streamed.
type LocalSource struct {
	API      *emarsys.Client
	PageRows int
	Header   bool
}

// Open is not used: the data call needs the export id (see OpenExport).
func (s LocalSource) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	return nil, fmt.Errorf("local export %s: open by export id", name)
}

// OpenExport streams the export's CSV from the API.
func (s LocalSource) OpenExport(ctx context.Context, id int64, _ string) (io.ReadCloser, error) {
	return s.API.OpenData(ctx, id, s.PageRows, s.Header), nil
}

// Finish has nothing to do: the vendor drops local files by itself.
func (s LocalSource) Finish(context.Context, string) error { return nil }

// Preflight fails fast when the FTP server refuses the configured login:
// exports delivered there would wait in "ready" until stuck_after, window
// after window. Other errors (the server briefly away) are left to the
// windows' own retries.
func Preflight(ctx context.Context, src Source) error {
	fs, ok := src.(FTPSource)
	if !ok {
		return nil
	}
	if err := fetch.Login(ctx, fs.Cfg); err != nil && errors.Is(err, fetch.ErrLoginRefused) {
		return err
	}
	return nil
}
