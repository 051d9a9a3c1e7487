package main

// Notifications to an operator away from the desk: the settings and their
// problems, the channels they make, the notifier `jarvis serve` runs, and
// `jarvis notify test`.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jarvis-homelab/jarvis/notify"
)

// NotifyEnv is the notification settings, embedded in Config. Each channel is
// on when its address is set: JARVIS_NOTIFY_NTFY_URL, JARVIS_NOTIFY_WEBHOOK_URL,
// JARVIS_NOTIFY_SMTP_HOST. Secrets may come from files (_FILE), as the other
// secrets do.
type NotifyEnv struct {
	NtfyURL       string `env:"JARVIS_NOTIFY_NTFY_URL"`
	NtfyToken     string `env:"JARVIS_NOTIFY_NTFY_TOKEN"`
	NtfyTokenFile string `env:"JARVIS_NOTIFY_NTFY_TOKEN_FILE"`

	WebhookURL        string `env:"JARVIS_NOTIFY_WEBHOOK_URL"`
	WebhookSecret     string `env:"JARVIS_NOTIFY_WEBHOOK_SECRET"`
	WebhookSecretFile string `env:"JARVIS_NOTIFY_WEBHOOK_SECRET_FILE"`

	SMTPHost         string   `env:"JARVIS_NOTIFY_SMTP_HOST"`
	SMTPPort         int      `env:"JARVIS_NOTIFY_SMTP_PORT"` // 0: 587, or 465 with tls
	SMTPUsername     string   `env:"JARVIS_NOTIFY_SMTP_USERNAME"`
	SMTPPassword     string   `env:"JARVIS_NOTIFY_SMTP_PASSWORD"`
	SMTPPasswordFile string   `env:"JARVIS_NOTIFY_SMTP_PASSWORD_FILE"`
	SMTPFrom         string   `env:"JARVIS_NOTIFY_SMTP_FROM"`
	SMTPTo           []string `env:"JARVIS_NOTIFY_SMTP_TO" envSeparator:","`
	SMTPTLS          string   `env:"JARVIS_NOTIFY_SMTP_TLS" envDefault:"starttls"`

	NotifyRatePerMin float64 `env:"JARVIS_NOTIFY_RATE_PER_MIN" envDefault:"20"`
}

// The variables each channel's settings (notify.SettingError) come from.
var (
	ntfyVars    = map[string]string{"url": "JARVIS_NOTIFY_NTFY_URL", "token": "JARVIS_NOTIFY_NTFY_TOKEN"}
	webhookVars = map[string]string{"url": "JARVIS_NOTIFY_WEBHOOK_URL", "secret": "JARVIS_NOTIFY_WEBHOOK_SECRET"}
	smtpVars    = map[string]string{"host": "JARVIS_NOTIFY_SMTP_HOST", "port": "JARVIS_NOTIFY_SMTP_PORT",
		"tls": "JARVIS_NOTIFY_SMTP_TLS", "from": "JARVIS_NOTIFY_SMTP_FROM", "to": "JARVIS_NOTIFY_SMTP_TO",
		"login": "JARVIS_NOTIFY_SMTP_USERNAME/_PASSWORD"}
)

