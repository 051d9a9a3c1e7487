package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// newConsoleTestApp builds the app with only what the console routes touch.
func newConsoleTestApp(t *testing.T) http.Handler {
	t.Helper()
	return New(Options{Tokens: NewTokens([]byte("console-test-key-0123456789abcdef"), nil)}).Handler()
}

func consoleGet(t *testing.T, h http.Handler, target string, header http.Header) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", target, err)
	}
	return res, string(body)
}

func TestConsoleIndexHasStrictCSP(t *testing.T) {
	h := newConsoleTestApp(t)
	res, body := consoleGet(t, h, "/", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d, want 200", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q, want text/html", ct)
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP %q allows inline code", csp)
	}
	if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control = %q, want no-cache (the page must be revalidated after an upgrade)", got)
	}
	for _, id := range []string{`id="login-form"`, `id="approvals"`, `id="nodes"`, `id="feed"`, `id="kill-switch"`, `id="conn"`} {
		if !strings.Contains(body, id) {
			t.Errorf("the page lacks %s", id)
		}
	}
}

// pageRefs lists every URL the page loads by itself (scripts, styles, icons, images).
func pageRefs(t *testing.T, page string) []string {
	t.Helper()
	var refs []string
	z := html.NewTokenizer(strings.NewReader(page))
	for {
		switch z.Next() {
		case html.ErrorToken:
			if z.Err() != io.EOF {
				t.Fatalf("parsing the page: %v", z.Err())
			}
			return refs
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			for _, a := range tok.Attr {
				switch {
				case tok.Data == "script" && a.Key == "src",
					tok.Data == "link" && a.Key == "href",
					tok.Data == "img" && a.Key == "src":
					refs = append(refs, a.Val)
				}
			}
		}
	}
}

func TestConsoleAssetsLoad(t *testing.T) {
	h := newConsoleTestApp(t)
	_, page := consoleGet(t, h, "/", nil)
	refs := pageRefs(t, page)
	wantType := map[string]string{".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
	seen := map[string]bool{}
	for _, ref := range refs {
		if !strings.HasPrefix(ref, "/static/") {
			t.Errorf("the page loads %q: everything must come from /static/ on the same server (offline LAN, CSP)", ref)
			continue
		}
		res, body := consoleGet(t, h, ref, nil)
		if res.StatusCode != http.StatusOK || body == "" {
			t.Errorf("GET %s = %d with %d bytes, want 200 and a body", ref, res.StatusCode, len(body))
			continue
		}
		ext := ref[strings.LastIndex(ref, "."):]
		if want := wantType[ext]; want != "" && !strings.HasPrefix(res.Header.Get("Content-Type"), want) {
			t.Errorf("GET %s Content-Type = %q, want %s (nosniff makes browsers refuse a wrong type)", ref, res.Header.Get("Content-Type"), want)
		}
		if res.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s has no CSP header", ref)
		}
		seen[ext] = true
	}
	for _, ext := range []string{".js", ".css"} {
		if !seen[ext] {
			t.Errorf("the page loads no %s file", ext)
		}
	}
}

func TestConsoleRevalidatesWithETag(t *testing.T) {
	h := newConsoleTestApp(t)
	for _, target := range []string{"/", "/static/app.js", "/static/app.css"} {
		res, _ := consoleGet(t, h, target, nil)
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s has no ETag", target)
			continue
		}
		again, body := consoleGet(t, h, target, http.Header{"If-None-Match": {etag}})
		if again.StatusCode != http.StatusNotModified || body != "" {
			t.Errorf("GET %s with If-None-Match = %d (%d bytes), want 304 and no body", target, again.StatusCode, len(body))
		}
	}
}

func TestConsoleRoutes(t *testing.T) {
	h := newConsoleTestApp(t)
	tests := []struct {
		target string
		want   int
	}{
		{"/", http.StatusOK},
		{"/static/app.js", http.StatusOK},
		{"/static/app.css", http.StatusOK},
		{"/static/favicon.svg", http.StatusOK},
		{"/static/missing.js", http.StatusNotFound},
		{"/static/", http.StatusNotFound},
		{"/static/index.html", http.StatusNotFound},
		{"/static/../console.go", http.StatusNotFound},
		{"/console.go", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			res, body := consoleGet(t, h, tt.target, nil)
			if res.StatusCode != tt.want {
				t.Fatalf("GET %s = %d, want %d", tt.target, res.StatusCode, tt.want)
			}
			if tt.want == http.StatusNotFound && strings.Contains(body, "package web") {
				t.Fatalf("GET %s leaked source code", tt.target)
			}
		})
	}
}

