package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// stdioPeer is a client's end of jarvis stdio: it writes raw bytes to the
// server's stdin and reads its stdout line by line.
type stdioPeer struct {
	t     *testing.T
	ss    *mcp.ServerSession
	in    *io.PipeWriter
	lines chan []byte // stdout, one message a line; closed at its end
}

// openStdio serves h's MCP server for the operator on StdioTransport, or on
// the SDK's plain IOTransport when plain is set (to compare), over pipes.
func openStdio(t *testing.T, h *harness, plain bool) *stdioPeer {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	transport := StdioTransport(inR, outW)
	if plain {
		transport = &mcp.IOTransport{Reader: inR, Writer: outW}
	}
	ss, err := h.srv.MCP(operator, &operator).Connect(context.Background(), transport, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &stdioPeer{t: t, ss: ss, in: inW, lines: make(chan []byte, 64)}
	go func() {
		defer close(p.lines)
		r := bufio.NewReader(outR)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 {
				p.lines <- line
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		inW.Close()
		ss.Close()
		outR.Close()
	})
	return p
}

// send writes each part with its own Write, so a message can arrive in pieces.
func (p *stdioPeer) send(parts ...string) {
	p.t.Helper()
	for _, s := range parts {
		if _, err := io.WriteString(p.in, s); err != nil {
			p.t.Fatalf("writing %.80q: %v", s, err)
		}
	}
}

// reply returns the next response on stdout (notifications skipped), or nil
// when stdout ended or nothing came within wait.
func (p *stdioPeer) reply(wait time.Duration) *jsonrpc.Response {
	p.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return nil
			}
			msg, err := jsonrpc.DecodeMessage(bytes.TrimSpace(line))
			if err != nil {
				p.t.Fatalf("stdout line %q: %v", line, err)
			}
			if res, ok := msg.(*jsonrpc.Response); ok {
				return res
			}
		case <-deadline:
			return nil
		}
	}
}

// rpcError is a response's JSON-RPC error, or nil.
func rpcError(t *testing.T, res *jsonrpc.Response) *jsonrpc.Error {
	t.Helper()
	if res.Error == nil {
		return nil
	}
	var we *jsonrpc.Error
	if !errors.As(res.Error, &we) {
		t.Fatalf("error %T %v", res.Error, res.Error)
	}
	return we
}

