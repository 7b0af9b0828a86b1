package scenarios

import (
	"embed"
	"time"
)

//go:generate go run ./cmd/gen -dir data

// data holds the demo scenarios generated from DemoSpecs.
//
//go:embed data/*.om data/*.truth.json
var data embed.FS

// Bundled is a demo scenario embedded in the package.
type Bundled struct {
	Name        string
	Description string
	// OpenMetrics is the content of data/NAME.om.
	OpenMetrics []byte
	Truth       Truth
	// Spec is the spec the data was generated from, defaults applied.
	Spec Spec
}

// DemoSpecs returns the specs of the demo scenarios. Each spans 40 min at
// a 15 s scrape interval from DefaultStart: a 10 min warm-up, then a 30 min
// stage from 00:10:00Z to 00:40:00Z, with one stable pod and one canary pod
// of service "checkout" in namespace "shop".
func DemoSpecs() []Spec {
	demo := func(s Spec) Spec {
		s.StablePods = 1
		s.CanaryPods = 1
		return s
	}
	return []Spec{
		demo(Spec{
			Name:        "healthy",
			Description: "Healthy canary at 50 requests/s: background phase errors, under budget over the stage though a burst reads a few times it over a 3m window; a stable pod restarts and misses 90 s of scrapes.",
			Seed:        101,
			CanaryRate:  50,
			Restarts:    []Restart{{Version: Stable, Pod: 0, At: 22 * time.Minute}},
			Gaps:        []Gap{{Version: Stable, Pod: 0, At: 4 * time.Minute, For: 90 * time.Second}},
		}),
		demo(Spec{
			Name:        "drain-misrouting",
			Description: "From 15 min after the canary's start (5 min into canary-50), 20 % of its requests hit draining instances (F1, 200x the drain-failure budget); Istio reports them as 503 UH/UF.",
			Seed:        102,
			CanaryRate:  50,
			Fault:       &Fault{Kind: DrainMisrouting, Onset: 15 * time.Minute, Severity: 0.2},
		}),
		demo(Spec{
			Name:        "flapping",
			Description: "From 10 min after its start, when canary-50 begins, the canary pod flaps back from draining or init to active 60 times an hour (F4, 30x the flap allowance) and its readiness toggles.",
			Seed:        103,
			CanaryRate:  50,
			Fault:       &Fault{Kind: ReadinessFlapping, Onset: 10 * time.Minute, Severity: 0.25},
		}),
		demo(Spec{
			Name:        "thin-traffic",
			Description: "Healthy canary at 0.2 requests/s: about 360 requests over its 30 minutes (120 in canary-10), too few to tell a 0.1 % budget from zero.",
			Seed:        104,
			CanaryRate:  0.2,
		}),
		demo(Spec{
			Name:        "stable-also-bad",
			Description: "From 15 min after the canary's start, 5 % of requests hit draining instances on the stable version and the canary alike (F1, scope both): not the canary's fault.",
			Seed:        105,
			CanaryRate:  50,
			Fault:       &Fault{Kind: DrainMisrouting, Onset: 15 * time.Minute, Severity: 0.05, Scope: ScopeBoth},
		}),
	}
}

// Demo returns the embedded demo scenarios in the order of DemoSpecs.
func Demo() []Bundled {
	var out []Bundled
	for _, s := range DemoSpecs() {
		s = s.WithDefaults()
		om, err := data.ReadFile("data/" + s.Name + ".om")
		if err != nil {
			// The test TestEmbeddedDataIsFresh guarantees every file exists.
			continue
		}
		out = append(out, Bundled{
			Name:        s.Name,
			Description: s.Description,
			OpenMetrics: om,
			Truth:       newPlan(s).truth(),
			Spec:        s,
		})
	}
	return out
}

// Lookup returns the demo scenario called name.
func Lookup(name string) (Bundled, bool) {
	for _, b := range Demo() {
		if b.Name == name {
			return b, true
		}
	}
	return Bundled{}, false
}
