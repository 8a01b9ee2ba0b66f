package fetch

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emarsys-etl/emarsys-etl/cmd/emarsys-sim/ftpd"
)

const (
	ftpUser = "emarsys"
	ftpPass = "Ftp-S3cret-pw"
)

// startFTP serves a temporary root with an "exports" folder.
func startFTP(t *testing.T) (FTPConfig, string) {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "exports"), 0o755); err != nil {
		t.Fatal(err)
	}
	srv, err := ftpd.Start(ftpd.Options{Root: root, User: ftpUser, Password: ftpPass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return FTPConfig{Host: srv.Host(), Port: srv.Port(), User: ftpUser, Password: ftpPass, Folder: "exports", Timeout: 5 * time.Second},
		filepath.Join(root, "exports")
}

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestStreamLargeFile(t *testing.T) {
	cfg, dir := startFTP(t)
	data := make([]byte, 6<<20+123)
	rand.Read(data)
	writeFile(t, dir, "responses_1.csv", data)

	f, err := OpenFTP(context.Background(), cfg, "responses_1.csv")
	if err != nil {
		t.Fatal(err)
	}
	if f.Size() != int64(len(data)) {
		t.Fatalf("Size = %d, want %d", f.Size(), len(data))
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 32<<10))
	if err != nil {
		t.Fatalf("copy after %d bytes: %v", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) || n != int64(len(data)) {
		t.Fatalf("got %d bytes with another hash", n)
	}
}

func TestAbortMidStream(t *testing.T) {
	cfg, dir := startFTP(t)
	writeFile(t, dir, "big.csv", bytes.Repeat([]byte("x"), 4<<20))
	f, err := OpenFTP(context.Background(), cfg, "big.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(f, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close of an unfinished download hangs")
	}
}

func TestContextCancelAbortsRead(t *testing.T) {
	cfg, dir := startFTP(t)
	writeFile(t, dir, "big.csv", bytes.Repeat([]byte("x"), 8<<20))
	ctx, cancel := context.WithCancel(context.Background())
	f, err := OpenFTP(ctx, cfg, "big.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.ReadFull(f, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.Copy(io.Discard, f)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// fakeStream hands out data, then ends with end.
type fakeStream struct {
	r      io.Reader
	closed bool
}

func (f *fakeStream) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *fakeStream) Close() error               { f.closed = true; return nil }

func TestByteCounting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    string
		size    int64
		wantErr string
	}{
		{"exact", "hello;world\n", 12, ""},
		{"empty file", "", 0, ""},
		{"short", "hello", 12, "stream ended after 5 of 12 bytes"},
		{"long", "hello;world\nextra", 12, "more than the 12 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := &fakeStream{r: strings.NewReader(tc.data)}
			f := &FTPFile{
				s:    &session{cfg: FTPConfig{Host: "ftp.example.com", Password: ftpPass, MaxResumes: -1}, ctx: context.Background()},
				resp: fs, name: "r.csv", size: tc.size,
			}
			got, err := io.ReadAll(f)
			if tc.wantErr == "" {
				if err != nil || string(got) != tc.data || !fs.closed {
					t.Fatalf("got %q, %v (transfer confirmed: %v)", got, err, fs.closed)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), `"r.csv"`) ||
				!strings.Contains(err.Error(), "ftp.example.com:21") {
				t.Fatalf("err = %v, want it to contain %q, the file and the server", err, tc.wantErr)
			}
			if tc.name == "short" && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("short read does not wrap io.ErrUnexpectedEOF: %v", err)
			}
			if _, err2 := f.Read(make([]byte, 1)); err2 != err {
				t.Fatalf("error not sticky: %v", err2)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	cfg, _ := startFTP(t)
	_, err := OpenFTP(context.Background(), cfg, "nope.csv")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	for _, want := range []string{`"nope.csv"`, net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), "SIZE"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("err %q lacks %q", err, want)
		}
	}
}

