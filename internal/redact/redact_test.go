package redact

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestString(t *testing.T) {
	t.Parallel()
	const tok = `s3cr<e>t"tok\en`
	s := New(tok+"\n", "  ", "")
	s.AddBasicAuth("alice", "pa sswd")
	tests := []struct {
		name, in string
	}{
		{"raw", "error: Authorization: Bearer " + tok + " refused"},
		{"go quoted", fmt.Sprintf("query %q failed", "x"+tok)},
		{"json", `{"error":"bad header \"Bearer s3cr\u003ce\u003et\"tok\\en\""}`},
		{"url query", "GET /api?token=" + url.QueryEscape(tok)},
		{"base64", "echo " + base64.StdEncoding.EncodeToString([]byte(tok))},
		{"basic auth header", "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("alice:pa sswd"))},
		{"password", "password was pa sswd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := s.String(tt.in)
			if !strings.Contains(got, Mark) {
				t.Errorf("String(%q) = %q: no %s", tt.in, got, Mark)
			}
			for _, leak := range []string{"s3cr", "pa ss", "YWxpY2U6cGEgc3N3ZA"} {
				if strings.Contains(got, leak) {
					t.Errorf("String(%q) = %q: still holds %q", tt.in, got, leak)
				}
			}
		})
	}
	if got := s.String("nothing secret here"); got != "nothing secret here" {
		t.Errorf("clean text changed: %q", got)
	}
	if s.Has("  ") || s.Has("x") {
		t.Error("blank values were added")
	}
	short := New("1", "prod", "abcde")
	if got := short.String("production 1 abcde"); got != "production 1 abcde" || short.Len() != 0 {
		t.Errorf("values under MinLen were matched: %q", got)
	}
}

func TestLongestWins(t *testing.T) {
	t.Parallel()
	s := New("abcd1234", "abcd1234efgh")
	if got := s.String("[abcd1234efgh]"); got != "["+Mark+"]" {
		t.Errorf("got %q, want one mark", got)
	}
}

func TestMultiLine(t *testing.T) {
	t.Parallel()
	key := "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yf\n}\n-----END EC PRIVATE KEY-----\n"
	s := New(key)
	got := s.String("line: MHcCAQEEIBkg4LVWM9nuwNSk3yf; brace } stays")
	if strings.Contains(got, "MHcCAQ") || !strings.Contains(got, "brace } stays") {
		t.Errorf("got %q", got)
	}
}

func TestNil(t *testing.T) {
	t.Parallel()
	var s *Set
	s.Add("x")
	if s.String("x") != "x" || s.Len() != 0 || s.Error(nil) != nil {
		t.Error("nil set changed something")
	}
	var buf bytes.Buffer
	w := s.Writer(&buf)
	fmt.Fprint(w, "a")
	w.Flush()
	if buf.String() != "a" {
		t.Errorf("nil set writer wrote %q", buf.String())
	}
}

func TestError(t *testing.T) {
	t.Parallel()
	s := New()
	base := fmt.Errorf("server said token-1234567: %w", fs.ErrPermission)
	err := s.Error(base)
	s.Add("token-1234567") // added after wrapping: still redacted
	if strings.Contains(err.Error(), "token-1234567") {
		t.Errorf("Error() = %q", err)
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("chain lost")
	}
}

// TestWriterSplit writes a text holding secrets in every split into two
// writes, and byte by byte; nothing secret may come out.
func TestWriterSplit(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-very-secret"
	s := New(secret)
	text := "start " + secret + " middle\nnext " + secret + " end"
	for i := range len(text) {
		var buf bytes.Buffer
		w := s.Writer(&buf)
		w.Write([]byte(text[:i]))
		w.Write([]byte(text[i:]))
		w.Flush()
		want := strings.ReplaceAll(text, secret, Mark)
		if buf.String() != want {
			t.Fatalf("split at %d: got %q, want %q", i, buf.String(), want)
		}
	}
	var buf bytes.Buffer
	w := s.Writer(&buf)
	for i := range len(text) {
		w.Write([]byte{text[i]})
	}
	w.Flush()
	if strings.Contains(buf.String(), "hunter2") {
		t.Errorf("byte by byte: %q", buf.String())
	}
}

// TestWriterLongLine writes a line longer than the hold-back bound with a
// secret across the point where it is first cut.
func TestWriterLongLine(t *testing.T) {
	t.Parallel()
	const secret = "0123456789-secret-abcdef"
	s := New(secret)
	for _, at := range []int{maxLine - 10, maxLine - 1, maxLine, maxLine + 3} {
		var buf bytes.Buffer
		w := s.Writer(&buf)
		line := strings.Repeat("x", at) + secret + strings.Repeat("y", 100)
		for i := 0; i < len(line); i += 4096 {
			w.Write([]byte(line[i:min(i+4096, len(line))]))
		}
		w.Flush()
		if strings.Contains(buf.String(), "secret") || !strings.Contains(buf.String(), Mark) {
			t.Errorf("secret at %d: leaked or lost", at)
		}
		if want := len(line) - len(secret) + len(Mark); buf.Len() != want {
			t.Errorf("secret at %d: wrote %d bytes, want %d", at, buf.Len(), want)
		}
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	s := New()
	var buf bytes.Buffer
	w := s.Writer(&buf)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			v := fmt.Sprintf("secret-value-%02d", i)
			s.Add(v)
			fmt.Fprintf(w, "line %s\n", v)
		})
	}
	wg.Wait()
	w.Flush()
	if strings.Contains(buf.String(), "secret-value") {
		t.Errorf("leak: %q", buf.String())
	}
}

// TestOverlapping: two secrets whose matches overlap or touch are marked
// as one span; no tail of either is left.
func TestOverlapping(t *testing.T) {
	t.Parallel()
	s := New("tenant-abc", "abc-token-XYZ123", "ZZZZZZ")
	tests := map[string]string{
		"tenant-abc-token-XYZ123 end": Mark + " end",
		"x tenant-abc y":              "x " + Mark + " y",
		"abc-token-XYZ123ZZZZZZ":      Mark,
		"ZZZZZZZ":                     Mark, // two overlapping matches
		"no secret":                   "no secret",
	}
	for in, want := range tests {
		if got := s.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestReadFile: only a regular file is read; a named pipe, a directory or
// a missing file give "" at once.
func TestReadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	if err := os.WriteFile(p, []byte("tok-123456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := ReadFile(p); got != "tok-123456\n" {
		t.Errorf("ReadFile(regular) = %q", got)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, name := range []string{fifo, dir, filepath.Join(dir, "missing"), ""} {
		if got := ReadFile(name); got != "" {
			t.Errorf("ReadFile(%s) = %q, want nothing", name, got)
		}
	}
}
