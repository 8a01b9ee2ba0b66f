package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline"
	"github.com/emarsys-etl/emarsys-etl/pipeline/config"
	"github.com/emarsys-etl/emarsys-etl/pipeline/emarsys"
	"github.com/emarsys-etl/emarsys-etl/pipeline/fetch"
)

// checkTimeout bounds each part of --check-config.
const checkTimeout = 30 * time.Second

// runCheckConfigs checks each account in turn (one header line per account
// when there are several); exit 0 only when every check of every account passed.
func runCheckConfigs(cfgs []*config.Config, w io.Writer) int {
	if len(cfgs) == 1 {
		return runCheckConfig(cfgs[0], w)
	}
	code, failedAccts := exitOK, []string{}
	for i, c := range cfgs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "account %s:\n", c.Account)
		if runCheckConfig(c, w) != exitOK {
			code = exitFailed
			failedAccts = append(failedAccts, c.Account)
		}
	}
	if len(failedAccts) > 0 {
		fmt.Fprintf(w, "\naccounts with failed checks: %s\n", strings.Join(failedAccts, ", "))
	} else {
		fmt.Fprintf(w, "\nall %d accounts passed\n", len(cfgs))
	}
	return code
}

// runCheckConfig tries every outside dependency for real and prints one line
// per check; exit 0 only when all passed. It runs each part even after one
// failed, so a single run names every problem.
func runCheckConfig(cfg *config.Config, w io.Writer) int {
	failed := 0
	report := func(what string, err error) {
		if err != nil {
			failed++
			fmt.Fprintf(w, "FAIL %s: %v\n", what, err)
			return
		}
		fmt.Fprintf(w, "ok   %s\n", what)
	}
	fmt.Fprintln(w, "configuration syntax and values: ok")

	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	report(fmt.Sprintf("Emarsys API credentials (%s, user %s, one authenticated call to %s)", cfg.Emarsys.Auth, cfg.Emarsys.User, cfg.Emarsys.BaseURL),
		checkEmarsys(ctx, cfg))
	cancel()

	if cfg.FTP.Host != "" {
		ctx, cancel = context.WithTimeout(context.Background(), checkTimeout)
		for _, st := range fetch.Check(ctx, fetch.FTPConfig{Host: cfg.FTP.Host, Port: cfg.FTP.Port, User: cfg.FTP.User,
			Password: cfg.FTP.Password, Folder: cfg.FTP.Folder, Timeout: cfg.FTP.Timeout}) {
			report(st.What, st.Err)
		}
		cancel()
	}

	ctx, cancel = context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	store, err := chstore.Open(ctx, chstore.Config{Addr: cfg.ClickHouse.Addr, Database: cfg.ClickHouse.Database,
		User: cfg.ClickHouse.User, Password: cfg.ClickHouse.Password, DialTimeout: 10 * time.Second, Cluster: cfg.ClickHouse.Cluster})
	report(fmt.Sprintf("ClickHouse login as %s at %s", cfg.ClickHouse.User, cfg.ClickHouse.Addr), err)
	if err == nil {
		defer store.Close()
		report(fmt.Sprintf("ClickHouse database %s is writable (probe table created, written, dropped)", cfg.ClickHouse.Database),
			store.CheckWritable(ctx))
	}

	if failed > 0 {
		fmt.Fprintf(w, "%d check(s) failed\n", failed)
		return exitFailed
	}
	fmt.Fprintln(w, "all checks passed")
	return exitOK
}

// checkEmarsys makes one authenticated call: the status of an export id that
// does not exist. A refusal of the credentials fails; the API's "invalid
// export id" reply means they were accepted. Any reply of the token
// endpoint that is an error (OAuth answers 400 invalid_client) fails.
func checkEmarsys(ctx context.Context, cfg *config.Config) error {
	api, err := pipeline.NewAPIClient(cfg, &http.Client{Timeout: cfg.Emarsys.RequestTimout}, slog.New(slog.DiscardHandler),
		func(ec *emarsys.Config) { ec.MaxAttempts = 1 })
	if err != nil {
		return err
	}
	_, err = api.ExportStatus(ctx, 1)
	var ae *emarsys.APIError
	if err == nil || errors.As(err, &ae) && !strings.Contains(ae.Endpoint, "token") && ae.HTTPStatus != http.StatusUnauthorized && ae.HTTPStatus != http.StatusForbidden &&
		ae.HTTPStatus < 500 && ae.HTTPStatus != http.StatusTooManyRequests && ae.HTTPStatus != 0 {
		return nil
	}
	return err
}
