package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"time"
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
	resumes  int
}

// DefaultMaxResumes bounds how often one download is resumed (REST) after
// a break, unless FTPConfig.MaxResumes says otherwise.
const DefaultMaxResumes = 3

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
			cut := fmt.Errorf("stream ended after %d of %d bytes: %w", f.read, f.size, io.ErrUnexpectedEOF)
			if rerr := f.resume(cut); rerr != nil {
				f.err = f.s.errf("RETR", f.name, rerr)
				return n, f.err
			}
			return n, nil
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
		cut := fmt.Errorf("after %d of %d bytes: %w", f.read, f.size, f.s.cause(err))
		if f.s.ctx.Err() == nil {
			rerr := f.resume(cut)
			if rerr == nil {
				return n, nil
			}
			cut = rerr
		}
		f.err = f.s.errf("RETR", f.name, cut)
		return n, f.err
	}
}

// Resumes is how often the download was resumed after a break.
func (f *FTPFile) Resumes() int { return f.resumes }

// resume reconnects after a transfer broke and goes on from the bytes
// already read (REST + RETR), after checking that the file still has the
// size it had: a file that changed is not glued from two versions. Bounded
// by FTPConfig.MaxResumes per file, with backoff and jitter.
func (f *FTPFile) resume(cause error) error {
	old := f.s
	ctx := old.ctx
	limit := old.cfg.MaxResumes
	if limit == 0 {
		limit = DefaultMaxResumes
	}
	if limit < 0 {
		return cause
	}
	for f.resumes < limit {
		f.resumes++
		if !f.respDone {
			f.respDone = true
			old.step()
			_ = f.resp.Close() // the broken transfer's error reply is expected
		}
		_ = old.close()
		old.conn = nil // closed: a later Close must not QUIT again
		d := time.Duration(100<<(f.resumes-1)) * time.Millisecond
		d += time.Duration(rand.Int64N(int64(d)/2 + 1))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w; not resumed: %w", cause, ctx.Err())
		case <-t.C:
		}
		s, err := dial(ctx, old.cfg)
		if err != nil {
			cause = fmt.Errorf("%w; resume %d: %w", cause, f.resumes, err)
			continue
		}
		size, err := s.size(f.name)
		if err != nil || size != f.size {
			s.close()
			if err == nil {
				err = fmt.Errorf("the file is now %d bytes, was %d: it changed during the download", size, f.size)
			}
			return fmt.Errorf("%w; resume: %w", cause, err)
		}
		s.step()
		resp, err := s.conn.RetrFrom(f.name, uint64(f.read))
		if err != nil {
			err = s.cause(err)
			s.close()
			cause = fmt.Errorf("%w; resume %d (REST %d): %w", cause, f.resumes, f.read, err)
			old = s
			f.s = s
			continue
		}
		f.s, f.resp, f.respDone = s, resp, false
		return nil
	}
	return fmt.Errorf("%w; gave up after %d resumes", cause, f.resumes)
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
