package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// pluginFileMode is the mode of the installed binary: the Argo Rollouts
// controller runs as another user than the init container that installs
// it (argo's image runs as UID 999), so everyone may read and run it.
const pluginFileMode = 0o755

// runInstallPlugin copies the running binary into a directory, for an init
// container of the Argo Rollouts controller's pod: the phaseguard image is
// distroless (no shell, no cp), so the binary places itself into the
// shared emptyDir that the ConfigMap's file:// location names.
func runInstallPlugin(_ context.Context, e env, args []string) int {
	set := flag.NewFlagSet("install-plugin", flag.ContinueOnError)
	name := set.String("name", "phaseguard", fmt.Sprintf("file name of the copy inside DIR (one path element, at most %d bytes)", maxNameLen))
	usage := `Usage: phaseguard install-plugin [--name NAME] DIR

Copies this phaseguard binary into the existing directory DIR as DIR/NAME
(mode 0755), atomically: a temporary file in DIR, synced, then renamed over
NAME, so the Argo Rollouts controller never sees a partial binary. Prints
the copy's SHA-256 and path in sha256sum format. For an init container of
the controller's pod (examples/controller-init-container.yaml): the image
has no shell or cp. Exit 3 if DIR is missing, not a directory or not
writable.`
	if code, ok := parseUsage(set, e, args, usage); !ok {
		return code
	}
	if set.NArg() != 1 {
		fmt.Fprintf(e.stderr, "phaseguard install-plugin: %s\n", argsProblem(set.Args()))
		set.Usage()
		return exitUsage
	}
	self, err := os.Executable()
	if err != nil {
		return fail(e, "install-plugin", fmt.Errorf("find this binary: %w", err))
	}
	sum, dest, err := installCopy(self, set.Arg(0), *name)
	if err != nil {
		return fail(e, "install-plugin", err)
	}
	fmt.Fprintf(e.stdout, "%s  %s\n", sum, dest)
	return exitPass
}

// installCopy copies the regular file src into the existing directory dir
// as dir/name, atomically, with mode 0755, and returns the SHA-256 (hex)
// of the bytes written and the copy's path. Every step stays inside dir
// (an os.Root): a name that is not one plain path element is refused, and
// an existing dir/name that is a symbolic link is replaced, never
// followed. Errors name dir (or the copy) and keep the cause.
func installCopy(src, dir, name string) (sum, dest string, err error) {
	if err := checkName(name); err != nil {
		return "", "", err
	}
	if dir == "" {
		return "", "", errors.New("directory \"\": empty; give the directory to copy into (the shared volume's mount path)")
	}
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if li, lerr := os.Lstat(dir); lerr == nil && li.Mode()&fs.ModeSymlink != 0 {
			return "", "", fmt.Errorf("directory %q: a symbolic link to nothing", dir)
		}
		return "", "", fmt.Errorf("directory %q: does not exist (mount the shared volume there)", dir)
	case err != nil:
		return "", "", fmt.Errorf("directory %q: %w", dir, err)
	case !info.IsDir():
		return "", "", fmt.Errorf("directory %q: not a directory (%s)", dir, describeMode(info.Mode()))
	}
	dest = filepath.Join(dir, name)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", "", fmt.Errorf("directory %q: %w", dir, err)
	}
	defer root.Close()

	in, err := os.Open(src)
	if err != nil {
		return "", "", fmt.Errorf("read this binary: %w", err)
	}
	defer in.Close()
	if si, err := in.Stat(); err != nil || !si.Mode().IsRegular() {
		return "", "", fmt.Errorf("read this binary %q: not a regular file", src)
	}

	tmp, tmpName, err := createTemp(root, name)
	if err != nil {
		return "", "", fmt.Errorf("directory %q: create a temporary file: %w", dir, unwrapPath(err))
	}
	defer func() {
		if err != nil {
			tmp.Close()
			root.Remove(tmpName)
		}
	}()
	h := sha256.New()
	if _, err = io.Copy(io.MultiWriter(tmp, h), in); err != nil {
		return "", "", fmt.Errorf("directory %q: write the copy: %w", dir, unwrapPath(err))
	}
	// Chmod explicitly: the mode given at creation is masked by the umask.
	if err = tmp.Chmod(pluginFileMode); err != nil {
		return "", "", fmt.Errorf("directory %q: chmod the copy: %w", dir, unwrapPath(err))
	}
	if err = tmp.Sync(); err != nil {
		return "", "", fmt.Errorf("directory %q: sync the copy: %w", dir, unwrapPath(err))
	}
	if err = tmp.Close(); err != nil {
		return "", "", fmt.Errorf("directory %q: close the copy: %w", dir, unwrapPath(err))
	}
	if err = root.Rename(tmpName, name); err != nil {
		return "", "", fmt.Errorf("copy %q: rename into place: %w", dest, unwrapPath(err))
	}
	// Make the rename durable; a directory that cannot be synced (some
	// network file systems) still holds the copy.
	if d, derr := root.Open("."); derr == nil {
		d.Sync()
		d.Close()
	}
	return hex.EncodeToString(h.Sum(nil)), dest, nil
}

// createTemp creates a new file for the copy inside root, named after name
// so that a leftover is recognisable, with O_EXCL: an existing file or
// symbolic link of that name is never opened.
func createTemp(root *os.Root, name string) (*os.File, string, error) {
	for range 10 {
		var b [6]byte
		rand.Read(b[:])
		tmpName := "." + name + ".tmp-" + hex.EncodeToString(b[:])
		f, err := root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, tmpName, err
	}
	return nil, "", errors.New("no free temporary name after 10 tries")
}

// argsProblem says what is wrong with install-plugin's arguments after its
// flags when they are not exactly one DIR: how many there are, quoted, and
// that flags go first when one of the extra arguments looks like a flag
// (the flag package stops at the first argument that is not one).
func argsProblem(args []string) string {
	quoted := make([]string, len(args))
	flagAfter := false
	for i, a := range args {
		quoted[i] = strconv.Quote(a)
		if i > 0 && strings.HasPrefix(a, "-") && a != "-" {
			flagAfter = true
		}
	}
	msg := fmt.Sprintf("want one DIR, got %d", len(args))
	if len(args) > 0 {
		msg += " (" + strings.Join(quoted, ", ") + ")"
	}
	if flagAfter {
		msg += "; flags go before DIR"
	}
	return msg
}

// tempSuffixLen is what createTemp adds to a copy's name: a leading "."
// and ".tmp-" with 12 hex digits.
const tempSuffixLen = len(".") + len(".tmp-") + 12

// maxNameLen is the longest --name, in bytes: a file name has at most 255
// bytes (NAME_MAX on Linux file systems), and the temporary file's name is
// the copy's name plus tempSuffixLen.
const maxNameLen = 255 - tempSuffixLen

// checkName refuses a copy name that is not one plain path element, or
// one too long for its temporary file's name.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("--name \"\": empty")
	case name == "." || name == "..":
		return fmt.Errorf("--name %q: not a file name", name)
	case strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("--name %q: must be a file name, without a directory", name)
	case len(name) > maxNameLen:
		return fmt.Errorf("--name %q: %d bytes, at most %d (the copy is first written as .NAME.tmp-XXXXXXXXXXXX, and a file name has at most 255 bytes)", name, len(name), maxNameLen)
	}
	return nil
}

// unwrapPath drops an *fs.PathError's operation and path (the temporary
// name means nothing to a reader; the message already names the
// directory) and keeps its cause.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// describeMode names a file's type for an error.
func describeMode(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}
