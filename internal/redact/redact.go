// Package redact replaces secret values in text with a fixed mark before
// the text leaves phaseguard: a server may quote a request's credentials
// back in an error body (multi-tenant gateways echo the Authorization
// header), and that text reaches reasons, job summaries, measurement
// messages and logs.
//
// A Set holds the secret values one process knows: bearer tokens,
// passwords, header values, OAuth2 client secrets, the contents of
// credential files, the GitHub token, kubeconfig credentials. Each value is
// also matched in the forms phaseguard's own output or a server's echo
// gives it: Go-quoted (%q), JSON-escaped, URL-escaped, Base64, and, for a
// value of several lines (a PEM key), line by line. Basic-auth credentials
// are matched as the Base64 of "user:password" too (AddBasicAuth), the
// form an echoed Authorization header takes.
//
// Redaction happens at the edges: String for one text, Error for an error,
// Writer for a stream. A nil *Set redacts nothing.
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/phaseguard/phaseguard/internal/regularfile"
)

// Mark replaces every secret value.
const Mark = "[redacted]"

// MinLen is the shortest value a Set matches, in bytes. Shorter values
// ("1", "prod": tenant ids the Action treats as secrets) would mark
// unrelated text (every "1", "production") and corrupt what phaseguard
// writes; a credential that short is guessable anyway.
const MinLen = 6

// minLineLen is the shortest line of a multi-line secret matched on its
// own: shorter lines ("}" in a JSON key file) would mark unrelated text.
const minLineLen = 8

// Set is a set of secret values. It is safe for concurrent use; values are
// only ever added.
type Set struct {
	mu      sync.RWMutex
	values  map[string]struct{}
	sorted  []string // the values, longest first; nil until the first String after an Add
	longest int      // bytes of the longest value
}

// New returns a Set holding values (see Add).
func New(values ...string) *Set {
	s := &Set{values: map[string]struct{}{}}
	s.Add(values...)
	return s
}

// Add adds each value and its encoded forms. Surrounding white space is
// dropped (credential files end in a newline that is not part of the
// credential); a value shorter than MinLen bytes then is ignored.
func (s *Set) Add(values ...string) {
	if s == nil {
		return
	}
	var forms []string
	for _, v := range values {
		v = strings.TrimSpace(v)
		if len(v) < MinLen {
			continue
		}
		forms = append(forms, encodings(v)...)
		if strings.Contains(v, "\n") {
			for line := range strings.Lines(v) {
				if line = strings.TrimSpace(line); len(line) >= minLineLen {
					forms = append(forms, encodings(line)...)
				}
			}
		}
	}
	s.addForms(forms)
}

// AddBasicAuth adds a basic-auth password, and the Base64 of
// "user:password" that the Authorization header carries.
func (s *Set) AddBasicAuth(user, password string) {
	if s == nil || len(strings.TrimSpace(password)) < MinLen {
		return
	}
	s.Add(password)
	s.addForms([]string{base64.StdEncoding.EncodeToString([]byte(user + ":" + password))})
}

func (s *Set) addForms(forms []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range forms {
		if f == "" {
			continue
		}
		if _, ok := s.values[f]; ok {
			continue
		}
		s.values[f] = struct{}{}
		s.sorted = nil
		s.longest = max(s.longest, len(f))
	}
}

// encodings returns v and the forms it takes when quoted by Go (%q),
// escaped by encoding/json (which also escapes <, > and &), escaped in a
// URL query or path, or encoded in Base64.
func encodings(v string) []string {
	out := []string{v}
	q := strconv.Quote(v)
	out = append(out, q[1:len(q)-1])
	if j, err := json.Marshal(v); err == nil {
		out = append(out, string(j[1:len(j)-1]))
	}
	out = append(out, url.QueryEscape(v), url.PathEscape(v),
		base64.StdEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v)))
	return out
}

// maxFile bounds how much of a credential file ReadFile reads: credentials
// are tokens and keys, a few KB at most.
const maxFile = 64 << 10

// ReadFile returns the first 64 KiB of the credential file name, to add to
// a Set: "" when name is empty or the file cannot be read (the client that
// uses the file says why). Clients read such files again at each request,
// so that a rotated credential works; what a request sends must be
// learned from the request too.
//
// Only a regular file is read: opening a named pipe would wait for a
// writer, /dev/zero would never end.
func ReadFile(name string) string {
	if name == "" {
		return ""
	}
	b, err := regularfile.Read(name, maxFile)
	if err != nil {
		return ""
	}
	return string(b)
}

// Len returns how many forms the set matches.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.values)
}

// Has reports whether text contains a secret of the set.
func (s *Set) Has(text string) bool {
	return s.String(text) != text
}

