package policies

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem with a policy, located by field path and line.
type FieldError struct {
	Path string // e.g. spec.slis[2].objective
	Line int    // 1-based line in the source, 0 when unknown
	Msg  string
}

func (e *FieldError) Error() string {
	path := e.Path
	if path == "" {
		path = "(document)"
	}
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, path, e.Msg)
	}
	return fmt.Sprintf("%s: %s", path, e.Msg)
}

// decoder decodes a yaml.Node tree into Go structs by their yaml tags,
// strictly: unknown keys, duplicate keys and wrong types are errors naming
// the field path and line. yaml.v3's KnownFields reports Go type names, not
// field paths, and stops at the first wrong type; this reports them all.
//
// It also records which fields the document gives, so that defaults fill
// only absent fields: `alpha: 0` is an explicit zero, validated as such,
// not a request for the default. A field given as null (`alpha:` or
// `alpha: ~`) counts as absent, as YAML reads it.
type decoder struct {
	errs  []error
	lines map[string]int  // field path -> line, for validation errors
	given map[string]bool // field paths the document gives a non-null value
	// masked are the field paths whose problems validation must not
	// report again: a field that failed to decode is left zero, and its
	// zero says nothing about what the author wrote.
	masked []maskedPath
	// left is what the decoder may still read, in bytes of scalar values
	// and nodes (see maxDecoded); over is set once it is spent.
	left int
	over bool
}

// maxDecoded bounds what a policy decodes to. An alias decodes its anchor
// again wherever it appears, so a page of `[*a, *a, ...]` whose anchor is a
// long query (or a list of such aliases) would decode to gigabytes and
// compile every copy; without aliases a document never decodes to more
// than its own size (MaxFileSize).
const maxDecoded = 2 * MaxFileSize

// maskedPath hides validation problems of a field that failed to decode:
// of the field itself and its children, and, when parent is set, of the
// mapping holding it ("give exactly one of bad and good" when bad was a
// number).
type maskedPath struct {
	path   string
	parent bool
}

func newDecoder() *decoder {
	return &decoder{lines: map[string]int{}, given: map[string]bool{}, left: maxDecoded}
}

func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &FieldError{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
	d.masked = append(d.masked, maskedPath{path: path, parent: true})
}

// masks reports whether a validation problem at path follows from a
// decoding problem already reported.
func (d *decoder) masks(path string) bool {
	for _, m := range d.masked {
		if within(path, m.path) || (m.parent && parentOf(m.path) == path) {
			return true
		}
	}
	return false
}

// within reports whether path is root or inside it.
func within(path, root string) bool {
	if root == "" || path == root {
		return true
	}
	return strings.HasPrefix(path, root) && (path[len(root)] == '.' || path[len(root)] == '[')
}

