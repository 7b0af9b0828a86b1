package action

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"unicode"

	"github.com/phaseguard/phaseguard/internal/redact"
)

// This file writes the runner's file commands ($GITHUB_OUTPUT,
// $GITHUB_STEP_SUMMARY) itself instead of through go-githubactions v1.3.0:
//
//   - its SetOutput writes every value between the fixed heredoc delimiter
//     "_GitHubActionsFileCommandDelimeter_", so a value holding that line
//     ends the heredoc early and the lines after it set outputs of their
//     own choosing. The Actions toolkit instead draws a random delimiter per
//     value and refuses a value that contains it
//     (actions/toolkit packages/core/src/file-command.ts,
//     prepareKeyValueMessage); so does writeOutputs.
//   - its SetOutput and AddStepSummary panic when the variable is unset
//     (they then open the file "") or a write fails; these functions return
//     errors, and Run checks both variables before anything else.

// outputNameRE is what the runner accepts as an output name.
var outputNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// output is one step output.
type output struct {
	name, value string
	// id marks an identifier (a stage, an environment, a path) made of
	// inputs, written as given: a later job looks it up, and redacting
	// it would break that. Other values are free text, redacted.
	id bool
}

// Bounds on an output's value, in bytes. The reason is one line for a
// person (a chat message, a comment); an identifier is a name or a path.
// GitHub keeps at most 1 MB of outputs per job.
const (
	maxOutputText = 1 << 10
	maxOutputID   = 4 << 10
)

// writeOutputs appends outputs to the $GITHUB_OUTPUT file at path in one
// write, each value between a delimiter drawn at random for it, redacted
// with set unless it is an identifier (output.id), then cut to
// maxOutputText (maxOutputID) at a word or rune boundary with a mark:
// redacted first, so that no part of a secret survives the cut unmatched.
func writeOutputs(set *redact.Set, path string, outs []output) error {
	var b strings.Builder
	for _, o := range outs {
		if !outputNameRE.MatchString(o.name) {
			return fmt.Errorf("output name %q: not a valid name", o.name)
		}
		if o.id {
			o.value = cutWords(o.value, maxOutputID)
		} else {
			o.value = cutWords(set.String(o.value), maxOutputText)
		}
		delim, err := delimiter()
		if err != nil {
			return err
		}
		if strings.Contains(o.value, delim) {
			// Unreachable short of a broken random source; refuse rather
			// than let the value close the heredoc.
			return fmt.Errorf("output %s: value contains the delimiter", o.name)
		}
		fmt.Fprintf(&b, "%s<<%s\n%s\n%s\n", o.name, delim, o.value, delim)
	}
	// The names and delimiters are not redacted: they carry nothing but
	// this function's syntax and random bits, and a short secret ("1")
	// would break the heredocs.
	return appendFile(path, b.String())
}

// delimiter returns "ghadelimiter_" and 128 random bits, as the toolkit does.
func delimiter() (string, error) {
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("output delimiter: %w", err)
	}
	return "ghadelimiter_" + hex.EncodeToString(r[:]), nil
}

// appendFile appends s to the runner file at path, which must exist or be
// creatable. It does not redact: its callers, writeOutputs and
// writeSummary, do.
func appendFile(path, s string) (err error) {
	if path == "" {
		return errors.New("no file: variable unset")
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	_, err = f.WriteString(s)
	return err
}

// oneLine makes s a single line of printable text: control characters
// (line breaks included) become spaces. Outputs that are documented as one
// line (reason) and annotation titles go through it.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}
