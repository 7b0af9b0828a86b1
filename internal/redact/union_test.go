package redact

import (
	"encoding/base64"
	"testing"
)

// TestUnion: a union marks every value of its members in every form, and
// overlapping matches of values of different members as one mark; it
// holds what the members held when it was made, and its members are
// untouched by it.
func TestUnion(t *testing.T) {
	t.Parallel()
	a := New("tenant-abc")
	b := New()
	b.AddBasicAuth("alice", "abc-token-XYZ123")
	u := Union(a, nil, b)
	for _, tc := range []struct{ name, in, want string }{
		{"a's value", "x tenant-abc x", "x " + Mark + " x"},
		{"b's value", "x abc-token-XYZ123 x", "x " + Mark + " x"},
		{"b's basic auth", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:abc-token-XYZ123")), "Basic " + Mark},
		{"a's Base64", base64.StdEncoding.EncodeToString([]byte("tenant-abc")), Mark},
		{"overlapping values of two members", "tenant-abc-token-XYZ123", Mark},
		{"neither", "tenant-ab", "tenant-ab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := u.String(tc.in); got != tc.want {
				t.Errorf("Union.String(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	if a.Has("abc-token-XYZ123") || b.Has("tenant-abc") {
		t.Error("a union changed its members")
	}
	a.Add("added-later-1")
	if u.Has("added-later-1") {
		t.Error("a value added to a member after the union is in it")
	}
	if Union().Len() != 0 || Union(nil, nil).String("tenant-abc") != "tenant-abc" {
		t.Error("an empty union marks something")
	}
}

// TestAddSet: AddSet adds another set's values to a set in place (so a
// Writer already made with it redacts them too), and adding a set to
// itself or to nil is harmless.
func TestAddSet(t *testing.T) {
	t.Parallel()
	s := New("first-value")
	var out []byte
	w := s.Writer(writerFunc(func(p []byte) (int, error) { out = append(out, p...); return len(p), nil }))
	s.AddSet(New("second-value"), nil, s)
	if _, err := w.Write([]byte("first-value second-value\n")); err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), Mark+" "+Mark+"\n"; got != want {
		t.Errorf("Writer after AddSet wrote %q, want %q", got, want)
	}
	var nilSet *Set
	nilSet.AddSet(s) // no panic
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
