package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// startTimeout bounds the wait for a server to answer as ready.
	startTimeout = 30 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
	// startAttempts is how many free ports a start tries: another process
	// may take the port between choosing it and the server binding it.
	startAttempts = 3
)

// Server is a running server process: Prometheus (Start) or
// VictoriaMetrics (StartVictoriaMetrics).
type Server struct {
	name    string // the binary's name, for messages
	url     string
	dataDir string
	cmd     *exec.Cmd
	log     *syncBuffer
	exited  chan struct{} // closed when the process has exited
	stop    sync.Once
}

// URL returns the server's base URL, such as "http://127.0.0.1:41234".
func (s *Server) URL() string { return s.url }

// Stop stops the server (SIGTERM, then SIGKILL after 10s) and waits for it
// to exit, so a test can see the server go away. It is safe to call more
// than once; the start functions register it as a cleanup.
func (s *Server) Stop() {
	s.stop.Do(func() {
		select {
		case <-s.exited:
			return
		default:
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// daemon says how to run one kind of server.
type daemon struct {
	// name is the binary's name, for messages ("prometheus").
	name string
	// bin is the binary's path.
	bin string
	// dataDir is the server's storage directory, which ready checks.
	dataDir string
	// args returns the command-line arguments for a server listening on
	// addr (host:port).
	args func(addr string) []string
	// ready reports whether s answers as ready: nil when it does,
	// errNotReady to ask again, errPortTaken (wrapped) when another server
	// answers on s's port, any other error to give up.
	ready func(ctx context.Context, s *Server) error
}

var (
	// errPortTaken reports that a server could not bind its port, or that
	// another server answers on it.
	errPortTaken = errors.New("port taken")
	// errNotReady asks the readiness loop to poll again.
	errNotReady = errors.New("not ready")
)

// start runs d on a free port, trying another port when the chosen one was
// taken meanwhile, and stops it when the test ends, logging its output if
// the test failed. It ends the test when the server does not become ready.
func start(t testing.TB, d daemon) *Server {
	t.Helper()
	var s *Server
	var err error
	for attempt := 1; ; attempt++ {
		s, err = launch(d)
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			t.Fatalf("promtest: %v", err)
		}
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", d.name, s.log.String())
		}
	})
	return s
}

// launch starts d on a free port and waits until it is ready.
func launch(d daemon) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &Server{
		name:    d.name,
		url:     "http://" + addr,
		dataDir: d.dataDir,
		log:     &syncBuffer{},
		exited:  make(chan struct{}),
	}
	s.cmd = exec.Command(d.bin, d.args(addr)...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.waitReady(ctx, d.ready); err != nil {
		s.Stop()
		if strings.Contains(s.log.String(), "address already in use") {
			return nil, fmt.Errorf("%s on %s: %w", d.name, addr, errPortTaken)
		}
		return nil, fmt.Errorf("%s on %s: %w\n%s", d.name, addr, err, s.log.String())
	}
	return s, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls ready every 50ms until it returns anything but
// errNotReady, the process exits or ctx ends.
func (s *Server) waitReady(ctx context.Context, ready func(context.Context, *Server) error) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.exited:
			return errors.New("exited before ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
		if err := ready(ctx, s); !errors.Is(err, errNotReady) {
			return err
		}
	}
}

// get fetches path with query q.
func (s *Server) get(ctx context.Context, path string, q url.Values) (int, []byte, error) {
	u := s.url + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	return s.do(req)
}

// do sends req and reads the whole response.
func (s *Server) do(req *http.Request) (int, []byte, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// getJSON fetches path with query q and decodes a 200 response into v.
func (s *Server) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	code, body, err := s.get(ctx, path, q)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %s", path, code, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for the process's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
