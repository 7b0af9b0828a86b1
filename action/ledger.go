package action

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/google/go-github/v60/github"
	"github.com/prometheus/common/model"

	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/internal/redirect"
	"github.com/phaseguard/phaseguard/policies"
)

// The stage ledger is kept in GitHub deployments: the durable record of
// which stage of which commit passed, and when. See the package comment for
// the rules; this file implements them.

// deploymentTask marks phaseguard's deployments, so that a repository's
// other deployments to the same environment are never read as stages.
const deploymentTask = "deploy:phaseguard"

// Deployment states (https://docs.github.com/rest/deployments/statuses).
const (
	stateQueued     = "queued"
	statePending    = "pending"
	stateInProgress = "in_progress"
	stateSuccess    = "success"
	stateFailure    = "failure"
	stateError      = "error"
	stateInactive   = "inactive"
)

// staleGrace is how long past its deadline an unfinished deployment still
// counts as running: a run that died without writing a final status stops
// blocking the stage after that.
const staleGrace = 2 * time.Minute

// maxPages bounds the deployment list of one commit and environment.
const maxPages = 10

// payload is the JSON phaseguard stores on each deployment.
type payload struct {
	Tool       string    `json:"tool"`
	Stage      string    `json:"stage"`
	Policy     string    `json:"policy"`
	Service    string    `json:"service,omitempty"`
	CanaryHash string    `json:"canary_hash"`
	StableHash string    `json:"stable_hash,omitempty"`
	RunID      string    `json:"run_id,omitempty"`
	RunURL     string    `json:"run_url,omitempty"`
	Deadline   time.Time `json:"deadline"`
}

// ledger reads and writes the deployments of one commit.
type ledger struct {
	gh          *github.Client
	owner, repo string
	sha         string
	now         func() time.Time
	// sec redacts the free text the ledger sends, the descriptions,
	// before they are cut to GitHub's 140 bytes (a cut secret would no
	// longer match). Nothing else is redacted: the environment, the ref,
	// the task and the payload are identifiers made of inputs (stage,
	// prefix, service, hashes, policy name, run id) and syntax, which
	// later runs look up as written; a server's text never reaches them.
	sec *redact.Set
	// calls counts API calls, for the log.
	calls int
}

// newLedger returns the ledger of commit sha in owner/repo, kept through
// the GitHub API at base with token. Descriptions are redacted with sec.
func newLedger(hc *http.Client, token string, base *url.URL, sec *redact.Set, owner, repo, sha string, now func() time.Time) *ledger {
	// WithAuthToken adds the token in a transport, below net/http's
	// stripping of Authorization on a redirect to another host: only
	// redirects within the API's origin are followed.
	gh := github.NewClient(redirect.Client(hc)).WithAuthToken(token)
	b := *base
	gh.BaseURL = &b
	gh.UserAgent = "phaseguard-action"
	return &ledger{gh: gh, owner: owner, repo: repo, sha: sha, now: now, sec: sec}
}

// record is one deployment and its latest status (nil: none yet).
type record struct {
	d      *github.Deployment
	status *github.DeploymentStatus
	// deadline is when the run that created it gives up (from its
	// payload); zero when unknown.
	deadline time.Time
}

func (r *record) state() string {
	if r.status == nil {
		return ""
	}
	return r.status.GetState()
}

// running reports whether the deployment is still being judged: it has no
// final status and its run's deadline (or, without one, GitHub's 6 h job
// limit) has not passed.
func (r *record) running(now time.Time) bool {
	switch r.state() {
	case "", stateQueued, statePending, stateInProgress:
	default:
		return false
	}
	return now.Before(r.expires())
}

func (r *record) expires() time.Time {
	if !r.deadline.IsZero() {
		return r.deadline.Add(staleGrace)
	}
	return r.d.GetCreatedAt().Add(maxTimeout + staleGrace)
}