// metaLine is one JSON-RPC request on a line, its params' _meta naming
// version with the capabilities 2026-07-28 asks for ("" leaves _meta out).
func metaLine(t *testing.T, id any, method, version string) string {
	t.Helper()
	params := map[string]any{}
	if version != "" {
		params["_meta"] = map[string]any{
			mcp.MetaKeyProtocolVersion:    version,
			mcp.MetaKeyClientCapabilities: map[string]any{},
			mcp.MetaKeyClientInfo:         map[string]any{"name": "raw", "version": "1"},
		}
	}
	b, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// Over stdio a server/discover below 2026-07-28, or with no revision, gets
// the unsupported-version error with every revision served and what to do,
// as over HTTP, not "method not found"; at 2026-07-28 it reaches the SDK and
// gets its result; a revision newer than any served gets the SDK's own
// -32022. However the request arrives: in pieces, over several lines, with
// braces inside its strings.
func TestStdioDiscoverAtAnOlderRevision(t *testing.T) {
	h := newHarness(t)
	old := metaLine(t, 7, methodDiscover, protocolLegacy)
	for _, tc := range []struct {
		name          string
		send          []string
		wantID        string
		wantRequested string
		ours          bool // the refusal is Jarvis's (DiscoverRefusal), not the SDK's
		wantResult    bool // a discover result listing 2026-07-28
	}{
		{name: "no _meta", send: []string{metaLine(t, 7, methodDiscover, "")}, wantID: "7", ours: true},
		{name: "no params, string id", send: []string{`{"jsonrpc":"2.0","id":"d-1","method":"server/discover"}` + "\n"}, wantID: `"d-1"`, ours: true},
		{name: "2025-11-25", send: []string{old}, wantID: "7", wantRequested: protocolLegacy, ours: true},
		{name: "a revision that is not a string", send: []string{`{"jsonrpc":"2.0","id":7,"method":"server/discover","params":{"_meta":{"` +
			mcp.MetaKeyProtocolVersion + `":20260728}}}` + "\n"}, wantID: "7", ours: true},
		{name: "2025-11-25 split across reads", send: []string{old[:9], old[9:40], old[40 : len(old)-3], old[len(old)-3:]},
			wantID: "7", wantRequested: protocolLegacy, ours: true},
		{name: "2025-11-25 over several lines, CRLF", send: []string{"{\r\n \"jsonrpc\": \"2.0\",\r\n \"method\": \"server/discover\",\r\n \"id\": 8,\r\n" +
			` "params": {"_meta": {"` + mcp.MetaKeyProtocolVersion + `": "2025-11-25"}}` + "\r\n}\r\n"}, wantID: "8", wantRequested: protocolLegacy, ours: true},
		{name: "braces and quotes in strings", send: []string{`{"jsonrpc":"2.0","id":9,"params":{"x":"}]\"{[\\","_meta":{"` +
			mcp.MetaKeyProtocolVersion + `":"2025-06-18"}},"method":"server/discover"}` + "\n"}, wantID: "9", wantRequested: "2025-06-18", ours: true},
		{name: "2026-07-28", send: []string{metaLine(t, 7, methodDiscover, protocolNew)}, wantID: "7", wantResult: true},
		{name: "newer than any served", send: []string{metaLine(t, 7, methodDiscover, "2099-01-01")}, wantID: "7", wantRequested: "2099-01-01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := openStdio(t, h, false)
			p.send(tc.send...)
			res := p.reply(10 * time.Second)
			if res == nil {
				t.Fatal("no answer")
			}
			if id, _ := json.Marshal(res.ID.Raw()); string(id) != tc.wantID {
				t.Errorf("answer id %s, want %s", id, tc.wantID)
			}
			we := rpcError(t, res)
			if tc.wantResult {
				var out struct{ SupportedVersions []string }
				if we != nil || json.Unmarshal(res.Result, &out) != nil || !slices.Contains(out.SupportedVersions, protocolNew) {
					t.Fatalf("want a result listing %s: %s, error %v", protocolNew, res.Result, we)
				}
				return
			}
			if we == nil || we.Code != mcp.CodeUnsupportedProtocolVersion {
				t.Fatalf("want error %d, got %v (result %s)", mcp.CodeUnsupportedProtocolVersion, we, res.Result)
			}
			var data mcp.UnsupportedProtocolVersionData
			if err := json.Unmarshal(we.Data, &data); err != nil {
				t.Fatalf("error data %s: %v", we.Data, err)
			}
			if !slices.Equal(data.Supported, mcp.SupportedProtocolVersions()) || data.Requested != tc.wantRequested {
				t.Errorf("data %+v, want supported %v, requested %q", data, mcp.SupportedProtocolVersions(), tc.wantRequested)
			}
			says := strings.Contains(we.Message, "send it at "+StatelessVersion+" or later") && strings.Contains(we.Message, "initialize")
			if says != tc.ours {
				t.Errorf("message %q: Jarvis's refusal %v, want %v", we.Message, says, tc.ours)
			}
			// The session goes on.
			p.send(`{"jsonrpc":"2.0","id":99,"method":"ping"}` + "\n")
			if res := p.reply(10 * time.Second); res == nil || rpcError(t, res) != nil {
				t.Fatalf("ping after the discover: %+v", res)
			}
		})
	}
}

