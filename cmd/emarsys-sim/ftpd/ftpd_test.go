package ftpd

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"
)

func startTest(t *testing.T) (*Server, string) {
	t.Helper()
	root := t.TempDir()
	s, err := Start(Options{Root: root, User: "demo", Password: "pw-secret"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, root
}

func dial(t *testing.T, s *Server, opts ...ftp.DialOption) *ftp.ServerConn {
	t.Helper()
	opts = append([]ftp.DialOption{ftp.DialWithTimeout(5 * time.Second)}, opts...)
	c, err := ftp.Dial(net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())), opts...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Quit() })
	if err := c.Login("demo", "pw-secret"); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []ftp.DialOption
	}{
		{"EPSV", nil},
		{"PASV", []ftp.DialOption{ftp.DialWithDisabledEPSV(true)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, root := startTest(t)
			c := dial(t, s, tc.opts...)

			payload := bytes.Repeat([]byte("user_id;E-Mail;source\r\n1;a@example.com;click\r\n"), 50_000)
			if err := c.MakeDir("exports"); err != nil {
				t.Fatalf("MKD: %v", err)
			}
			if err := c.Stor("exports/r.csv", bytes.NewReader(payload)); err != nil {
				t.Fatalf("STOR: %v", err)
			}
			if onDisk, err := os.ReadFile(filepath.Join(root, "exports", "r.csv")); err != nil || !bytes.Equal(onDisk, payload) {
				t.Fatalf("file on disk differs (err %v)", err)
			}

			size, err := c.FileSize("exports/r.csv")
			if err != nil || size != int64(len(payload)) {
				t.Fatalf("SIZE = %d, %v; want %d", size, err, len(payload))
			}

			r, err := c.Retr("exports/r.csv")
			if err != nil {
				t.Fatalf("RETR: %v", err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("RETR returned %d bytes (err %v), want %d identical", len(got), err, len(payload))
			}

			const off = 1000
			r, err = c.RetrFrom("exports/r.csv", off)
			if err != nil {
				t.Fatalf("REST+RETR: %v", err)
			}
			got, err = io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, payload[off:]) {
				t.Fatalf("RETR from %d returned %d bytes (err %v)", off, len(got), err)
			}

			if err := c.Rename("exports/r.csv", "exports/done.csv"); err != nil {
				t.Fatalf("RNFR/RNTO: %v", err)
			}
			names, err := c.NameList("exports")
			if err != nil {
				t.Fatalf("NLST: %v", err)
			}
			if len(names) != 1 || filepath.Base(names[0]) != "done.csv" {
				t.Fatalf("NLST = %v, want [done.csv]", names)
			}
			entries, err := c.List("exports")
			if err != nil || len(entries) != 1 || entries[0].Name != "done.csv" {
				t.Fatalf("LIST = %v, %v", entries, err)
			}
			if err := c.Delete("exports/done.csv"); err != nil {
				t.Fatalf("DELE: %v", err)
			}
			if _, err := os.Stat(filepath.Join(root, "exports", "done.csv")); !os.IsNotExist(err) {
				t.Fatalf("file still there after DELE: %v", err)
			}
		})
	}
}

func TestBadPassword(t *testing.T) {
	s, _ := startTest(t)
	c, err := ftp.Dial(net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())), ftp.DialWithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Quit()
	if err := c.Login("demo", "wrong"); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
}

func TestCloseEndsSessions(t *testing.T) {
	s, _ := startTest(t)
	c := dial(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.NoOp(); err == nil {
		t.Fatal("session still answers after Close")
	}
	if _, err := net.DialTimeout("tcp", net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())), time.Second); err == nil {
		t.Fatal("still accepting after Close")
	}
}

// A server closed right after it started (a test that never used it) stops:
// the library's Shutdown alone would miss a Serve that had not begun yet.
func TestCloseRightAfterStart(t *testing.T) {
	for i := 0; i < 50; i++ {
		s, err := Start(Options{Root: t.TempDir(), User: "u", Password: "p"})
		if err != nil {
			t.Fatal(err)
		}
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("Close %d did not return", i)
		}
		if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
			t.Fatalf("still listening on %s after Close", s.Addr())
		}
	}
}