func TestMissingFolder(t *testing.T) {
	cfg, _ := startFTP(t)
	cfg.Folder = "not-there"
	_, err := OpenFTP(context.Background(), cfg, "r.csv")
	if err == nil || !strings.Contains(err.Error(), `change to folder "not-there"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestBadPassword(t *testing.T) {
	cfg, dir := startFTP(t)
	writeFile(t, dir, "r.csv", []byte("x"))
	cfg.Password = "Wrong-Pa55word"
	_, err := OpenFTP(context.Background(), cfg, "r.csv")
	want := "FTP login as emarsys at " + net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)) + " refused"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	for _, s := range []string{err.Error(), cfg.String(), cfg.GoString()} {
		if strings.Contains(s, cfg.Password) || strings.Contains(s, ftpPass) {
			t.Fatalf("password printed: %s", s)
		}
	}
}

func TestStepTimeout(t *testing.T) {
	// A server that accepts and then says nothing.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	cfg := FTPConfig{Host: "127.0.0.1", Port: addr.Port, User: "u", Password: ftpPass, Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err = OpenFTP(context.Background(), cfg, "r.csv")
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("err = %v after %s", err, time.Since(start))
	}
	// Cancelling the context ends the wait too, and says so.
	cfg.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = OpenFTP(ctx, cfg, "r.csv")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestValidateFileName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"responses_2140.csv", true},
		{"export 2026-03-01.csv", true},
		{"Résumé.csv", true},
		{"", false},
		{"a/b.csv", false},
		{`a\b.csv`, false},
		{"/etc/passwd", false},
		{"..", false},
		{".", false},
		{"../r.csv", false},
		{"r..csv", false},
		{`C:r.csv`, false},
		{"r.csv\r\nDELE x", false},
		{"r\x00.csv", false},
		{"r\t.csv", false},
		{" r.csv", false},
		{"\xff.csv", false},
		{strings.Repeat("a", 256), false},
	} {
		err := ValidateFileName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateFileName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestFinish(t *testing.T) {
	cfg, dir := startFTP(t)
	ctx := context.Background()

	writeFile(t, dir, "keep.csv", []byte("k"))
	if err := Finish(ctx, cfg, "keep.csv", Keep, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep.csv")); err != nil {
		t.Fatalf("kept file gone: %v", err)
	}

	writeFile(t, dir, "del.csv", []byte("d"))
	if err := Finish(ctx, cfg, "del.csv", Delete, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "del.csv")); !os.IsNotExist(err) {
		t.Fatalf("deleted file still there: %v", err)
	}
	if err := Finish(ctx, cfg, "del.csv", Delete, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: err = %v, want ErrNotFound", err)
	}

	for _, name := range []string{"a1.csv", "a2.csv"} { // the second finds the folder made
		writeFile(t, dir, name, []byte("a"))
		if err := Finish(ctx, cfg, name, Archive, "archive/2026/"); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "archive", "2026", name)); err != nil || string(b) != "a" {
			t.Fatalf("archived %s: %q, %v", name, b, err)
		}
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Fatalf("archived file still in place: %v", err)
		}
	}

	if err := Finish(ctx, cfg, "x.csv", Archive, ""); err == nil {
		t.Fatal("archive without folder accepted")
	}
	if err := Finish(ctx, cfg, "x.csv", Archive, "../out"); err == nil {
		t.Fatal("archive folder with .. accepted")
	}
	if err := Finish(ctx, cfg, "x.csv", "shred", ""); err == nil {
		t.Fatal("unknown action accepted")
	}
	if err := Finish(ctx, cfg, "../x.csv", Delete, ""); err == nil {
		t.Fatal("bad name accepted")
	}
}

func TestParseAfterLoad(t *testing.T) {
	for in, want := range map[string]AfterLoad{"": Keep, "KEEP": Keep, "delete": Delete, " archive ": Archive} {
		if got, err := ParseAfterLoad(in); err != nil || got != want {
			t.Errorf("ParseAfterLoad(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseAfterLoad("move"); err == nil {
		t.Error("unknown action accepted")
	}
}