// parentOf returns the path of the mapping or list holding path.
func parentOf(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// maxDecodeProblems stops decoding a document that already has this many
// problems: the first ones are what to fix, and each costs a message (an
// unknown key a suggestion too), so a page of unknown keys would cost far
// more than its size.
const maxDecodeProblems = 100

// spend counts n against maxDecoded and reports whether decoding may go
// on. The first node over the bound, or after maxDecodeProblems problems,
// stops decoding with a problem of the whole document, which hides the
// problems validation would find in what was left undecoded.
func (d *decoder) spend(n *yaml.Node) bool {
	if d.over {
		return false
	}
	switch d.left -= len(n.Value) + 1; {
	case d.left < 0:
		d.over = true
		d.fail("", nil, "aliases expand the policy to more than %d MiB: a policy is a page of YAML, and each alias decodes its anchor again", maxDecoded>>20)
	case len(d.errs) >= maxDecodeProblems:
		d.over = true
		d.fail("", nil, "%d problems already: the rest of the document is not read", len(d.errs))
	default:
		return true
	}
	return false
}

// decode fills v (a pointer) from n.
func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if !d.spend(n) {
		return
	}
	d.lines[path] = n.Line
	if n.Tag != "!!null" {
		d.given[path] = true
	}
	// Types with their own YAML decoding (model.Duration) decode themselves.
	if isUnmarshaler(v) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(path, n, "%s", cleanYAMLError(err))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if n.Tag == "!!null" {
			return
		}
		nv := reflect.New(v.Type().Elem())
		d.decode(path, n, nv.Elem())
		v.Set(nv)
	case reflect.Struct:
		d.decodeStruct(path, n, v)
	case reflect.Slice:
		if n.Tag == "!!null" {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(fmt.Sprintf("%s[%d]", path, i), c, s.Index(i))
		}
		v.Set(s)
	case reflect.String, reflect.Float64, reflect.Int, reflect.Bool:
		if n.Kind != yaml.ScalarNode {
			d.fail(path, n, "want a %s, got %s", kindName(v.Kind()), describe(n))
			return
		}
		if v.Kind() == reflect.String && n.Tag != "!!str" && n.Tag != "!!null" {
			// A number or bool where a string belongs is almost always a
			// mistake in a policy (e.g. `name: 1e3`); say so.
			d.fail(path, n, "want a string, got %s (quote it)", describe(n))
			return
		}
		if v.Kind() == reflect.Float64 && n.Tag == "!!str" {
			d.fail(path, n, "want a number, got string %q", n.Value)
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(path, n, "%s", cleanYAMLError(err))
		}
	default:
		d.fail(path, n, "unsupported field type %s", v.Type())
	}
}

func (d *decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value) {
	if n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "want a mapping, got %s", describe(n))
		return
	}
	fields := map[string]int{}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			fields[name] = i
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !d.spend(k) {
			return
		}
		p := join(path, k.Value)
		if seen[k.Value] {
			d.fail(p, k, "duplicate field")
			continue
		}
		seen[k.Value] = true
		fi, ok := fields[k.Value]
		if !ok {
			hint, near := suggest(k.Value, fields)
			d.fail(p, k, "unknown field%s", hint)
			// A misspelt field leaves its intended one absent; saying
			// that one is missing too would only repeat the problem.
			d.masked[len(d.masked)-1] = maskedPath{path: p}
			if near != "" {
				d.masked = append(d.masked, maskedPath{path: join(path, near)})
			}
			continue
		}
		d.decode(p, val, v.Field(fi))
	}
}

// suggest returns ` (did you mean "x"?)` and x for a near miss.
func suggest(key string, fields map[string]int) (string, string) {
	best, bestD := "", 3
	for f := range fields {
		if dd := distance(strings.ToLower(key), strings.ToLower(f)); dd < bestD || (dd == bestD && f < best && best != "") {
			best, bestD = f, dd
		}
	}
	if best == "" {
		return "", ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best), best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// isUnmarshaler reports whether v decodes itself, through yaml.v3's
// interface or the yaml.v2-style one that model.Duration implements.
func isUnmarshaler(v reflect.Value) bool {
	type v2Unmarshaler interface {
		UnmarshalYAML(func(any) error) error
	}
	switch v.Addr().Interface().(type) {
	case yaml.Unmarshaler, v2Unmarshaler:
		return true
	}
	return false
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!str":
		return strconv.Quote(n.Value)
	case "!!null":
		return "null"
	}
	return fmt.Sprintf("%s %s", strings.TrimPrefix(n.Tag, "!!"), n.Value)
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Float64, reflect.Int:
		return "number"
	case reflect.Bool:
		return "boolean"
	}
	return k.String()
}

// cleanYAMLError drops yaml.v3's "yaml: unmarshal errors:\n  line N:"
// prefix: our own error carries the line and the field path.
func cleanYAMLError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if i := strings.Index(msg, ": "); strings.HasPrefix(msg, "line ") && i > 0 {
			msg = msg[i+2:]
		}
		return msg
	}
	return err.Error()
}
