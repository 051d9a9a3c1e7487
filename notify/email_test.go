package notify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpSink is an SMTP server on 127.0.0.1 that keeps every mail.
type smtpSink struct {
	addr *net.TCPAddr
	mu   sync.Mutex
	got  []sunkMail
}

type sunkMail struct {
	from string
	to   []string
	data []byte
}

type sinkSession struct {
	sink *smtpSink
	mail sunkMail
}

func (s *sinkSession) Reset()        { s.mail = sunkMail{} }
func (s *sinkSession) Logout() error { return nil }
func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	s.mail.from = from
	return nil
}

func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mail.to = append(s.mail.to, to)
	return nil
}

func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mail.data = b
	s.sink.mu.Lock()
	s.sink.got = append(s.sink.got, s.mail)
	s.sink.mu.Unlock()
	return nil
}

// newSMTPSink starts the server: plain (with STARTTLS offered when
// startTLS is set) or TLS from the first byte when implicit is set.
func newSMTPSink(t *testing.T, cert *tls.Certificate, startTLS, implicit bool) *smtpSink {
	t.Helper()
	sink := &smtpSink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{sink: sink}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	var ln net.Listener
	var err error
	if implicit {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*cert}})
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if startTLS {
			srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	sink.addr = ln.Addr().(*net.TCPAddr)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sink
}

func (s *smtpSink) mails() []sunkMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunkMail(nil), s.got...)
}

// selfSigned is a certificate for 127.0.0.1 and the pool that trusts it.
func selfSigned(t *testing.T) (*tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jarvis test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// readMail parses a received mail: its decoded subject and text body.
func readMail(t *testing.T, data []byte) (*mail.Message, string, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	var body io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return msg, subject, strings.ReplaceAll(string(b), "\r\n", "\n")
}

func TestEmailIsDeliveredOverEachTransport(t *testing.T) {
	cert, pool := selfSigned(t)
	for _, tc := range []struct {
		mode               string
		startTLS, implicit bool
	}{
		{SMTPPlain, false, false},
		{SMTPStartTLS, true, false},
		{SMTPImplicitTLS, false, true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			sink := newSMTPSink(t, cert, tc.startTLS, tc.implicit)
			ch, err := NewEmail(SMTPConfig{Host: "127.0.0.1", Port: sink.addr.Port, From: "Jarvis <jarvis@home.example>",
				To: []string{"ops@home.example", "me@home.example"}, TLS: tc.mode, TLSConfig: &tls.Config{RootCAs: pool}})
			if err != nil {
				t.Fatal(err)
			}
			m := sampleMessage()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := ch.Send(ctx, m); err != nil {
				t.Fatal(err)
			}
			got := sink.mails()
			if len(got) != 1 {
				t.Fatalf("%d mails", len(got))
			}
			if got[0].from != "jarvis@home.example" || strings.Join(got[0].to, ",") != "ops@home.example,me@home.example" {
				t.Errorf("envelope from %q to %q", got[0].from, got[0].to)
			}
			msg, subject, body := readMail(t, got[0].data)
			if subject != "[Jarvis] "+m.Title {
				t.Errorf("subject %q", subject)
			}
			if !strings.Contains(body, m.Body) || !strings.Contains(body, m.URL) {
				t.Errorf("body:\n%s", body)
			}
			if ct := msg.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q", ct)
			}
			if imp := msg.Header.Get("Importance"); !strings.EqualFold(imp, "high") {
				t.Errorf("Importance %q for a high-priority message", imp)
			}
		})
	}
}

