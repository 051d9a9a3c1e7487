package pvesim

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Fault is a transport failure the simulator can inject: what the client sees
// when the network or a node misbehaves, as opposed to an answer from PVE.
type Fault int

const (
	// FaultReset handles the request (the action happens), then drops the
	// connection without an answer, with a TCP reset where possible.
	FaultReset Fault = iota + 1
	// FaultTruncate handles the request, then sends the headers and half of the
	// body and closes the connection.
	FaultTruncate
	// FaultHangAfter handles the request and then never answers, until the
	// client gives up (or ClearFaults).
	FaultHangAfter
	// FaultHang never handles the request and never answers (a hung node),
	// until the client gives up (or ClearFaults).
	FaultHang
)

func (f Fault) String() string {
	switch f {
	case FaultReset:
		return "reset"
	case FaultTruncate:
		return "truncate"
	case FaultHangAfter:
		return "hang-after"
	case FaultHang:
		return "hang"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

type injectedFault struct {
	method string // "" matches every method
	prefix string
	fault  Fault
	left   int // requests still to spoil; < 0 means until ClearFaults
}

// InjectFault makes the next times requests with this method ("" for any) whose
// API path starts with pathPrefix fail with f; times <= 0 means every such
// request until ClearFaults. Faults are checked in the order injected.
func (s *Sim) InjectFault(method, pathPrefix string, f Fault, times int) {
	if times <= 0 {
		times = -1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.release == nil {
		s.release = make(chan struct{})
	}
	s.faults = append(s.faults, injectedFault{method: method, prefix: pathPrefix, fault: f, left: times})
}

// ClearFaults removes every injected fault and lets hanging requests go.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
	if s.release != nil {
		close(s.release)
		s.release = nil
	}
}

// takeFault returns the fault for this request, if any, and the channel that
// releases hanging requests.
func (s *Sim) takeFault(r *http.Request) (Fault, <-chan struct{}) {
	path := strings.TrimPrefix(r.URL.Path, apiPrefix)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.faults {
		f := &s.faults[i]
		if (f.method != "" && f.method != r.Method) || !strings.HasPrefix(path, f.prefix) {
			continue
		}
		if f.left > 0 {
			f.left--
			if f.left == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return f.fault, s.release
	}
	return 0, nil
}

// hang holds a request until the client goes away or the faults are cleared.
func hang(r *http.Request, release <-chan struct{}) {
	select {
	case <-r.Context().Done():
	case <-release:
	case <-time.After(5 * time.Minute):
	}
}

// spoil answers a handled request with a transport fault instead of res.
func spoil(w http.ResponseWriter, r *http.Request, f Fault, res response, release <-chan struct{}) {
	if f == FaultHangAfter {
		hang(r, release)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("pvesim: transport faults need an HTTP/1 server")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if f == FaultTruncate {
		var b bytes.Buffer
		fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: %d\r\n\r\n",
			res.status, http.StatusText(res.status), len(res.body))
		b.Write(res.body[:len(res.body)/2])
		_, _ = conn.Write(b.Bytes())
		return
	}
	// A reset rather than an orderly close, as a crashing proxy or a middlebox gives.
	raw := conn
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		raw = nc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
		_ = tcp.Close()
	}
}
