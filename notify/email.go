package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTP transport security (SMTPConfig.TLS).
const (
	// SMTPStartTLS connects in plain text and requires STARTTLS before
	// anything else is said (the submission port, 587).
	SMTPStartTLS = "starttls"
	// SMTPImplicitTLS speaks TLS from the first byte (port 465).
	SMTPImplicitTLS = "tls"
	// SMTPPlain sends in clear text: only for a relay on loopback or a LAN
	// you trust, and never with a login.
	SMTPPlain = "none"
)

// SMTPConfig says where and how e-mail goes out.
type SMTPConfig struct {
	Host     string
	Port     int // 0: 465 for SMTPImplicitTLS, else 587
	Username string
	Password string
	From     string   // an address, optionally with a name: Jarvis <jarvis@example.com>
	To       []string // one or more addresses
	TLS      string   // SMTPStartTLS (empty means this), SMTPImplicitTLS or SMTPPlain
	// TLSConfig replaces the system's trust (tests, a private CA); nil uses
	// the system roots and checks the certificate names Host.
	TLSConfig *tls.Config
}

// Email sends each message as a plain-text mail: the title is the subject,
// the message and the console link the body.
type Email struct {
	cfg SMTPConfig
}

// NewEmail checks cfg. A login is refused without TLS: it would cross the
// network in clear text.
func NewEmail(cfg SMTPConfig) (*Email, error) {
	if cfg.TLS == "" {
		cfg.TLS = SMTPStartTLS
	}
	var errs []error
	if cfg.Host == "" || strings.ContainsAny(cfg.Host, " /:@") {
		errs = append(errs, settingError("host", "must be a host name or address alone, without port or scheme, e.g. smtp.example.com"))
	}
	switch cfg.TLS {
	case SMTPStartTLS, SMTPPlain:
		if cfg.Port == 0 {
			cfg.Port = 587
		}
	case SMTPImplicitTLS:
		if cfg.Port == 0 {
			cfg.Port = 465
		}
	default:
		errs = append(errs, settingError("tls", "use starttls (port 587), tls (port 465) or none (a relay on loopback or your LAN)"))
	}
	if cfg.Port < 0 || cfg.Port > 65535 { // 0 only when TLS is wrong: said above
		errs = append(errs, settingError("port", "must be between 1 and 65535"))
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		errs = append(errs, settingError("from", "must be an e-mail address, e.g. jarvis@example.com or Jarvis <jarvis@example.com>"))
	}
	if len(cfg.To) == 0 {
		errs = append(errs, settingError("to", "name at least one recipient"))
	}
	for _, to := range cfg.To {
		if _, err := mail.ParseAddress(to); err != nil {
			errs = append(errs, settingError("to", fmt.Sprintf("%q is not an e-mail address", to)))
		}
	}
	if cfg.TLS == SMTPPlain && (cfg.Username != "" || cfg.Password != "") {
		errs = append(errs, settingError("login", "a login needs starttls or tls: without TLS the password would cross the network in clear text"))
	} else if (cfg.Username == "") != (cfg.Password == "") {
		errs = append(errs, settingError("login", "set both the username and the password, or neither"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Email{cfg: cfg}, nil
}

// Name is "email".
func (*Email) Name() string { return "email" }

// Send connects, sends m and disconnects: notifications are rare, and a
// connection held open would only time out.
func (e *Email) Send(ctx context.Context, m Message) error {
	msg := gomail.NewMsg()
	if err := msg.From(e.cfg.From); err != nil {
		return &DeliveryError{Err: err, Permanent: true, Fix: "check JARVIS_NOTIFY_SMTP_FROM"}
	}
	if err := msg.To(e.cfg.To...); err != nil {
		return &DeliveryError{Err: err, Permanent: true, Fix: "check JARVIS_NOTIFY_SMTP_TO"}
	}
	msg.Subject("[Jarvis] " + m.Title)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetUserAgent(userAgent)
	if m.Priority >= PriorityHigh {
		msg.SetImportance(gomail.ImportanceHigh)
	}
	body := m.Body
	if m.URL != "" {
		body += "\n\n" + m.URL
	}
	msg.SetBodyString(gomail.TypeTextPlain, body+"\n\n-- \nJarvis ("+m.Kind+")\n")

	client, err := gomail.NewClient(e.cfg.Host, e.options(ctx)...)
	if err != nil {
		return &DeliveryError{Err: scrubbed(err, e.secrets()...), Permanent: true}
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return e.classify(err)
	}
	return nil
}

func (e *Email) options(ctx context.Context) []gomail.Option {
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	opts := []gomail.Option{gomail.WithPort(e.cfg.Port), gomail.WithTimeout(timeout)}
	switch e.cfg.TLS {
	case SMTPImplicitTLS:
		opts = append(opts, gomail.WithSSL())
	case SMTPPlain:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if e.cfg.TLSConfig != nil {
		tc := e.cfg.TLSConfig.Clone()
		if tc.ServerName == "" {
			tc.ServerName = e.cfg.Host
		}
		opts = append(opts, gomail.WithTLSConfig(tc))
	}
	if e.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(e.cfg.Username), gomail.WithPassword(e.cfg.Password))
	}
	return opts
}

// secrets are the forms the password takes on the wire (PLAIN and LOGIN
// send it base64-encoded, with or without padding) or in a quoted error,
// none of which an error may repeat; longest first, so no part of one is
// left behind.
func (e *Email) secrets() []string {
	pw := e.cfg.Password
	if pw == "" {
		return nil
	}
	plain := []byte("\x00" + e.cfg.Username + "\x00" + pw)
	out := []string{pw, base64.StdEncoding.EncodeToString(plain), base64.RawStdEncoding.EncodeToString(plain),
		base64.StdEncoding.EncodeToString([]byte(pw)), base64.RawStdEncoding.EncodeToString([]byte(pw))}
	if q := strconv.Quote(pw); q[1:len(q)-1] != pw {
		out = append(out, q[1:len(q)-1])
	}
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// classify says whether another attempt can help and what to change. SMTP
// replies 4xx are temporary, 5xx permanent; a refused login, a server
// without the TLS asked for, or an untrusted certificate stay so.
func (e *Email) classify(err error) error {
	addr := net.JoinHostPort(e.cfg.Host, strconv.Itoa(e.cfg.Port))
	clean := errors.New("email at " + addr + ": " + scrubbed(err, e.secrets()...).Error())
	text := err.Error()
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var reply *textproto.Error
	var send *gomail.SendError
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &verify):
		return &DeliveryError{Err: clean, Permanent: true,
			Fix: e.cfg.Host + "'s certificate is not trusted by this system: set JARVIS_NOTIFY_SMTP_HOST to the name on its certificate"}
	case errors.As(err, &record):
		return &DeliveryError{Err: clean, Permanent: true,
			Fix: addr + " does not speak TLS from the start: port 587 takes JARVIS_NOTIFY_SMTP_TLS=starttls, port 465 tls"}
	case strings.Contains(text, "does not support STARTTLS"):
		return &DeliveryError{Err: clean, Permanent: true,
			Fix: addr + " offers no STARTTLS: use its TLS port (JARVIS_NOTIFY_SMTP_TLS=tls, port 465), or none only for a relay on loopback or your LAN"}
	case strings.Contains(text, "does not support SMTP AUTH"):
		return &DeliveryError{Err: clean, Permanent: true,
			Fix: addr + " offers no login: leave JARVIS_NOTIFY_SMTP_USERNAME and _PASSWORD empty, or use your provider's submission port"}
	case strings.Contains(text, "SMTP AUTH failed"):
		return &DeliveryError{Err: clean, Permanent: true,
			Fix: "the server refused the login: check JARVIS_NOTIFY_SMTP_USERNAME and JARVIS_NOTIFY_SMTP_PASSWORD (many providers want an app password)"}
	case errors.As(err, &send):
		if send.IsTemp() {
			return &DeliveryError{Err: clean, Fix: "the server is busy; Jarvis tries again"}
		}
		return &DeliveryError{Err: clean, Permanent: true,
			Fix: "the server refused the mail: check that JARVIS_NOTIFY_SMTP_FROM may send through it and JARVIS_NOTIFY_SMTP_TO is right"}
	case errors.As(err, &reply):
		if reply.Code >= 400 && reply.Code < 500 {
			return &DeliveryError{Err: clean, Fix: "the server is busy; Jarvis tries again"}
		}
		return &DeliveryError{Err: clean, Permanent: true, Fix: "the server refused: see its answer"}
	}
	return &DeliveryError{Err: clean, Fix: "check that " + addr + " can be reached from the Jarvis host"}
}
