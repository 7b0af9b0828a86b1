// Package regularfile reads input files whose size phaseguard bounds:
// policies and replay data. It refuses anything but a regular file (a
// directory, /dev/zero, a FIFO, a socket) and a file over the caller's
// limit before reading it, so that a hostile or mistaken path cannot hang
// the process or fill its memory: the plugin process that reads policies
// serves every AnalysisRun of a cluster.
package regularfile

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrRefused marks a file refused for its kind or size.
var ErrRefused = errors.New("refused")

// Read returns the contents of the regular file at path, of at most max
// bytes. It checks the file before opening it (opening a FIFO would wait
// for a writer) and again once open, in case the path was replaced in
// between, and reads no more than max+1 bytes. A refusal wraps ErrRefused
// and says why in words ("a named pipe", "52428801 bytes: at most 52428800");
// other errors are os's.
func Read(path string, max int64) ([]byte, error) {
	check := func(fi os.FileInfo) error {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: not a regular file (%s)", ErrRefused, kind(fi.Mode()))
		}
		if fi.Size() > max {
			return fmt.Errorf("%w: %d bytes, at most %d allowed", ErrRefused, fi.Size(), max)
		}
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := check(fi); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := check(fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: over %d bytes, at most %d allowed", ErrRefused, max, max)
	}
	return data, nil
}

// kind names what a non-regular file is.
func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeIrregular != 0:
		return "an irregular file"
	}
	return "mode " + m.String()
}
