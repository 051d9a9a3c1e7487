package server

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// StatelessVersion is the first protocol revision without initialize: a
// client opens it with server/discover and names it in every request's
// _meta. Revisions are dates and compare as strings, as the SDK compares them.
const StatelessVersion = "2026-07-28"

// methodDiscover is the probe of 2026-07-28 clients.
const methodDiscover = "server/discover"

// DiscoverRefusal is the answer to a server/discover that names a revision
// before StatelessVersion, or none (requested ""): the unsupported-version
// error with every revision Jarvis serves and what to send instead. header
// names the HTTP header that also carries the revision ("" for stdio).
func DiscoverRefusal(requested, header string) *jsonrpc.Error {
	what := fmt.Sprintf("protocol version %q", requested)
	if requested == "" {
		what = "a request without a protocol version"
	}
	where := fmt.Sprintf("params._meta[%q]", mcp.MetaKeyProtocolVersion)
	if header != "" {
		where = fmt.Sprintf("header %s and %s", header, where)
	}
	data, _ := json.Marshal(mcp.UnsupportedProtocolVersionData{Supported: mcp.SupportedProtocolVersions(), Requested: requested})
	return &jsonrpc.Error{
		Code: mcp.CodeUnsupportedProtocolVersion,
		Message: fmt.Sprintf("unsupported protocol version: %s has no %s; send it at %s or later (%s), "+
			"or start a session with initialize at an older one", what, methodDiscover, StatelessVersion, where),
		Data: data,
	}
}

// StdioTransport is the transport of jarvis stdio: newline-delimited JSON-RPC
// on in and out, as mcp.StdioTransport. It differs in one answer: the SDK
// says "method not found" to a server/discover below StatelessVersion, which
// leaves a 2026-07-28 client probing an older server to guess; here it gets
// DiscoverRefusal, as over HTTP. Only the byte stream is wrapped, not the
// SDK's connection, whose unexported session hook refuses batches from
// 2025-06-18 on. Closing it closes in (when it can be closed), never out.
func StdioTransport(in io.Reader, out io.Writer) mcp.Transport {
	w := &stdioWriter{w: out}
	return &mcp.IOTransport{Reader: &discoverFilter{src: in, out: w, buf: make([]byte, 32<<10)}, Writer: w}
}

// stdioWriter serialises whole messages on out: the SDK writes each message
// (newline included) in one Write, and discoverFilter its answers, so lines
// never interleave.
type stdioWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *stdioWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// Close leaves out open, as mcp.StdioTransport leaves stdout.
func (w *stdioWriter) Close() error { return nil }

// discoverHoldMax bounds the bytes of one top-level object held back to see
// whether it is a server/discover. A discover is far smaller; a longer
// object is passed on as it streams (the SDK applies its own limit).
const discoverHoldMax = 1 << 20

// discoverFilter is in as the SDK reads it. It frames messages as the SDK's
// decoder does, by top-level JSON values, not by lines. Each top-level object
// is held until it ends; a server/discover request the SDK would refuse with
// "method not found" is answered on out and dropped, and every other byte
// passes unchanged and in order. Held bytes are passed on as they are when in
// ends, so a truncated value fails in the SDK as before.
type discoverFilter struct {
	src io.Reader
	out *stdioWriter
	buf []byte // one read from src

	pass []byte // for the SDK; pass[off:] is not read yet
	off  int
	held []byte // the top-level object being read, while holding
	// holding is set while a top-level object is held back; any other value,
	// or an object too long to hold, passes as it comes.
	holding bool
	scan    jsonScan
	err     error
}

func (f *discoverFilter) Read(p []byte) (int, error) {
	for f.off == len(f.pass) {
		f.pass, f.off = f.pass[:0], 0
		if f.err != nil {
			return 0, f.err
		}
		n, err := f.src.Read(f.buf)
		f.feed(f.buf[:n])
		if err != nil {
			f.flushHeld()
			f.err = err
		}
	}
	n := copy(p, f.pass[f.off:])
	f.off += n
	return n, nil
}

