package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/jarvis-homelab/jarvis/safety"
	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve/pveid"
)

// Config is every setting Jarvis reads, all from the environment. .env.example lists
// each one with its default and meaning; keep the two in step.
type Config struct {
	Port           int      `env:"PORT" envDefault:"4000"`
	ListenAddr     string   `env:"JARVIS_LISTEN" envDefault:"127.0.0.1"`
	DBPath         string   `env:"DB_PATH" envDefault:"jarvis.db"`
	LogLevel       string   `env:"LOG_LEVEL" envDefault:"info"`
	TrustedProxies []string `env:"JARVIS_TRUSTED_PROXIES" envSeparator:","`
	PublicURL      string   `env:"JARVIS_PUBLIC_URL"`

	// PostgreSQL instead of the SQLite file at DB_PATH, this replica's audit
	// anchor file and its name among replicas (config_database.go).
	DatabaseURL string `env:"JARVIS_DATABASE_URL"`
	AuditAnchor string `env:"JARVIS_AUDIT_ANCHOR"`
	ReplicaID   string `env:"JARVIS_REPLICA_ID"`
	// How long a replica holds the watcher's and the notifier's lease
	// without renewing it (replicas.go); PostgreSQL only.
	LeaseTTL time.Duration `env:"JARVIS_LEASE_TTL" envDefault:"10s"`

	JWTSecret     string        `env:"JWT_SECRET"`
	JWTSecretFile string        `env:"JWT_SECRET_FILE"`
	Password      string        `env:"JARVIS_PASSWORD"`
	PasswordFile  string        `env:"JARVIS_PASSWORD_FILE"`
	PVETimeout    time.Duration `env:"PVE_TIMEOUT" envDefault:"15s"`
	PVEDeadline   time.Duration `env:"PVE_DEADLINE" envDefault:"30s"`
	ReadCache     time.Duration `env:"JARVIS_READ_CACHE" envDefault:"1s"`

	// The clusters (config_clusters.go): JARVIS_CLUSTERS names several, each
	// with its own settings; unset, one cluster named ClusterName is read from
	// the unprefixed variables. What reaches a cluster and what of it is
	// protected is per cluster (ClusterEnv); everything below is Jarvis's own.
	ClusterList string `env:"JARVIS_CLUSTERS"`
	ClusterName string `env:"JARVIS_CLUSTER_NAME" envDefault:"pve"`

	ReadOnly         bool          `env:"JARVIS_READ_ONLY" envDefault:"false"`
	StdioMaxTier     string        `env:"JARVIS_STDIO_MAX_TIER" envDefault:"red"`
	Toolsets         string        `env:"JARVIS_TOOLSETS"`
	ApprovalTTL      time.Duration `env:"JARVIS_APPROVAL_TTL" envDefault:"10m"`
	ApprovalWait     time.Duration `env:"JARVIS_APPROVAL_WAIT" envDefault:"20s"`
	ExecTimeout      time.Duration `env:"JARVIS_EXEC_TIMEOUT" envDefault:"5m"`
	ElicitAgents     bool          `env:"JARVIS_ELICITATION_FOR_AGENTS" envDefault:"false"`
	RateYellowPerMin float64       `env:"JARVIS_RATE_YELLOW_PER_MIN" envDefault:"30"`
	RateRedPerMin    float64       `env:"JARVIS_RATE_RED_PER_MIN" envDefault:"10"`
	SessionIdle      time.Duration `env:"JARVIS_MCP_SESSION_IDLE" envDefault:"5m"`
	MaxSessions      int           `env:"JARVIS_MCP_MAX_SESSIONS" envDefault:"32"`
	MetricsAddr      string        `env:"JARVIS_METRICS_ADDR"`

	SSHTimeout   time.Duration `env:"SSH_TIMEOUT" envDefault:"30s"`
	SSHOutputCap int           `env:"SSH_OUTPUT_CAP" envDefault:"1048576"`
	// How often the watcher reads the guests (and at most how often nodes
	// and storage): a crash is noticed within this.
	WatchInterval time.Duration `env:"JARVIS_WATCH_INTERVAL" envDefault:"15s"`

	// JARVIS_NOTIFY_*: the channels notifications go out on (notify.go).
	NotifyEnv

	// Parsed forms, filled by Load.
	clusters  []*ClusterEnv // the default first
	stdioTier safety.Tier
	toolsets  []string
	proxies   []*net.IPNet
	demoDir   string // the demo state folder in use, if any (demo.go)
}

type nodeAddr struct{ Name, Host string }

// Placeholder values from .env.example that must never run outside the demo.
var placeholderSecrets = map[string]bool{
	"": true, "change-me": true, "changeme": true, "secret": true, "jarvis": true, "password": true,
	"change-me-to-a-long-random-string": true,
}

