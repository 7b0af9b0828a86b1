// Command gen writes scenario data: the demo scenarios embedded in package
// scenarios (the default, run by `go generate ./scenarios/`), or a corpus.
//
//	gen -dir scenarios/data
//	gen -dir /tmp/corpus -corpus-seed 7 -healthy 50 -faulty 200
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/phaseguard/phaseguard/scenarios"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "data", "directory to write NAME.om and NAME.truth.json into")
	seed := fs.Int64("corpus-seed", 0, "write a corpus drawn from this seed instead of the demo scenarios")
	healthy := fs.Int("healthy", 20, "healthy specs in the corpus")
	faulty := fs.Int("faulty", 80, "faulty specs in the corpus")
	if err := fs.Parse(args); err != nil {
		return err
	}
	specs := scenarios.DemoSpecs()
	if *seed != 0 {
		specs = scenarios.Corpus(*seed, *healthy, *faulty)
	}
	if err := scenarios.WriteDir(*dir, specs); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %d scenarios to %s\n", len(specs), *dir)
	return nil
}
