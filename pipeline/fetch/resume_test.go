package fetch

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/ftpd"
)

// cutReader ends a download after n bytes as if the connection dropped.
type cutReader struct {
	r io.ReadCloser
	n int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	k, err := c.r.Read(p)
	c.n -= int64(k)
	return k, err
}

func (c *cutReader) Close() error { return c.r.Close() }

// A transfer that breaks mid-file is resumed from where it stopped (REST)
// and the bytes come out whole, each once.
func TestResumeAfterBreak(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cuts      int // downloads that break
		wantErr   bool
		wantCalls int32
	}{
		{"one break", 1, false, 2},
		{"two breaks", 2, false, 3},
		{"breaks every time", 99, true, 1 + DefaultMaxResumes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			os.Mkdir(filepath.Join(root, "exports"), 0o755)
			data := make([]byte, 300_000)
			rand.Read(data)
			os.WriteFile(filepath.Join(root, "exports", "r.csv"), data, 0o644)
			var calls atomic.Int32
			srv, err := ftpd.Start(ftpd.Options{Root: root, User: ftpUser, Password: ftpPass,
				WrapRead: func(_ string, r io.ReadCloser) io.ReadCloser {
					if int(calls.Add(1)) <= tc.cuts {
						return &cutReader{r: r, n: 70_000}
					}
					return r
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			cfg := FTPConfig{Host: srv.Host(), Port: srv.Port(), User: ftpUser, Password: ftpPass, Folder: "exports", Timeout: 5 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			f, err := OpenFTP(ctx, cfg, "r.csv")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := io.ReadAll(f)
			if calls.Load() != tc.wantCalls {
				t.Errorf("%d RETR, want %d", calls.Load(), tc.wantCalls)
			}
			if tc.wantErr {
				if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("err = %v; want the break reported after the bounded resumes", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) || f.Resumes() != tc.cuts {
				t.Fatalf("got %d bytes (equal: %v), resumes %d; want the %d bytes whole after %d resumes",
					len(got), bytes.Equal(got, data), f.Resumes(), len(data), tc.cuts)
			}
		})
	}
}