// notifyProblems reads the secrets given as files into place and names every
// wrong notification variable with what to write instead; LoadConfig adds
// them to its list. bad holds the variables env could not parse at all
// (their range checks would only repeat that). URLs are shown only up to
// their host: an ntfy topic or a webhook path is as good as a password.
func (n *NotifyEnv) notifyProblems(bad map[string]bool) []string {
	var problems []string
	readFile := func(value *string, file, name string) {
		if file == "" {
			return
		}
		b, err := os.ReadFile(file)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s_FILE=%s: %s", name, file, fileProblem(err)))
			return
		}
		*value = strings.TrimRight(string(b), "\r\n")
	}
	readFile(&n.NtfyToken, n.NtfyTokenFile, "JARVIS_NOTIFY_NTFY_TOKEN")
	readFile(&n.WebhookSecret, n.WebhookSecretFile, "JARVIS_NOTIFY_WEBHOOK_SECRET")
	readFile(&n.SMTPPassword, n.SMTPPasswordFile, "JARVIS_NOTIFY_SMTP_PASSWORD")
	n.SMTPTo = trimAll(n.SMTPTo)

	// Each channel's own checks, by the channel's constructor: one source of truth.
	explain := func(err error, vars map[string]string, shownValue func(setting string) string) {
		for _, se := range notify.SettingErrors(err) {
			name := vars[se.Setting]
			if v := shownValue(se.Setting); v != "" {
				name += "=" + v
			}
			problems = append(problems, name+": "+se.Problem)
		}
	}
	switch {
	case n.NtfyURL != "":
		_, err := notify.NewNtfy(n.NtfyURL, n.NtfyToken)
		explain(err, ntfyVars, func(s string) string {
			if s == "url" {
				return shownURL(n.NtfyURL)
			}
			return "" // the token is never echoed
		})
	case n.NtfyToken != "":
		problems = append(problems, "JARVIS_NOTIFY_NTFY_TOKEN is set without JARVIS_NOTIFY_NTFY_URL: set the topic's address, e.g. https://ntfy.sh/jarvis-7f3a9c, or remove the token")
	}

	switch {
	case n.WebhookURL != "" && n.WebhookSecret == "":
		problems = append(problems, fmt.Sprintf("JARVIS_NOTIFY_WEBHOOK_SECRET: required with JARVIS_NOTIFY_WEBHOOK_URL; set a random secret of at least %d characters (openssl rand -hex 32) and give the receiver the same, to check X-Jarvis-Signature", notify.MinWebhookSecret))
	case n.WebhookURL != "" && placeholderSecrets[strings.ToLower(n.WebhookSecret)]:
		problems = append(problems, "JARVIS_NOTIFY_WEBHOOK_SECRET: is a placeholder; set a random secret (openssl rand -hex 32)")
	case n.WebhookURL != "":
		_, err := notify.NewWebhook(n.WebhookURL, n.WebhookSecret)
		explain(err, webhookVars, func(s string) string {
			if s == "url" {
				return shownURL(n.WebhookURL)
			}
			return ""
		})
	case n.WebhookSecret != "":
		problems = append(problems, "JARVIS_NOTIFY_WEBHOOK_SECRET is set without JARVIS_NOTIFY_WEBHOOK_URL: set the receiver's address, or remove the secret")
	}

	tlsMode := strings.ToLower(strings.TrimSpace(n.SMTPTLS))
	switch {
	case n.SMTPHost != "":
		_, err := notify.NewEmail(n.smtpConfig())
		explain(err, smtpVars, func(s string) string {
			switch s {
			case "host":
				return strconv.Quote(n.SMTPHost)
			case "port":
				return shown("JARVIS_NOTIFY_SMTP_PORT", n.SMTPPort)
			case "tls":
				return strconv.Quote(n.SMTPTLS)
			case "from":
				return strconv.Quote(n.SMTPFrom)
			}
			return ""
		})
		if !bad["JARVIS_NOTIFY_SMTP_PORT"] && (tlsMode == notify.SMTPImplicitTLS && n.SMTPPort == 587 ||
			tlsMode == notify.SMTPStartTLS && n.SMTPPort == 465) {
			problems = append(problems, fmt.Sprintf("JARVIS_NOTIFY_SMTP_PORT=%d: does not go with JARVIS_NOTIFY_SMTP_TLS=%s; port 587 takes starttls, port 465 takes tls", n.SMTPPort, tlsMode))
		}
	case n.SMTPFrom != "" || len(n.SMTPTo) > 0 || n.SMTPUsername != "" || n.SMTPPassword != "" || n.SMTPPort != 0:
		problems = append(problems, "JARVIS_NOTIFY_SMTP_HOST: required when other JARVIS_NOTIFY_SMTP_ variables are set; name the mail server, e.g. smtp.example.com")
	}

	if !bad["JARVIS_NOTIFY_RATE_PER_MIN"] && n.NotifyRatePerMin <= 0 {
		problems = append(problems, fmt.Sprintf("JARVIS_NOTIFY_RATE_PER_MIN=%s: must be above 0 (messages per channel per minute; default 20)",
			shown("JARVIS_NOTIFY_RATE_PER_MIN", n.NotifyRatePerMin)))
	}
	return problems
}

// shownURL is a URL as far as it can be shown: scheme and host.
func shownURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "(not a URL)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

func (n *NotifyEnv) smtpConfig() notify.SMTPConfig {
	return notify.SMTPConfig{Host: n.SMTPHost, Port: n.SMTPPort, Username: n.SMTPUsername, Password: n.SMTPPassword,
		From: n.SMTPFrom, To: trimAll(n.SMTPTo), TLS: strings.ToLower(strings.TrimSpace(n.SMTPTLS))}
}

// notifyConfigured reports whether any channel is set up.
func (n *NotifyEnv) notifyConfigured() bool {
	return n.NtfyURL != "" || n.WebhookURL != "" || n.SMTPHost != ""
}

