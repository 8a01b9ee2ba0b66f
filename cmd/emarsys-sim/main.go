// Command emarsys-sim runs a stand-in for the Emarsys export API, and
// optionally an FTP server the exports are delivered to, for demos and tests.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/ftpd"
	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/sim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "emarsys-sim:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		listen        = flag.String("listen", "127.0.0.1:8780", "HTTP listen address of the API")
		user          = flag.String("user", "sim_user", "WSSE user name (and OAuth client id)")
		secret        = flag.String("secret", "", "WSSE secret (and OAuth client secret); default $EMARSYS_SIM_SECRET")
		seed          = flag.Int64("seed", 1, "generator seed")
		tz            = flag.String("tz", sim.DefaultZone, "account time zone")
		perHour       = flag.Int("events-per-hour", 200, "mean responses per hour")
		contacts      = flag.Int("contacts", 5000, "number of contacts")
		campaigns     = flag.Int("campaigns", 40, "number of campaigns")
		tricky        = flag.Bool("tricky", false, "values with delimiters, quotes and line breaks")
		schedDelay    = flag.Duration("scheduled-delay", 2*time.Second, "time an export stays scheduled")
		progressDelay = flag.Duration("progress-delay", 3*time.Second, "time an export stays in progress")
		readyDelay    = flag.Duration("ready-delay", 1*time.Second, "time between file made and delivery")
		ftpRetry      = flag.Duration("ftp-retry", 10*time.Second, "retry interval of failed FTP deliveries")
		brokenRows    = flag.Int("broken-rows", 0, "malformed records injected into every export")
		ftpListen     = flag.String("ftp-listen", "", "also run an FTP server on this address (e.g. 127.0.0.1:2121)")
		ftpRoot       = flag.String("ftp-root", "", "directory served by the embedded FTP server")
		ftpUser       = flag.String("ftp-user", "etl", "user of the embedded FTP server")
		ftpPassword   = flag.String("ftp-password", "", "password of the embedded FTP server; default $EMARSYS_SIM_FTP_PASSWORD")
		verbose       = flag.Bool("v", false, "debug logging")
	)
	flag.Parse()

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	if *secret == "" {
		*secret = os.Getenv("EMARSYS_SIM_SECRET")
	}
	if *secret == "" {
		return errors.New("no secret: set -secret or EMARSYS_SIM_SECRET")
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("time zone %q: %w", *tz, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *ftpListen != "" {
		if *ftpRoot == "" {
			return errors.New("-ftp-listen needs -ftp-root")
		}
		if *ftpPassword == "" {
			*ftpPassword = os.Getenv("EMARSYS_SIM_FTP_PASSWORD")
		}
		if *ftpPassword == "" {
			return errors.New("-ftp-listen needs -ftp-password or EMARSYS_SIM_FTP_PASSWORD")
		}
		if err := os.MkdirAll(*ftpRoot, 0o755); err != nil {
			return fmt.Errorf("ftp root: %w", err)
		}
		fs, err := ftpd.Start(ftpd.Options{Root: *ftpRoot, User: *ftpUser, Password: *ftpPassword, Addr: *ftpListen, Logger: log})
		if err != nil {
			return fmt.Errorf("start ftp server: %w", err)
		}
		defer fs.Close()
		fmt.Printf("ftp ftp://%s\n", net.JoinHostPort(fs.Host(), fmt.Sprint(fs.Port())))
		log.Info("ftp server listening", "host", fs.Host(), "port", fs.Port(), "root", *ftpRoot, "user", *ftpUser)
	}

	s := sim.New(sim.Config{
		User:   *user,
		Secret: *secret,
		Generator: sim.Generator{
			Seed: *seed, Loc: loc, Contacts: *contacts, Campaigns: *campaigns,
			EventsPerHour: *perHour, Tricky: *tricky,
		},
		ScheduledDelay:      *schedDelay,
		InProgressDelay:     *progressDelay,
		ReadyDelay:          *readyDelay,
		FTPRetryInterval:    *ftpRetry,
		BrokenRowsPerExport: *brokenRows,
		Logger:              log,
	})
	defer s.Close()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *listen, err)
	}
	fmt.Printf("api http://%s/api/v2/\n", ln.Addr())
	log.Info("api listening", "addr", ln.Addr().String(), "user", *user, "seed", *seed, "tz", *tz)

	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}