// LoadConfig reads the environment. Every problem is listed in one error, so a user
// fixes them all in one go.
func LoadConfig(demo bool) (*Config, error) {
	var cfg Config
	var problems []string
	// bad holds the variables whose value could not be read at all: their range
	// checks below would only repeat the problem with a zero value ("0s").
	bad := map[string]bool{}
	if err := env.Parse(&cfg); err != nil {
		bad, problems = explainAll(err, envVarOf)
	}
	readSecretFile := func(value *string, file, name string) {
		if file == "" {
			return
		}
		b, err := os.ReadFile(file)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s_FILE: cannot read %s: %v", name, file, err))
			return
		}
		*value = strings.TrimRight(string(b), "\r\n")
	}
	readSecretFile(&cfg.JWTSecret, cfg.JWTSecretFile, "JWT_SECRET")
	readSecretFile(&cfg.Password, cfg.PasswordFile, "JARVIS_PASSWORD")
	problems = append(problems, cfg.loadClusters(demo)...)

	if !bad["PORT"] && (cfg.Port < 1 || cfg.Port > 65535) {
		problems = append(problems, fmt.Sprintf("PORT=%d: must be between 1 and 65535", cfg.Port))
	}
	if net.ParseIP(cfg.ListenAddr) == nil {
		problems = append(problems, fmt.Sprintf("JARVIS_LISTEN=%q: must be an IP address such as 127.0.0.1 or 0.0.0.0", cfg.ListenAddr))
	}
	for _, p := range trimAll(cfg.TrustedProxies) {
		if !strings.Contains(p, "/") {
			if ip := net.ParseIP(p); ip != nil && ip.To4() != nil {
				p += "/32"
			} else {
				p += "/128"
			}
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			problems = append(problems, fmt.Sprintf("JARVIS_TRUSTED_PROXIES: %q is not an address or CIDR range", p))
			continue
		}
		cfg.proxies = append(cfg.proxies, n)
	}
	if cfg.PublicURL != "" {
		if u, err := url.Parse(cfg.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, fmt.Sprintf("JARVIS_PUBLIC_URL=%q: the console's address as people open it, e.g. https://jarvis.home.example", cfg.PublicURL))
		}
	}
	problems = append(problems, cfg.loadDatabase()...)
	switch strings.ToLower(cfg.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		problems = append(problems, fmt.Sprintf("LOG_LEVEL=%q: use debug, info, warn or error", cfg.LogLevel))
	}
	tier, err := safety.ParseTier(cfg.StdioMaxTier)
	if err != nil || tier == safety.Black {
		problems = append(problems, fmt.Sprintf("JARVIS_STDIO_MAX_TIER=%q: use green, yellow or red", cfg.StdioMaxTier))
	}
	cfg.stdioTier = tier
	toolsets := cfg.Toolsets
	if demo && strings.TrimSpace(toolsets) == "" {
		// The demo shows everything Jarvis can do; a real install offers
		// the lean defaults unless told otherwise.
		toolsets = tools.AllToolsets
	}
	if cfg.toolsets, err = tools.ParseToolsets(toolsets); err != nil {
		problems = append(problems, fmt.Sprintf("JARVIS_TOOLSETS=%q: %v", cfg.Toolsets, err))
	}
	inRange := func(name string, d, low, high time.Duration, note string) {
		if !bad[name] && (d < low || d > high) {
			problems = append(problems, fmt.Sprintf("%s=%s: must be between %s and %s%s", name, shown(name, d), short(low), short(high), note))
		}
	}
	inRange("JARVIS_APPROVAL_TTL", cfg.ApprovalTTL, time.Minute, 24*time.Hour, "")
	inRange("JARVIS_APPROVAL_WAIT", cfg.ApprovalWait, 0, 10*time.Minute,
		"; stay below your MCP client's request timeout (60s for most), so the caller hears the approval id")
	inRange("JARVIS_EXEC_TIMEOUT", cfg.ExecTimeout, time.Second, 2*time.Hour, "")
	inRange("PVE_TIMEOUT", cfg.PVETimeout, time.Second, 5*time.Minute, "")
	// One Proxmox call, failover included, must end well before a client gives
	// up on the request (60 s for common MCP clients) and within the call's own
	// execution deadline.
	inRange("PVE_DEADLINE", cfg.PVEDeadline, time.Second, 5*time.Minute, " (default 30s)")
	if !bad["PVE_DEADLINE"] && !bad["JARVIS_EXEC_TIMEOUT"] && cfg.ExecTimeout > 0 && cfg.PVEDeadline >= cfg.ExecTimeout &&
		cfg.PVEDeadline >= time.Second && cfg.PVEDeadline <= 5*time.Minute {
		problems = append(problems, fmt.Sprintf("PVE_DEADLINE=%s: must be below JARVIS_EXEC_TIMEOUT=%s, which bounds a whole tool call",
			shown("PVE_DEADLINE", cfg.PVEDeadline), shown("JARVIS_EXEC_TIMEOUT", cfg.ExecTimeout)))
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"JARVIS_RATE_YELLOW_PER_MIN", cfg.RateYellowPerMin}, {"JARVIS_RATE_RED_PER_MIN", cfg.RateRedPerMin}} {
		if !bad[r.name] && r.v <= 0 {
			problems = append(problems, fmt.Sprintf("%s=%s: must be above 0 (calls per minute)", r.name, shown(r.name, r.v)))
		}
	}
	inRange("JARVIS_LEASE_TTL", cfg.LeaseTTL, time.Second, 2*time.Minute,
		" (how soon after a replica dies another runs its watcher and notifier and closes its calls)")
	inRange("JARVIS_WATCH_INTERVAL", cfg.WatchInterval, time.Second, 10*time.Minute,
		" (how soon a crashed guest is noticed; every poll reads the cluster)")
	inRange("SSH_TIMEOUT", cfg.SSHTimeout, time.Second, 300*time.Second, "")
	inRange("JARVIS_READ_CACHE", cfg.ReadCache, 0, 10*time.Second,
		" (0 turns the cache off; reads older than that are too stale to act on)")
	inRange("JARVIS_MCP_SESSION_IDLE", cfg.SessionIdle, 10*time.Second, 24*time.Hour, "")
	if !bad["JARVIS_MCP_MAX_SESSIONS"] && (cfg.MaxSessions < 1 || cfg.MaxSessions > 1024) {
		problems = append(problems, fmt.Sprintf("JARVIS_MCP_MAX_SESSIONS=%d: must be between 1 and 1024 (open MCP sessions per caller)", cfg.MaxSessions))
	}
	if cfg.MetricsAddr != "" {
		// It serves /metrics without a login, so the address is named, never
		// implied: ":9464" would listen on every interface.
		if host, _, err := net.SplitHostPort(cfg.MetricsAddr); err != nil || net.ParseIP(host) == nil {
			problems = append(problems, fmt.Sprintf("JARVIS_METRICS_ADDR=%q: must be IP:port, such as 127.0.0.1:9464 (it serves /metrics without a login: keep it on loopback or a trusted network)", cfg.MetricsAddr))
		}
	}
	if !bad["SSH_OUTPUT_CAP"] && (cfg.SSHOutputCap < 1024 || cfg.SSHOutputCap > 64<<20) {
		problems = append(problems, fmt.Sprintf("SSH_OUTPUT_CAP=%d: must be between 1024 and 67108864 bytes", cfg.SSHOutputCap))
	}
	problems = append(problems, cfg.notifyProblems(bad)...)

	if !demo {
		if placeholderSecrets[strings.ToLower(cfg.JWTSecret)] || len(cfg.JWTSecret) < 32 {
			problems = append(problems, "JWT_SECRET: set a random secret of at least 32 characters (e.g. `openssl rand -hex 32`); it signs logins and keys the audit log")
		}
		if placeholderSecrets[strings.ToLower(cfg.Password)] || len(cfg.Password) < 12 {
			problems = append(problems, "JARVIS_PASSWORD: set the operator password, at least 12 characters, not a placeholder")
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("configuration is not usable:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return &cfg, nil
}

// parseNodes reads "name=host[:port],…".
func parseNodes(s, varName string, defaultPort int) ([]nodeAddr, []string) {
	var out []nodeAddr
	var problems []string
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, host, ok := strings.Cut(part, "=")
		if !ok || host == "" {
			problems = append(problems, fmt.Sprintf("%s: %q must be name=host[:port]", varName, part))
			continue
		}
		if !pveid.ValidNodeName(name) {
			problems = append(problems, fmt.Sprintf("%s: node name %q may use letters, digits and '-' only (1-63)", varName, name))
			continue
		}
		if seen[name] {
			problems = append(problems, fmt.Sprintf("%s: node %q is listed twice", varName, name))
			continue
		}
		seen[name] = true
		if _, _, err := net.SplitHostPort(host); err != nil {
			host = net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(defaultPort))
		}
		out = append(out, nodeAddr{Name: name, Host: host})
	}
	return out, problems
}

func trimAll(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// consoleURL is the console's address for people: JARVIS_PUBLIC_URL, or the
// address Jarvis listens on (loopback when it listens on every interface).
func (cfg *Config) consoleURL() string {
	if cfg.PublicURL != "" {
		return strings.TrimSuffix(cfg.PublicURL, "/") + "/"
	}
	host := cfg.ListenAddr
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(cfg.Port)) + "/"
}