// deployments lists phaseguard's deployments of the commit to env, oldest
// first. With statuses, each carries its latest status; deployments whose
// run expired before since are returned without one.
func (l *ledger) deployments(ctx context.Context, env string) ([]*record, error) {
	opts := &github.DeploymentsListOptions{SHA: l.sha, Environment: env, Task: deploymentTask, ListOptions: github.ListOptions{PerPage: 100}}
	var out []*record
	for page := 0; page < maxPages; page++ {
		ds, resp, err := l.gh.Repositories.ListDeployments(ctx, l.owner, l.repo, opts)
		l.calls++
		if err != nil {
			return nil, fmt.Errorf("list deployments of %s to %s: %w%s", short(l.sha), env, err, hint(err))
		}
		for _, d := range ds {
			// The API filters; check again, so that a server that ignores
			// a filter cannot mix other commits or stages in.
			if d.GetSHA() != l.sha || d.GetEnvironment() != env || d.GetTask() != deploymentTask {
				continue
			}
			r := &record{d: d}
			var p payload
			if json.Unmarshal(d.Payload, &p) == nil {
				r.deadline = p.Deadline
			}
			out = append(out, r)
		}
		if resp == nil || resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	sort.Slice(out, func(i, j int) bool { return out[i].d.GetID() < out[j].d.GetID() })
	return out, nil
}

// latest fills in r's latest status.
func (l *ledger) latest(ctx context.Context, r *record) error {
	sts, _, err := l.gh.Repositories.ListDeploymentStatuses(ctx, l.owner, l.repo, r.d.GetID(), &github.ListOptions{PerPage: 100})
	l.calls++
	if err != nil {
		return fmt.Errorf("list statuses of deployment %d: %w%s", r.d.GetID(), err, hint(err))
	}
	r.status = nil
	for _, s := range sts {
		if r.status == nil || s.GetID() > r.status.GetID() {
			r.status = s
		}
	}
	return nil
}

// checkPrevious applies stage ordering: the newest deployment of the
// previous stage for this commit that is not inactive must have succeeded
// and must have started at least prev.Soak ago. It returns "" when the stage
// may be judged, else the reason it may not, starting with "out-of-order".
func (l *ledger) checkPrevious(ctx context.Context, prev policies.Stage, env string) (string, error) {
	recs, err := l.deployments(ctx, env)
	if err != nil {
		return "", err
	}
	now := l.now()
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if err := l.latest(ctx, r); err != nil {
			return "", err
		}
		id := r.d.GetID()
		switch st := r.state(); {
		case r.running(now):
			return fmt.Sprintf("out-of-order: previous stage %s is still being judged for commit %s (deployment %d to %s)", prev.Name, short(l.sha), id, env), nil
		case st == stateInactive || st == "" || st == stateQueued || st == statePending || st == stateInProgress:
			// Superseded, or abandoned by a run that died: not a verdict.
			continue
		case st == stateSuccess:
			started := r.d.GetCreatedAt().Time
			soak := time.Duration(prev.Soak)
			if ran := now.Sub(started); ran < soak {
				return fmt.Sprintf("out-of-order: previous stage %s passed for commit %s but has soaked %s of %s (deployment %d to %s, started %s); retry after %s",
					prev.Name, short(l.sha), model.Duration(ran.Truncate(time.Second)), prev.Soak, id, env, started.UTC().Format(time.RFC3339), started.Add(soak).UTC().Format(time.RFC3339)), nil
			}
			return "", nil
		default:
			return fmt.Sprintf("out-of-order: previous stage %s did not pass for commit %s: its latest deployment %d to %s is %s (%s)",
				prev.Name, short(l.sha), id, env, st, oneLine(r.status.GetDescription())), nil
		}
	}
	return fmt.Sprintf("out-of-order: previous stage %s has not passed for commit %s (no successful deployment to environment %s)", prev.Name, short(l.sha), env), nil
}

// create records the start of judging a stage: a deployment of the commit
// to env, marked in_progress.
func (l *ledger) create(ctx context.Context, env, description string, p payload, production bool, logURL string) (*github.Deployment, error) {
	req := &github.DeploymentRequest{
		Ref:         github.String(l.sha),
		Task:        github.String(deploymentTask),
		AutoMerge:   github.Bool(false),
		Environment: github.String(env),
		Description: github.String(truncate(l.sec.String(description), 140)),
		Payload:     p,
		// No commit status is required: phaseguard is the check.
		RequiredContexts:      &[]string{},
		TransientEnvironment:  github.Bool(false),
		ProductionEnvironment: github.Bool(production),
	}
	d, _, err := l.gh.Repositories.CreateDeployment(ctx, l.owner, l.repo, req)
	l.calls++
	if err != nil {
		return nil, fmt.Errorf("create deployment of %s to %s: %w%s", short(l.sha), env, err, hint(err))
	}
	if err := l.setStatus(ctx, d.GetID(), stateInProgress, "phaseguard is judging "+env, logURL); err != nil {
		return d, err
	}
	return d, nil
}

// setStatus writes a status. Statuses never inactivate other deployments
// (auto_inactive false): a success of another commit must not erase this
// commit's record.
func (l *ledger) setStatus(ctx context.Context, id int64, state, description, logURL string) error {
	req := &github.DeploymentStatusRequest{
		State:        github.String(state),
		Description:  github.String(truncate(oneLine(l.sec.String(description)), 140)),
		AutoInactive: github.Bool(false),
	}
	if logURL != "" {
		req.LogURL = github.String(logURL)
	}
	_, _, err := l.gh.Repositories.CreateDeploymentStatus(ctx, l.owner, l.repo, id, req)
	l.calls++
	if err != nil {
		return fmt.Errorf("set deployment %d %s: %w%s", id, state, err, hint(err))
	}
	return nil
}

// firstRunning returns the oldest deployment of the commit to env, other
// than mine and older than it, that is still being judged; nil when mine
// is the oldest. Only that one proceeds: two runs that both created a
// deployment see each other here, and the younger one yields.
func (l *ledger) firstRunning(ctx context.Context, env string, mine int64) (*record, error) {
	recs, err := l.deployments(ctx, env)
	if err != nil {
		return nil, err
	}
	now := l.now()
	for _, r := range recs {
		if r.d.GetID() >= mine {
			break
		}
		if !now.Before(r.expires()) {
			continue // expired whatever its status: skip the status call
		}
		if err := l.latest(ctx, r); err != nil {
			return nil, err
		}
		if r.running(now) {
			return r, nil
		}
	}
	return nil, nil
}

// hint says what usually causes an API error.
func hint(err error) string {
	var er *github.ErrorResponse
	if !errors.As(err, &er) || er.Response == nil {
		return ""
	}
	switch er.Response.StatusCode {
	case http.StatusUnauthorized:
		return " (check the github-token input)"
	case http.StatusForbidden, http.StatusNotFound:
		return " (the token needs `permissions: deployments: write` on the job, or set github-token: '' and stage-ordering: false)"
	}
	return ""
}

// short abbreviates a commit id as git does.
func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// truncate cuts s to at most n bytes at a rune boundary, marking the cut:
// GitHub counts the 140 characters of a description in bytes of UTF-8
// for some characters, so bytes are the safe measure.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
