package promapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzAnswer is what FuzzQuery's server sends for the next request.
type fuzzAnswer struct {
	status int
	body   []byte
	json   bool
}

// maxFuzzErrorText bounds the text of a Query error whatever the server
// sends, for FuzzQuery's short query: the server's part is cut to
// maxErrorText, and the rest is phaseguard's own words.
const maxFuzzErrorText = 2 << 10

// FuzzQuery sends a fuzzed answer (status and body) to an instant query
// through the whole client: New, Query, client_golang's decoder and
// exchanger's checks, over loopback. Run it with
//
//	go test -run='^$' -fuzz='^FuzzQuery$' -fuzztime=1000000x -parallel 1 ./promapi/
//
// or with every other target through scripts/fuzz.sh. Query never panics
// and returns a vector or an error, never both or neither; a vector's
// samples are all at the time asked for; an error's text is at most
// maxFuzzErrorText bytes, and valid UTF-8 when the body is.
func FuzzQuery(f *testing.F) {
	at := time.Unix(1767225900, 0).UTC()
	sample := func(metric string, ts string) string {
		return `{"metric":` + metric + `,"value":[` + ts + `,"1"]}`
	}
	vector := func(samples ...string) string {
		return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(samples, ",") + `]}}`
	}
	long := strings.Repeat("x", 5000)
	for _, s := range []struct {
		status uint16
		body   string
	}{
		{200, vector(sample(`{"phaseguard_part":"bad","phaseguard_window":"5m"}`, "1767225900"), sample(`{}`, "1767225900.000"))},
		{200, vector()},
		{200, vector(sample(`{"a":"`+long+`"}`, "1767225960"))},
		{200, vector(sample(`{"a":"b"}`, "1767225900"), sample(`{"a":"b"}`, "1767225900"))},
		{200, `{"status":"success","data":{"resultType":"scalar","result":[1767225900,"1"]}}`},
		{200, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1767225900,"1"]]}]}}`},
		{200, `{"status":"success","data":{"resultType":"vector","result":[]},"warnings":["` + long + `"],"isPartial":true}`},
		{200, `{"status":"success","data":{"resultType":"vector","result":[]},"warnings":{"a":1}}`},
		{200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1767225900,{"count":"1","sum":"1","buckets":[[0,"0","1","1"]]}]}]}}`},
		{200, `{"status":"error","errorType":"bad_data","error":"` + long + `"}`},
		{200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1767225900,"NaN"]},{"metric":{},"value":["x","y"]}]}}`},
		{400, `{"status":"error","errorType":"bad_data","error":"parse error: Authorization: Bearer ` + long + `"}`},
		{422, `{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}`},
		{503, `<html>` + long + `</html>`},
		{429, ``},
		{204, ``},
		{302, `{}`},
		{200, `not json`},
		{200, "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"\xff\":\"\xfe\"},\"value\":[1767225960,\"1\"]}]}}"},
	} {
		f.Add(s.status, []byte(s.body), true)
	}
	f.Add(uint16(200), []byte(vector(sample(`{}`, "1767225900"))), false)

	var next atomic.Pointer[fuzzAnswer]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		a := next.Load()
		if a.json {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(a.status)
		w.Write(a.body)
	}))
	f.Cleanup(srv.Close)
	// No retries: a 5xx would otherwise wait out the backoff.
	c, err := New(Config{URL: srv.URL + "/prometheus", Retries: -1, Timeout: 10 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	const query = `sum(up)`
	f.Fuzz(func(t *testing.T, status uint16, body []byte, json bool) {
		if len(body) > 256<<10 {
			t.Skip()
		}
		// Any final status, 200 to 599, as given when it is one.
		code := int(status)
		if code < 200 || code > 599 {
			code = 200 + code%400
		}
		next.Store(&fuzzAnswer{status: code, body: body, json: json})
		v, err := c.Query(context.Background(), query, at)
		if (v == nil) == (err == nil) {
			t.Fatalf("Query returned vector %v and error %v: want exactly one", v, err)
		}
		if err != nil {
			msg := err.Error()
			if len(msg) > maxFuzzErrorText {
				t.Errorf("error of %d bytes, over %d: %.300q...", len(msg), maxFuzzErrorText, msg)
			}
			if utf8.Valid(body) && !utf8.ValidString(msg) {
				t.Errorf("error is not valid UTF-8: %q", msg)
			}
			if !strings.Contains(msg, fmt.Sprintf("%q", query)) {
				t.Errorf("error does not name the query: %s", msg)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("a loopback answer timed out: %v", err)
			}
			return
		}
		for _, s := range v {
			if s == nil || s.Timestamp.Time().UTC() != at {
				t.Fatalf("sample %v is not at %s", s, at)
			}
		}
	})
}

// TestCheckURLQuotesNoCredentials checks that CheckURL's errors never
// quote a URL's user-info, query or fragment, an opaque one too
// (http:user:password@host, found by FuzzDecodeConfig).
func TestCheckURLQuotesNoCredentials(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"http:user:s3cr3t-pw@prometheus:9090",
		"https:s3cr3t-pw@prometheus",
		"user:s3cr3t-pw@prometheus:9090",
		"ftp://user:s3cr3t-pw@prometheus:9090",
		"http://user:s3cr3t-pw@prometheus:9090",
		"http://prometheus:9090/?access_token=s3cr3t-pw",
		"http://prometheus:9090/#s3cr3t-pw",
		"http://prometheus:9090/%zz?s3cr3t-pw",
		"//user:s3cr3t-pw@prometheus:9090",
	} {
		t.Run(raw, func(t *testing.T) {
			t.Parallel()
			err := CheckURL(raw)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error quotes the credential: %v", err)
			}
		})
	}
}