func (f *discoverFilter) Close() error {
	if c, ok := f.src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// feed sorts bytes from in: held while a top-level object is open, passed
// otherwise.
func (f *discoverFilter) feed(b []byte) {
	for len(b) > 0 {
		if f.scan.broken {
			// Not JSON: the SDK ends the session on it, so no longer frame
			// anything (holding on would leave the client waiting instead).
			f.flushHeld()
			f.pass = append(f.pass, b...)
			return
		}
		if !f.holding {
			if f.scan.top() && b[0] == '{' {
				f.holding = true
				continue
			}
			// Pass up to the next possible top-level object.
			n := f.scan.until(b, true)
			f.pass = append(f.pass, b[:n]...)
			b = b[n:]
			continue
		}
		n := f.scan.until(b, false)
		f.held = append(f.held, b[:n]...)
		b = b[n:]
		switch {
		case f.scan.broken:
			f.flushHeld()
		case f.scan.top():
			f.endHeld()
		case len(f.held) > discoverHoldMax:
			f.flushHeld()
		}
	}
}

// endHeld decides a whole top-level object: answered here or passed on.
func (f *discoverFilter) endHeld() {
	defer func() { f.held, f.holding = f.held[:0], false }()
	id, requested, ok := oldDiscover(f.held)
	if !ok {
		f.pass = append(f.pass, f.held...)
		return
	}
	line, err := jsonrpc.EncodeMessage(&jsonrpc.Response{ID: id, Error: DiscoverRefusal(requested, "")})
	if err == nil {
		_, err = f.out.Write(append(line, '\n'))
	}
	if err != nil && f.err == nil {
		// out is gone: end the session as a failed SDK write would.
		f.err = fmt.Errorf("answering %s: %w", methodDiscover, err)
	}
}

// flushHeld passes what is held on unchanged and stops holding: an object
// too long to be a discover, or one cut short by the end of in.
func (f *discoverFilter) flushHeld() {
	if f.holding {
		f.pass = append(f.pass, f.held...)
		f.held, f.holding = f.held[:0], false
	}
}

// oldDiscover reports whether msg is a server/discover request that the SDK
// answers "method not found": a call (it has an id) whose params._meta names
// no revision, a revision that is not a string, or one before
// StatelessVersion. It is read by the SDK's own decoder, so what counts as a
// request, and its id, are what the SDK would see. Newer revisions are the
// SDK's to answer (a result, or -32022 for one it does not serve).
func oldDiscover(msg []byte) (jsonrpc.ID, string, bool) {
	m, err := jsonrpc.DecodeMessage(msg)
	req, ok := m.(*jsonrpc.Request)
	if err != nil || !ok || !req.IsCall() || req.Method != methodDiscover {
		return jsonrpc.ID{}, "", false
	}
	// Keys are matched exactly, as the SDK matches them.
	var params map[string]json.RawMessage
	var meta map[string]any
	_ = json.Unmarshal(req.Params, &params)
	_ = json.Unmarshal(params["_meta"], &meta)
	v, _ := meta[mcp.MetaKeyProtocolVersion].(string)
	if v >= StatelessVersion {
		return jsonrpc.ID{}, "", false
	}
	return req.ID, v, true
}

// jsonScan follows JSON nesting across reads, enough to tell where each
// top-level object begins and ends (strings and escapes included). Anything
// else at the top level is no message and ends the SDK's session.
type jsonScan struct {
	depth    int
	inString bool
	escaped  bool
	// broken is set on a control character inside a string (a message cut
	// off by its newline): JSON forbids it, and the scan has lost its place.
	broken bool
}

// top reports whether the scan stands outside every value it tracks.
func (s *jsonScan) top() bool { return s.depth == 0 && !s.inString }

// until scans b and returns how many bytes it took: all of b, or up to a '{'
// that opens a top-level object (untilObject), or through the byte that
// closes the open top-level value (!untilObject).
func (s *jsonScan) until(b []byte, untilObject bool) int {
	for i, c := range b {
		if untilObject && s.top() && c == '{' {
			return i
		}
		wasTop := s.top()
		s.step(c)
		if s.broken || !untilObject && !wasTop && s.top() {
			return i + 1
		}
	}
	return len(b)
}

func (s *jsonScan) step(c byte) {
	switch {
	case s.escaped:
		s.escaped = false
	case s.inString:
		if c < 0x20 {
			s.broken = true
		}
		switch c {
		case '\\':
			s.escaped = true
		case '"':
			s.inString = false
		}
	default:
		switch c {
		case '"':
			s.inString = true
		case '{', '[':
			s.depth++
		case '}', ']':
			s.depth--
		}
	}
}
