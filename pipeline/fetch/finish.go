package fetch

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
)

// AfterLoad says what to do with a file on the FTP server once it is loaded.
// The zero value keeps it.
type AfterLoad string

const (
	Keep    AfterLoad = "keep"
	Delete  AfterLoad = "delete"
	Archive AfterLoad = "archive" // move into an archive folder
)

// ParseAfterLoad reads a configured action; "" means Keep.
func ParseAfterLoad(s string) (AfterLoad, error) {
	switch a := AfterLoad(strings.ToLower(strings.TrimSpace(s))); a {
	case "", Keep:
		return Keep, nil
	case Delete, Archive:
		return a, nil
	}
	return "", fmt.Errorf("after-load action %q: use keep, delete or archive", s)
}

// Finish applies action to file name in cfg.Folder: Delete removes it
// (DELE); Archive moves it into archiveDir (RNFR/RNTO), creating the folder
// if needed. A relative archiveDir is taken from cfg.Folder. An existing
// file of the same name in archiveDir may be replaced, depending on the
// server.
func Finish(ctx context.Context, cfg FTPConfig, name string, action AfterLoad, archiveDir string) error {
	if err := ValidateFileName(name); err != nil {
		return err
	}
	switch action {
	case "", Keep:
		return nil
	case Delete:
	case Archive:
		archiveDir = strings.TrimRight(archiveDir, "/")
		if archiveDir == "" {
			return errors.New("after-load action archive needs an archive folder")
		}
		if err := checkDir(archiveDir); err != nil {
			return fmt.Errorf("archive folder %q: %w", archiveDir, err)
		}
	default:
		return fmt.Errorf("after-load action %q: use keep, delete or archive", action)
	}

	s, err := dial(ctx, cfg)
	if err != nil {
		return err
	}
	if action == Delete {
		s.step()
		err := s.conn.Delete(name)
		if err != nil {
			err = s.errf("DELE", name, notFound(s.cause(err)))
		}
		return errors.Join(err, quitErr(s))
	}

	target := path.Join(archiveDir, name)
	s.step()
	if err := s.conn.Rename(name, target); err != nil {
		// Most likely the folder is missing: make it, then try once more.
		s.mkdirAll(archiveDir)
		s.step()
		if err := s.conn.Rename(name, target); err != nil {
			return errors.Join(s.errf("RNFR/RNTO to "+target, name, notFound(s.cause(err))), quitErr(s))
		}
	}
	return quitErr(s)
}

// mkdirAll makes each level of dir; errors are ignored because existing
// levels fail MKD, and the rename that follows reports real trouble.
func (s *session) mkdirAll(dir string) {
	prefix := ""
	if strings.HasPrefix(dir, "/") {
		prefix = "/"
	}
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if part == "" || part == "." {
			continue
		}
		prefix = path.Join(prefix, part)
		s.step()
		_ = s.conn.MakeDir(prefix)
	}
}

func quitErr(s *session) error {
	if err := s.close(); err != nil {
		return fmt.Errorf("FTP %s: quit: %w", s.cfg.addr(), err)
	}
	return nil
}