// Mandatory STARTTLS means no mail to a server that does not offer it, and
// the error says what to change; so does a certificate this system does not trust.
func TestEmailRefusesWeakerTransport(t *testing.T) {
	cert, _ := selfSigned(t)
	plain := newSMTPSink(t, cert, false, false)
	ch, err := NewEmail(SMTPConfig{Host: "127.0.0.1", Port: plain.addr.Port, From: "jarvis@home.example", To: []string{"me@home.example"}})
	if err != nil {
		t.Fatal(err)
	}
	err = ch.Send(context.Background(), sampleMessage())
	if !IsPermanent(err) || !strings.Contains(err.Error(), "STARTTLS") || len(plain.mails()) != 0 {
		t.Errorf("no STARTTLS: %v (%d mails)", err, len(plain.mails()))
	}

	untrusted := newSMTPSink(t, cert, true, false)
	ch, _ = NewEmail(SMTPConfig{Host: "127.0.0.1", Port: untrusted.addr.Port, From: "jarvis@home.example", To: []string{"me@home.example"}})
	err = ch.Send(context.Background(), sampleMessage())
	if !IsPermanent(err) || !strings.Contains(err.Error(), "not trusted") || len(untrusted.mails()) != 0 {
		t.Errorf("untrusted certificate: %v", err)
	}
}

func TestEmailRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		cfg     SMTPConfig
		setting string
	}{
		{SMTPConfig{Host: "smtp.example.com:587", From: "a@b.c", To: []string{"d@e.f"}}, "host"},
		{SMTPConfig{Host: "smtp.example.com", From: "not an address", To: []string{"d@e.f"}}, "from"},
		{SMTPConfig{Host: "smtp.example.com", From: "a@b.c"}, "to"},
		{SMTPConfig{Host: "smtp.example.com", From: "a@b.c", To: []string{"d@e.f", "nobody"}}, "to"},
		{SMTPConfig{Host: "smtp.example.com", From: "a@b.c", To: []string{"d@e.f"}, TLS: "ssl"}, "tls"},
		{SMTPConfig{Host: "smtp.example.com", From: "a@b.c", To: []string{"d@e.f"}, Port: 70000}, "port"},
		{SMTPConfig{Host: "smtp.example.com", From: "a@b.c", To: []string{"d@e.f"}, TLS: SMTPPlain, Username: "u", Password: "p"}, "login"},
		{SMTPConfig{Host: "smtp.example.com", From: "a@b.c", To: []string{"d@e.f"}, Username: "u"}, "login"},
	} {
		_, err := NewEmail(tc.cfg)
		se := SettingErrors(err)
		if len(se) != 1 || se[0].Setting != tc.setting {
			t.Errorf("%+v: %v, want one %s problem", tc.cfg, err, tc.setting)
		}
	}
	e, err := NewEmail(SMTPConfig{Host: "smtp.example.com", From: "a@b.c", To: []string{"d@e.f"}, TLS: SMTPImplicitTLS})
	if err != nil || e.cfg.Port != 465 {
		t.Errorf("implicit TLS port: %v %+v", err, e)
	}
	e, _ = NewEmail(SMTPConfig{Host: "smtp.example.com", From: "a@b.c", To: []string{"d@e.f"}})
	if e.cfg.Port != 587 || e.cfg.TLS != SMTPStartTLS {
		t.Errorf("defaults: %+v", e.cfg)
	}
}

// A refused login names the server, and no form of the password: not as it
// is, nor base64-encoded as PLAIN and LOGIN send it, even when the server
// quotes what it got.
func TestEmailErrorsNeverCarryThePassword(t *testing.T) {
	const password = `pa"ss\wörd-0123456789`
	cert, pool := selfSigned(t)
	port := echoingSMTP(t, cert)
	ch, err := NewEmail(SMTPConfig{Host: "127.0.0.1", Port: port, From: "jarvis@home.example", To: []string{"me@home.example"},
		TLS: SMTPImplicitTLS, Username: "jarvis", Password: password, TLSConfig: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	err = ch.Send(context.Background(), sampleMessage())
	if !IsPermanent(err) || !strings.Contains(err.Error(), "refused the login") {
		t.Fatalf("err = %v", err)
	}
	if want := "email at 127.0.0.1:" + strconv.Itoa(port) + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error does not start with %q: %v", want, err)
	}
	if !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("the echoed credentials are not marked as hidden: %v", err)
	}
	b64 := base64.StdEncoding.EncodeToString
	for _, secret := range []string{password, b64([]byte("\x00jarvis\x00" + password)), b64([]byte(password)), "ss\\w", "0123456789"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error carries %q: %v", secret, err)
		}
	}
}
