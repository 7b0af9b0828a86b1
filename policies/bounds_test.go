package policies

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// hostilePolicy returns a policy whose spec holds the text spec, its %s
// filled to about size bytes in all by repeating unit (formatted with its
// index when it has a %d).
func hostilePolicy(spec, unit string, size int) string {
	var b strings.Builder
	b.WriteString("apiVersion: phaseguard.dev/v1alpha1\nkind: Policy\nmetadata: {name: hostile}\nspec:\n")
	prefix, suffix, _ := strings.Cut(spec, "%s")
	b.WriteString(prefix)
	for i := 0; b.Len() < size-len(suffix)-len(unit)-8; i++ {
		if strings.Contains(unit, "%d") {
			fmt.Fprintf(&b, unit, i)
		} else {
			b.WriteString(unit)
		}
	}
	b.WriteString(suffix)
	return b.String()
}

// hostileSize is the size of TestLoadBounded's documents: a quarter of
// the largest policy, enough for each to cost minutes or gigabytes without
// the bound it checks.
const hostileSize = MaxFileSize / 4

// TestLoadBounded loads policies built to make loading cost far more than
// their size (FuzzLoad's hostile inputs, grown): each is refused with the
// problem that bounds it, in seconds, with an error text of bounded size.
// Before these bounds, a 1 MiB policy of one query reading 20,000 families took 48 s
// and 37 GB of allocations, a long query in 8 window pairs 2 min and
// 149 GB, and 14 KB of aliases gave an error of 10 MB.
func TestLoadBounded(t *testing.T) {
	t.Parallel()
	sel := `m{service="$service"}`
	bigQuery := strings.Repeat("x", 100_000)
	tests := []struct {
		name, doc, want string
	}{
		{"aliases of a long query", hostilePolicy("  x: &s {name: a, objective: 99, ratio: {bad: 'sum("+bigQuery+"{', total: 'y'}}\n  slis: [%s*s]\n", "*s, ", 2*len(bigQuery)),
			"(document): aliases expand the policy to more than 2 MiB"},
		{"aliases of many unknown keys", hostilePolicy("  k: &k {%s}\n  slis: [*k, *k, *k, *k, *k]\n", "a%d: 1, ", hostileSize),
			"(document): 100 problems already: the rest of the document is not read"},
		{"unknown keys", hostilePolicy("%s", "  k%d: 1\n", hostileSize), "(document): 100 problems already"},
		{"one query reading every family", hostilePolicy("  slis:\n  - {name: a, allowance: 1, rate: {events: 'sum(increase("+sel+"[$window]))%s'}}\n", ` + m%d{service="$service"}`, hostileSize),
			"more than 256 PromQL tokens"},
		{"17 families", hostilePolicy("  slis:\n  - {name: a, allowance: 1, rate: {events: 'sum(increase("+sel+"[$window]))%s'}}\n", ` + m%d{service="$service"}`, 600),
			"the SLI's queries read 17 metric families, at most 16"},
		{"deep unary minus", hostilePolicy("  slis:\n  - {name: a, allowance: 1, rate: {events: 'sum(increase("+sel+"[$window])) + %s"+sel+"'}}\n", "-", hostileSize),
			"more than 256 PromQL tokens"},
		{"deep parentheses", hostilePolicy("  slis:\n  - {name: a, allowance: 1, rate: {events: 'sum(increase("+sel+"[$window])) + %s"+sel+"'}}\n", "(", hostileSize),
			"more than 256 PromQL tokens"},
		{"many windows", hostilePolicy("  windows: [%s]\n  slis: [{preset: drain-failure}]\n", "{long: %ds, short: 1s, factor: 2}, ", hostileSize),
			"spec.windows: at most 8 window pairs"},
		{"many SLIs", hostilePolicy("  slis:\n%s", "  - {preset: drain-failure, name: s%d}\n", hostileSize), "spec.slis: at most 50 SLIs"},
		{"deep YAML", hostilePolicy("  slis: %s\n", "[", hostileSize), "not YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if len(tt.doc) > MaxFileSize {
				t.Fatalf("test document of %d bytes, over MaxFileSize", len(tt.doc))
			}
			start := time.Now()
			p, err := Load([]byte(tt.doc), "hostile.yaml")
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("Load took %s for %d bytes", took, len(tt.doc))
			}
			if err == nil {
				t.Fatalf("loaded %d SLIs, want an error with %q", len(p.Spec.SLIs), tt.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error does not say %q:\n%.2000s", tt.want, msg)
			}
			if max := maxPolicyErrorText; len(msg) > max {
				t.Errorf("error text of %d bytes, over %d", len(msg), max)
			}
		})
	}
}
