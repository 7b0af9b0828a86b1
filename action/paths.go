package action

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Paths the Action reads or writes in the workspace (the policy file, the
// report, a relative $KUBECONFIG) are given relative to it, and the
// checkout is not trusted to keep them there: a link `out -> /outside` in
// the repository would have the report written to /outside/r.json, a link
// `pol.yaml -> /outside/tok.yaml` would have a file of the runner's read
// and quoted in an error. resolveInWorkspace evaluates every symbolic link
// of such a path and refuses one that ends outside the workspace (itself
// evaluated: /github/workspace may be a link). The report, written when
// the run ends, possibly hours after its path was checked, is resolved
// again then and written through an os.Root, which refuses at each system
// call a link that has appeared since and leads out.

// resolveInWorkspace returns the workspace with its symbolic links
// evaluated (root) and rel, a path relative to the workspace, as the path
// relative to root it names once every symbolic link is evaluated (name;
// "." for the workspace itself). For a file still to be created, the
// longest prefix that exists is evaluated and the rest appended. The
// error, in words for an input error after the input's name, says why rel
// is refused: not a relative path without "..", a link out of the
// workspace, or a dangling link, which would create its target wherever it
// points. It quotes no file's contents.
func resolveInWorkspace(workspace, rel string) (root, name string, err error) {
	if !filepath.IsLocal(rel) || hasControl(rel) {
		return "", "", errors.New("must be a relative path inside the workspace")
	}
	abs, err := filepath.Abs(workspace)
	if err != nil {
		return "", "", fmt.Errorf("workspace: %w", err)
	}
	if root, err = filepath.EvalSymlinks(abs); err != nil {
		return "", "", fmt.Errorf("workspace: %w", err)
	}
	// filepath.Join cleans rel lexically ("a/../b" is "b"); every use below
	// is of the cleaned path, so ".." never follows a link.
	p, rest := filepath.Join(root, rel), ""
	for {
		resolved, err := filepath.EvalSymlinks(p)
		if err == nil {
			p = filepath.Join(resolved, rest)
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", "", errors.New("cannot be resolved: a part of it is not a directory or cannot be read")
		}
		if _, lerr := os.Lstat(p); lerr == nil {
			// p exists but leads nowhere: a link to a missing file.
			return "", "", errors.New("a symbolic link in it points to nothing: following it would create a file wherever it points")
		}
		if p == root || filepath.Dir(p) == p {
			return "", "", errors.New("workspace not found")
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = filepath.Dir(p)
	}
	name, err = filepath.Rel(root, p)
	if err != nil || (name != "." && !filepath.IsLocal(name)) {
		return "", "", errors.New("a symbolic link takes it out of the workspace")
	}
	return root, name, nil
}

// writeInWorkspace writes data to rel in the workspace, creating the
// directories it needs, through an os.Root of the workspace: rel is
// resolved again (resolveInWorkspace), and a link that appears between
// that and the write and leads out of the workspace is refused by the
// system calls themselves.
func writeInWorkspace(workspace, rel string, data []byte) error {
	root, name, err := resolveInWorkspace(workspace, rel)
	if err != nil {
		return err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	defer r.Close()
	if dir := filepath.Dir(name); dir != "." {
		if err := r.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