// TestConsoleHasNoInlineCode parses the page: the CSP forbids inline scripts, style
// blocks, style attributes and event-handler attributes, so any of them would be
// silently dead in the browser.
func TestConsoleHasNoInlineCode(t *testing.T) {
	h := newConsoleTestApp(t)
	_, page := consoleGet(t, h, "/", nil)
	z := html.NewTokenizer(strings.NewReader(page))
	inScript := false
	scripts := 0
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if z.Err() != io.EOF {
				t.Fatalf("parsing the page: %v", z.Err())
			}
			break
		}
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			if tok.Data == "style" {
				t.Errorf("the page has a <style> block; put styles in /static/app.css")
			}
			hasSrc := false
			for _, a := range tok.Attr {
				key := strings.ToLower(a.Key)
				switch {
				case key == "style":
					t.Errorf("<%s> has a style attribute %q; the CSP blocks it", tok.Data, a.Val)
				case strings.HasPrefix(key, "on"):
					t.Errorf("<%s> has an inline event handler %s=%q; the CSP blocks it", tok.Data, key, a.Val)
				case strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:"):
					t.Errorf("<%s %s> is a javascript: URL; the CSP blocks it", tok.Data, key)
				case key == "src" && tok.Data == "script":
					hasSrc = true
				}
			}
			if tok.Data == "script" {
				scripts++
				if !hasSrc {
					t.Errorf("the page has an inline <script>; load code from /static/app.js")
				}
				inScript = tt == html.StartTagToken
			}
		case html.TextToken:
			if inScript && strings.TrimSpace(string(z.Text())) != "" {
				t.Errorf("a <script src> element also has inline code")
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "script" {
				inScript = false
			}
		}
	}
	if scripts == 0 {
		t.Errorf("the page loads no script at all")
	}
}

// TestConsoleScriptRendersTextSafely guards the rule that agent-supplied text is
// shown with textContent: the script must not use any HTML-parsing sink.
func TestConsoleScriptRendersTextSafely(t *testing.T) {
	h := newConsoleTestApp(t)
	_, js := consoleGet(t, h, "/static/app.js", nil)
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "createContextualFragment", "srcdoc"} {
		if strings.Contains(js, sink) {
			t.Errorf("app.js uses %s; render text with textContent", sink)
		}
	}
	for _, file := range []string{"/", "/static/app.js", "/static/app.css"} {
		_, body := consoleGet(t, h, file, nil)
		if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/`).FindString(body); m != "" {
			t.Errorf("%s refers to %q; the console must work on an offline LAN", file, m)
		}
	}
}

// TestConsoleScriptFindsItsElements checks that every element the script looks up
// by id exists in the page, so a renamed id fails here and not in a browser.
func TestConsoleScriptFindsItsElements(t *testing.T) {
	h := newConsoleTestApp(t)
	_, page := consoleGet(t, h, "/", nil)
	_, js := consoleGet(t, h, "/static/app.js", nil)
	ids := map[string]bool{}
	z := html.NewTokenizer(strings.NewReader(page))
	for tt := z.Next(); tt != html.ErrorToken; tt = z.Next() {
		if tt == html.StartTagToken || tt == html.SelfClosingTagToken {
			for _, a := range z.Token().Attr {
				if a.Key == "id" {
					if ids[a.Val] {
						t.Errorf("id %q appears twice in the page", a.Val)
					}
					ids[a.Val] = true
				}
			}
		}
	}
	uses := regexp.MustCompile(`\$\('([A-Za-z0-9_-]+)'\)`).FindAllStringSubmatch(js, -1)
	if len(uses) < 10 {
		t.Fatalf("found only %d element look-ups in app.js; the pattern no longer matches the script", len(uses))
	}
	for _, m := range uses {
		if !ids[m[1]] {
			t.Errorf("app.js looks up #%s, which the page does not have", m[1])
		}
	}
}
