package fetch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
)

// CheckStep is the outcome of one step of Check.
type CheckStep struct {
	What string // e.g. "FTP login as emarsys at host:21"
	Err  error  // nil: passed
}

// Check verifies for real what the pipeline needs from the FTP server: the
// login, that the folder exists and can be listed (read), and that a file
// can be written and deleted there (Emarsys uploads, the ETL archives or
// deletes). It stops at the first failed step; errors never hold the password.
func Check(ctx context.Context, cfg FTPConfig) []CheckStep {
	var out []CheckStep
	folder := cfg.Folder
	if folder == "" {
		folder = "(login directory)"
	}
	// Log in without the folder first, so a wrong password and a missing
	// folder are told apart.
	login := cfg
	login.Folder = ""
	s, err := dial(ctx, login)
	out = append(out, CheckStep{fmt.Sprintf("FTP login as %s at %s", cfg.User, cfg.addr()), err})
	if err != nil {
		return out
	}
	defer s.close()
	if cfg.Folder != "" {
		s.step()
		err := s.conn.ChangeDir(cfg.Folder)
		if err != nil {
			err = notFound(s.cause(err))
		}
		out = append(out, CheckStep{fmt.Sprintf("FTP folder %s exists", folder), err})
		if err != nil {
			return out
		}
	}
	s.step()
	_, err = s.conn.NameList(".")
	if err != nil {
		err = s.cause(err)
	}
	out = append(out, CheckStep{fmt.Sprintf("FTP folder %s can be read (listed)", folder), err})
	if err != nil {
		return out
	}
	var b [6]byte
	rand.Read(b[:])
	probe := ".emarsys-etl-check-" + hex.EncodeToString(b[:])
	s.step()
	err = s.conn.Stor(probe, strings.NewReader("emarsys-etl --check-config\n"))
	if err == nil {
		s.step()
		err = s.conn.Delete(probe)
	}
	if err != nil {
		err = s.cause(err)
	}
	out = append(out, CheckStep{fmt.Sprintf("FTP folder %s can be written (a probe file stored and deleted)", folder), err})
	return out
}