// String returns text with every secret replaced by Mark. Where matches
// of several secrets overlap or touch ("tenant-abc" and
// "abc-token-XYZ123" in "tenant-abc-token-XYZ123"), their union is
// replaced by one Mark, so that no part of either is left.
func (s *Set) String(text string) string {
	vals := s.sortedValues()
	if len(vals) == 0 || text == "" {
		return text
	}
	var spans [][2]int
	for _, v := range vals {
		for i := 0; i+len(v) <= len(text); {
			j := strings.Index(text[i:], v)
			if j < 0 {
				break
			}
			spans = append(spans, [2]int{i + j, i + j + len(v)})
			i += j + 1
		}
	}
	if len(spans) == 0 {
		return text
	}
	slices.SortFunc(spans, func(a, b [2]int) int { return a[0] - b[0] })
	var out strings.Builder
	last := 0 // end of the text written or marked
	for k := 0; k < len(spans); {
		start, end := spans[k][0], spans[k][1]
		for k++; k < len(spans) && spans[k][0] <= end; k++ {
			end = max(end, spans[k][1])
		}
		out.WriteString(text[last:start])
		out.WriteString(Mark)
		last = end
	}
	out.WriteString(text[last:])
	return out.String()
}

// sortedValues returns the set's values, longest first, cached until the next
// Add.
func (s *Set) sortedValues() []string {
	if s == nil {
		return nil
	}
	s.mu.RLock()
	v, n := s.sorted, len(s.values)
	s.mu.RUnlock()
	if v != nil || n == 0 {
		return v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sorted == nil {
		vals := make([]string, 0, len(s.values))
		for v := range s.values {
			vals = append(vals, v)
		}
		slices.SortFunc(vals, func(a, b string) int {
			if len(a) != len(b) {
				return len(b) - len(a)
			}
			return strings.Compare(a, b)
		})
		s.sorted = vals
	}
	return s.sorted
}

// Error returns err with a message redacted by s at the time it is read,
// so that secrets added later are redacted too. errors.Is and errors.As
// still see err's chain; a caller that prints a detail reached that way
// (a server's body) must redact it itself. Error returns nil for a nil
// err.
func (s *Set) Error(err error) error {
	if err == nil || s == nil {
		return err
	}
	return &redactedError{set: s, err: err}
}

type redactedError struct {
	set *Set
	err error
}

func (e *redactedError) Error() string { return e.set.String(e.err.Error()) }
func (e *redactedError) Unwrap() error { return e.err }

// maxLine bounds how much of a line without a newline a Writer holds back.
const maxLine = 64 << 10

// Writer redacts what is written through it. It passes on whole lines and
// holds back the rest until a newline, Flush, or maxLine bytes come, so
// that a secret split over two writes is still found. Call Flush when done.
// It is safe for concurrent use.
type Writer struct {
	set     *Set
	w       io.Writer
	mu      sync.Mutex
	pending []byte
}

// Writer returns a Writer that redacts with s and writes to w.
func (s *Set) Writer(w io.Writer) *Writer { return &Writer{set: s, w: w} }

// Write redacts p's whole lines and writes them. It reports len(p) written
// unless the underlying writer fails.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(w.pending, p...)
	cut := bytes.LastIndexByte(w.pending, '\n') + 1
	if cut == 0 && len(w.pending) > maxLine {
		cut = w.safeCut()
	}
	if cut == 0 {
		return len(p), nil
	}
	if err := w.emit(cut); err != nil {
		return 0, err
	}
	return len(p), nil
}

// safeCut is where a long line without a newline can be cut: before the
// last longest-secret bytes, and before any secret that crosses there.
func (w *Writer) safeCut() int {
	if w.set == nil {
		return len(w.pending)
	}
	w.set.mu.RLock()
	keep := w.set.longest
	vals := make([]string, 0, len(w.set.values))
	for v := range w.set.values {
		vals = append(vals, v)
	}
	w.set.mu.RUnlock()
	text := string(w.pending)
	cut := max(len(text)-keep, 0)
	for moved := true; moved && cut > 0; {
		moved = false
		for _, v := range vals {
			from := max(cut-len(v)+1, 0)
			if i := strings.Index(text[from:], v); i >= 0 && from+i < cut {
				cut, moved = from+i, true
			}
		}
	}
	return cut
}

func (w *Writer) emit(n int) error {
	out := w.set.String(string(w.pending[:n]))
	w.pending = append(w.pending[:0], w.pending[n:]...)
	_, err := io.WriteString(w.w, out)
	return err
}

// Flush redacts and writes everything held back.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return nil
	}
	return w.emit(len(w.pending))
}