// Everything but such a discover reaches the SDK as it was sent: a session
// at 2025-11-25 and one at 2026-07-28 work through the wrapper, a batch at
// 2025-11-25 is refused by the SDK exactly as without it, a notification is
// not answered, and a line longer than the wrapper holds gets through.
func TestStdioPassesTheRestThrough(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()

	for _, version := range []string{protocolLegacy, protocolNew} {
		t.Run("a client session at "+version, func(t *testing.T) {
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			ss, err := h.srv.MCP(operator, &operator).Connect(ctx, StdioTransport(inR, outW), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ss.Close() })
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "stdio-test", Version: "1"}, nil).
				Connect(ctx, &mcp.IOTransport{Reader: outR, Writer: inW}, &mcp.ClientSessionOptions{ProtocolVersion: version})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cs.Close() })
			list, err := cs.ListTools(ctx, nil)
			if err != nil || len(list.Tools) == 0 {
				t.Fatalf("tools/list: %v, %d tools", err, len(list.Tools))
			}
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_cluster_status", Arguments: map[string]any{}})
			if err != nil || res.IsError {
				t.Fatalf("get_cluster_status: %v %s", err, textOf(res))
			}
		})
	}

	// The SDK refuses a batch once 2025-06-18 or later was negotiated by
	// ending the session unanswered (its connection's session hook): the
	// same with and without the wrapper.
	t.Run("a batch at 2025-11-25", func(t *testing.T) {
		for _, plain := range []bool{true, false} {
			p := openStdio(t, h, plain)
			p.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`+"\n",
				`{"jsonrpc":"2.0","method":"notifications/initialized","params":{}}`+"\n")
			if res := p.reply(10 * time.Second); res == nil || rpcError(t, res) != nil {
				t.Fatalf("plain %v: initialize: %+v", plain, res)
			}
			p.send(`[{"jsonrpc":"2.0","id":2,"method":"ping"},{"jsonrpc":"2.0","id":3,"method":"tools/list"}]` + "\n")
			ended := make(chan struct{})
			go func() { _ = p.ss.Wait(); close(ended) }()
			select {
			case <-ended:
			case <-time.After(10 * time.Second):
				t.Fatalf("plain %v: the session outlived the batch", plain)
			}
			if res := p.reply(100 * time.Millisecond); res != nil {
				t.Fatalf("plain %v: the batch was answered: %+v", plain, res)
			}
		}
	})

	// A message cut off by its newline is not JSON: the SDK ends the session
	// at once, and the wrapper must not hold the rest back waiting for a
	// closing brace that never comes.
	t.Run("a message cut off by its newline", func(t *testing.T) {
		for _, plain := range []bool{true, false} {
			p := openStdio(t, h, plain)
			p.send(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"b` + "\n")
			ended := make(chan struct{})
			go func() { _ = p.ss.Wait(); close(ended) }()
			select {
			case <-ended:
			case <-time.After(10 * time.Second):
				t.Fatalf("plain %v: the session outlived a broken message", plain)
			}
		}
	})

	t.Run("a discover notification is not answered", func(t *testing.T) {
		p := openStdio(t, h, false)
		p.send(`{"jsonrpc":"2.0","method":"server/discover","params":{}}`+"\n", `{"jsonrpc":"2.0","id":5,"method":"ping"}`+"\n")
		if res := p.reply(10 * time.Second); res == nil || string(mustJSON(t, res.ID.Raw())) != "5" {
			t.Fatalf("first answer %+v, want the ping's", res)
		}
	})

	t.Run("a line longer than the wrapper holds", func(t *testing.T) {
		p := openStdio(t, h, false)
		long := `{"jsonrpc":"2.0","id":6,"method":"ping","params":{"pad":"` + strings.Repeat("{x", discoverHoldMax) + `"}}` + "\n"
		p.send(long)
		if res := p.reply(10 * time.Second); res == nil || rpcError(t, res) != nil {
			t.Fatalf("a %d-byte ping: %+v", len(long), res)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The SDK reads exactly the bytes that were sent, less the discovers answered,
// however the reads fall; answers go to out; the end of in comes after all
// of it, with what was held passed on.
func TestDiscoverFilterBytes(t *testing.T) {
	oldDiscover := `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"` + mcp.MetaKeyProtocolVersion + `":"2025-11-25"}}}`
	keep := []string{
		`{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}` + "\n",
		"\r\n  \n",
		`[{"jsonrpc":"2.0","id":3,"method":"server/discover"}]` + "\n", // a batch is the SDK's
		`{"jsonrpc":"2.0","method":"server/discover"}` + "\n",          // a notification
		`{"jsonrpc":"1.0","id":4,"method":"server/discover"}` + "\n",   // not JSON-RPC 2.0
		`{"jsonrpc":"2.0","id":{},"method":"server/discover"}` + "\n",  // an id the SDK refuses
		`{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"s":"\\\"}{"}}` + "\n",
		`{"jsonrpc":"2.0","id":6,"method":"ping","params":{"pad":"` + strings.Repeat("}", discoverHoldMax+10) + `"}}` + "\n",
		metaLine(t, 7, methodDiscover, protocolNew),
		`{"jsonrpc":"2.0","id":8,"method":"ping"`, // cut short by the end of in
	}
	var in, want strings.Builder
	for i, s := range keep {
		in.WriteString(s)
		want.WriteString(s)
		if i%2 == 0 {
			in.WriteString(oldDiscover + "\n")
			want.WriteString("\n")
		}
	}
	for _, tc := range []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole reads", func(r io.Reader) io.Reader { return r }},
		{"one byte a read", iotest.OneByteReader},
		{"half reads", iotest.HalfReader},
		{"data with the error", iotest.DataErrReader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			f := &discoverFilter{src: tc.wrap(strings.NewReader(in.String())), out: &stdioWriter{w: &out}, buf: make([]byte, 32<<10)}
			got, err := io.ReadAll(f)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want.String() {
				t.Errorf("the SDK read %d bytes, want %d", len(got), want.Len())
			}
			answers := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(answers) != (len(keep)+1)/2 {
				t.Fatalf("%d answers on out, want %d: %.300s", len(answers), (len(keep)+1)/2, out.String())
			}
			for _, a := range answers {
				if !strings.HasPrefix(a, `{"jsonrpc":"2.0","id":1,"error":{"code":-32022,`) {
					t.Errorf("answer %.200s", a)
				}
			}
		})
	}
}
