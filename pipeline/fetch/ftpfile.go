package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
)

// FTPFile streams one file over FTP. It checks the byte count against the
// size the server reported, so a cut transfer is an error, never a short
// file that looks whole.
type FTPFile struct {
	s        *session
	resp     io.ReadCloser // *ftp.Response; an interface so tests can cut the stream
	name     string
	size     int64
	read     int64
	err      error // sticky: once set, every Read returns it
	respDone bool
}

// OpenFTP connects, logs in, changes to cfg.Folder, asks the file's size and
// starts the download. The caller reads the returned file and must Close it.
func OpenFTP(ctx context.Context, cfg FTPConfig, name string) (*FTPFile, error) {
	if err := ValidateFileName(name); err != nil {
		return nil, err
	}
	s, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	size, err := s.size(name)
	if err != nil {
		s.close()
		return nil, err
	}
	s.step()
	resp, err := s.conn.Retr(name)
	if err != nil {
		err = s.cause(err)
		s.close()
		return nil, s.errf("RETR", name, notFound(err))
	}
	return &FTPFile{s: s, resp: resp, name: name, size: size}, nil
}

// size asks SIZE, falling back to LIST for servers without SIZE.
func (s *session) size(name string) (int64, error) {
	s.step()
	n, err := s.conn.FileSize(name)
	if err == nil {
		return n, nil
	}
	if !notImplemented(err) {
		return 0, s.errf("SIZE", name, notFound(s.cause(err)))
	}
	s.step()
	entries, lerr := s.conn.List(name)
	if lerr != nil {
		return 0, s.errf("LIST (the server has no SIZE)", name, notFound(s.cause(lerr)))
	}
	for _, e := range entries {
		if path.Base(e.Name) == name {
			return int64(e.Size), nil
		}
	}
	return 0, s.errf("LIST (the server has no SIZE)", name, ErrNotFound)
}

// errf names the server, the folder, the step and the file.
func (s *session) errf(step, name string, err error) error {
	where := s.cfg.addr()
	if s.cfg.Folder != "" {
		where += fmt.Sprintf(" (folder %q)", s.cfg.Folder)
	}
	return fmt.Errorf("FTP %s: %s %q: %w", where, step, name, err)
}

// Size is the file size the server reported before the download.
func (f *FTPFile) Size() int64 { return f.size }

// Name is the file name.
func (f *FTPFile) Name() string { return f.name }

// Read reads the next bytes. It returns io.EOF only after exactly Size bytes
// and the server's confirmation of the transfer; a stream that ends early,
// runs long or is not confirmed is an error. Each Read may wait at most the
// configured step timeout.
func (f *FTPFile) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if err := f.s.ctx.Err(); err != nil {
		f.err = f.s.errf("RETR", f.name, fmt.Errorf("after %d of %d bytes: %w", f.read, f.size, err))
		return 0, f.err
	}
	f.s.step()
	n, err := f.resp.Read(p)
	f.read += int64(n)
	if f.read > f.size {
		f.err = f.s.errf("RETR", f.name, fmt.Errorf("received more than the %d bytes SIZE reported: the file changed during the download", f.size))
		return n, f.err
	}
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, io.EOF):
		if f.read < f.size {
			f.err = f.s.errf("RETR", f.name, fmt.Errorf("stream ended after %d of %d bytes: %w", f.read, f.size, io.ErrUnexpectedEOF))
			return n, f.err
		}
		// All bytes are here; the server's final reply (226) says whether it
		// thinks so too.
		f.s.step()
		f.respDone = true
		if cerr := f.resp.Close(); cerr != nil {
			f.err = f.s.errf("RETR", f.name, fmt.Errorf("transfer not confirmed: %w", f.s.cause(cerr)))
			return n, f.err
		}
		f.err = io.EOF
		return n, io.EOF
	default:
		f.err = f.s.errf("RETR", f.name, fmt.Errorf("after %d of %d bytes: %w", f.read, f.size, f.s.cause(err)))
		return n, f.err
	}
}

// Close ends the download (aborting it if unfinished) and quits the
// connection.
func (f *FTPFile) Close() error {
	if f.s == nil {
		return nil
	}
	if !f.respDone {
		f.respDone = true
		f.s.step()
		// An aborted transfer ends with an error reply: expected, not news.
		_ = f.resp.Close()
	}
	err := f.s.close()
	f.s.conn = nil
	f.s = nil
	if f.err == nil || f.err == io.EOF {
		f.err = fmt.Errorf("read %q: %w", f.name, os.ErrClosed)
	}
	if err != nil {
		return fmt.Errorf("FTP quit after %q: %w", f.name, err)
	}
	return nil
}

var _ io.ReadCloser = (*FTPFile)(nil)
