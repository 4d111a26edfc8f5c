package test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVersionEverywhere: `postern version` names the release of the
// file VERSION; the "postern ready" log line, the postern_build_info
// metric and the status page show the same version and revision.
func TestVersionEverywhere(t *testing.T) {
	integration(t)
	b, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	release := strings.TrimSpace(string(b))
	out, errs, code := command(t, t.TempDir(), nil, "", "version")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || lines[0] != "postern "+release || !strings.HasPrefix(lines[len(lines)-1], "go1.") {
		t.Fatalf("postern version: exit %d\n%s%s", code, out, errs)
	}
	revision := "unknown" // a build outside a checkout, or with -buildvcs=false
	if len(lines) == 3 && strings.HasPrefix(lines[1], "revision ") {
		revision = strings.Fields(lines[1])[1][:12]
		if strings.HasSuffix(lines[1], ", modified") {
			revision += "-modified"
		}
	}
	goVersion := strings.Fields(lines[len(lines)-1])[0]
	t.Logf("postern version:\n%s", out)

	s := testConfig(t, t.TempDir(), "")
	s.start()
	// /healthz answers a moment before "postern ready" is logged.
	waitLogFor(t, s, `msg="postern ready" version=`+release+" revision="+revision, 10*time.Second)
	if want := `postern_build_info{goversion="` + goVersion + `",revision="` + revision + `",version="` + release + `"} 1`; !strings.Contains(metricsPage(t, s.http), want) {
		t.Errorf("metrics lack %s", want)
	}
	page := adminGet(t, filepath.Join(s.data, "admin.sock"), "/")
	if want := `<span id="version">Postern ` + release; !strings.Contains(page, want) {
		t.Errorf("the status page lacks %q", want)
	}
}

// adminGet makes a GET request over the admin socket sock and returns the
// answer's body.
func adminGet(t *testing.T, sock, path string) string {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://postern" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
	}
	return string(b)
}