// notifyChannels builds the channels that are set up, in a fixed order
// (ntfy, webhook, email). Call it after notifyProblems found none.
func (n *NotifyEnv) notifyChannels() ([]notify.Channel, error) {
	var out []notify.Channel
	var errs []error
	if n.NtfyURL != "" {
		ch, err := notify.NewNtfy(n.NtfyURL, n.NtfyToken)
		out, errs = appendChannel(out, errs, ch, err, "ntfy")
	}
	if n.WebhookURL != "" {
		ch, err := notify.NewWebhook(n.WebhookURL, n.WebhookSecret)
		out, errs = appendChannel(out, errs, ch, err, "webhook")
	}
	if n.SMTPHost != "" {
		ch, err := notify.NewEmail(n.smtpConfig())
		out, errs = appendChannel(out, errs, ch, err, "email")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func appendChannel[C notify.Channel](out []notify.Channel, errs []error, ch C, err error, name string) ([]notify.Channel, []error) {
	if err != nil {
		return out, append(errs, fmt.Errorf("%s: %w", name, err))
	}
	return append(out, ch), errs
}

// startNotifier follows the feed and notifies the configured channels until
// ctx ends or stop is called. stop ends it, reads the events published up
// to then once more, and waits up to a few seconds each for that read and
// for the channels to send what is queued; call it after the last event that
// should be announced (the end of calls the shutdown cut short) and before
// the store closes. ctx should not end before then: pass one that outlives
// the server's shutdown and let stop end it. Without channels it does
// nothing. Alerts are raised only while the watcher polls: with channels set
// up, keep it polling though nobody is at the console.
func (a *app) startNotifier(ctx context.Context, n *NotifyEnv) (stop func()) {
	if !n.notifyConfigured() {
		a.logger.Debug("notifications off: set JARVIS_NOTIFY_NTFY_URL, JARVIS_NOTIFY_WEBHOOK_URL or JARVIS_NOTIFY_SMTP_HOST to get them")
		return func() {}
	}
	channels, err := n.notifyChannels()
	var nt *notify.Notifier
	if err == nil {
		nt, err = notify.New(notify.Options{Store: a.store, Channels: channels, ConsoleURL: a.cfg.consoleURL(),
			RatePerMin: n.NotifyRatePerMin, Logger: a.logger})
	}
	if err != nil {
		a.logger.Error("notifications off", "err", err)
		return func() {}
	}
	names := make([]string, len(channels))
	for i, ch := range channels {
		names[i] = ch.Name()
	}
	a.logger.Info("notifications on", "channels", strings.Join(names, ","), "per_minute", n.NotifyRatePerMin)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	if a.replica != nil {
		// One replica notifies at a time, or each message would go out once
		// per replica. The cursor is shared (a preference), so the next
		// holder goes on where this one stopped; each tenure has a notifier
		// of its own, as a closed one does not run again.
		opts := notify.Options{Store: a.store, Channels: channels, ConsoleURL: a.cfg.consoleURL(),
			RatePerMin: n.NotifyRatePerMin, Logger: a.logger}
		unused := nt
		go func() {
			defer close(done)
			a.replica.hold(ctx, leaseNotifier, func(ctx context.Context) {
				nt := unused
				unused = nil
				if nt == nil {
					var err error
					if nt, err = notify.New(opts); err != nil {
						a.logger.Error("notifications off", "err", err)
						return
					}
				}
				a.replica.notifying.Add(1) // its subscription is no feed client
				nt.Run(ctx)
				a.replica.notifying.Add(-1)
				nt.Close()
			})
			if unused != nil {
				unused.Close() // never held the lease
			}
		}()
		var once sync.Once
		return func() { once.Do(func() { cancel(); <-done }) }
	}
	go func() {
		defer close(done)
		nt.Run(ctx)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			nt.Close()
		})
	}
}

// runNotifyTest sends one test message to each configured channel, at once
// and once each, and says per channel whether it arrived; it fails if any
// did not, or if none is configured.
func runNotifyTest(ctx context.Context, n *NotifyEnv, consoleURL string, stdout, stderr io.Writer) error {
	if !n.notifyConfigured() {
		fmt.Fprintln(stderr, "No notification channel is configured. Set one or more of:\n"+
			"  JARVIS_NOTIFY_NTFY_URL (and JARVIS_NOTIFY_NTFY_TOKEN if the topic needs a login)\n"+
			"  JARVIS_NOTIFY_WEBHOOK_URL and JARVIS_NOTIFY_WEBHOOK_SECRET\n"+
			"  JARVIS_NOTIFY_SMTP_HOST, JARVIS_NOTIFY_SMTP_FROM and JARVIS_NOTIFY_SMTP_TO (and _USERNAME, _PASSWORD)")
		return errors.New("no notification channel configured")
	}
	channels, err := n.notifyChannels()
	if err != nil {
		return err
	}
	msg := notify.TestMessage(consoleURL, time.Now())
	results := make([]error, len(channels))
	var wg sync.WaitGroup
	for i, ch := range channels {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			results[i] = ch.Send(cctx, msg)
		})
	}
	wg.Wait()
	failed := 0
	for i, ch := range channels {
		if results[i] != nil {
			failed++
			fmt.Fprintf(stdout, "%s: failed: %s\n", ch.Name(), printable(results[i].Error()))
			continue
		}
		fmt.Fprintf(stdout, "%s: sent\n", ch.Name())
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d notification channels failed", failed, len(channels))
	}
	return nil
}
