package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jarvis-homelab/jarvis/tools/pve"
)

// clearEnv unsets every variable Jarvis reads, so the machine's environment
// cannot leak into a test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "PORT", k == "DB_PATH", k == "LOG_LEVEL", k == "JWT_SECRET", k == "JWT_SECRET_FILE",
			strings.HasPrefix(k, "JARVIS_"), strings.HasPrefix(k, "PVE_"), strings.HasPrefix(k, "SSH_"):
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func TestConfigListsEveryProblemAtOnce(t *testing.T) {
	clearEnv(t)
	t.Setenv("PORT", "99999")
	t.Setenv("JARVIS_PROTECTED_VMIDS", "103,abc")
	t.Setenv("JARVIS_STDIO_MAX_TIER", "black")
	t.Setenv("PVE_TOKEN_ID", "root")
	t.Setenv("JARVIS_NODES", "pve=10.0.0.5,bad name=10.0.0.6")
	t.Setenv("SSH_KEY_PATH", "/tmp/key")
	_, err := LoadConfig(false)
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{"PORT=99999", "JARVIS_PROTECTED_VMIDS", "JARVIS_STDIO_MAX_TIER", "JWT_SECRET", "JARVIS_PASSWORD",
		"PVE_TOKEN_ID", "PVE_TOKEN_SECRET", "bad name", "SSH_KNOWN_HOSTS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

func TestConfigRefusesPlaceholderSecretsOutsideDemo(t *testing.T) {
	for _, c := range []struct{ secret, password string }{
		{"change-me", "a-long-enough-password"},
		{"", "a-long-enough-password"},
		{strings.Repeat("x", 40), "password"},
		{strings.Repeat("x", 40), "short"},
	} {
		clearEnv(t)
		t.Setenv("JWT_SECRET", c.secret)
		t.Setenv("JARVIS_PASSWORD", c.password)
		t.Setenv("JARVIS_NODES", "pve=10.0.0.5")
		t.Setenv("PVE_TOKEN_ID", "jarvis@pve!mcp")
		t.Setenv("PVE_TOKEN_SECRET", "uuid")
		if _, err := LoadConfig(false); err == nil {
			t.Errorf("secret %q / password %q accepted", c.secret, c.password)
		}
		if _, err := LoadConfig(true); err != nil {
			t.Errorf("demo must not need secrets: %v", err)
		}
	}
}

func TestConfigGoodAndSecretFiles(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "pve-secret")
	if err := os.WriteFile(secretFile, []byte("11111111-2222-3333-4444-555555555555\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JWT_SECRET", strings.Repeat("s", 40))
	t.Setenv("JARVIS_PASSWORD", "operator-password-1")
	t.Setenv("JARVIS_NODES", "pve=10.0.0.5, pve2=10.0.0.6:8443")
	t.Setenv("PVE_TOKEN_ID", "jarvis@pve!mcp")
	t.Setenv("PVE_TOKEN_SECRET_FILE", secretFile)
	t.Setenv("JARVIS_PROTECTED_VMIDS", "103, 104")
	cfg, err := LoadConfig(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.clusters) != 1 || cfg.clusters[0].name != "pve" {
		t.Fatalf("clusters: %+v", cfg.clusters)
	}
	cc := cfg.clusters[0]
	if cc.PVETokenSecret != "11111111-2222-3333-4444-555555555555" {
		t.Errorf("secret file not trimmed: %q", cc.PVETokenSecret)
	}
	if len(cc.nodeList) != 2 || cc.nodeList[0].Host != "10.0.0.5:8006" || cc.nodeList[1].Host != "10.0.0.6:8443" {
		t.Errorf("nodes: %+v", cc.nodeList)
	}
	if len(cc.sshNodeList) != 2 || cc.sshNodeList[1].Host != "10.0.0.6:22" {
		t.Errorf("ssh nodes: %+v", cc.sshNodeList)
	}
	if len(cc.vmids) != 2 || cc.vmids[1] != 104 || cfg.Port != 4000 {
		t.Errorf("parsed: %+v %+v", cfg, cc)
	}
}

func TestEnvExampleListsEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	var src []byte
	for _, file := range []string{"config.go", "config_clusters.go", "notify.go"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, b...)
	}
	for _, line := range strings.Split(string(src), "\n") {
		_, rest, ok := strings.Cut(line, "`env:\"")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, "\"")
		name = strings.Split(name, ",")[0]
		if !strings.Contains(string(b), "\n"+name+"=") {
			t.Errorf(".env.example does not list %s", name)
		}
	}
}

func TestPrintableEscapesTerminalControl(t *testing.T) {
	in := "Run `rm -rf /`\r\x1b[2KRun `uptime`\u202e"
	got := printable(in)
	if strings.ContainsAny(got, "\r\x1b\u202e") || !strings.Contains(got, `\u001b`) {
		t.Fatalf("printable(%q) = %q", in, got)
	}
}

// One run shows every problem, each named by its variable with the value as
// written, and a value that cannot be read is not reported again as zero.
func TestConfigProblemsNameVariablesAndValues(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	keyDir := filepath.Join(dir, "id_ed25519") // what Docker makes of a missing mount
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JARVIS_APPROVAL_TTL", "10")
	t.Setenv("JARVIS_APPROVAL_WAIT", "soon")
	t.Setenv("PVE_INSECURE_TLS", "yes please")
	t.Setenv("PORT", "http")
	t.Setenv("JARVIS_RATE_RED_PER_MIN", "0")
	t.Setenv("PVE_TLS_FINGERPRINT", "AB:CD")
	t.Setenv("PVE_CA_FILE", filepath.Join(dir, "missing.pem"))
	t.Setenv("SSH_KEY_PATH", keyDir)
	t.Setenv("SSH_KNOWN_HOSTS", filepath.Join(dir, "known_hosts"))
	t.Setenv("JARVIS_WOL_MACS", "pve=not-a-mac")
	t.Setenv("JWT_SECRET", "change-me")
	_, err := LoadConfig(false)
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`JARVIS_APPROVAL_TTL="10": needs a unit, e.g. 10m`,
		`JARVIS_APPROVAL_WAIT="soon": is not a duration`,
		`PVE_INSECURE_TLS="yes please": use true or false`,
		`PORT="http": must be a whole number`,
		`JARVIS_RATE_RED_PER_MIN=0: must be above 0`,
		`PVE_TLS_FINGERPRINT="AB:CD": not a SHA-256 fingerprint`,
		"PVE_CA_FILE=" + filepath.Join(dir, "missing.pem") + ": no such file",
		"SSH_KEY_PATH=" + keyDir + ": is a directory",
		"SSH_KNOWN_HOSTS=" + filepath.Join(dir, "known_hosts") + ": no such file",
		`JARVIS_WOL_MACS: "pve": "not-a-mac" is not a MAC address`,
		"JWT_SECRET:", "JARVIS_NODES:", "PVE_TOKEN_ID=", "PVE_TOKEN_SECRET",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	for _, never := range []string{"ApprovalTTL", "PVEInsecure", "field", "0s: must be between", "PORT=0"} {
		if strings.Contains(msg, never) {
			t.Errorf("%q in:\n%s", never, msg)
		}
	}
}

// A secret that cannot be parsed is never echoed; a range problem shows the
// value as the user wrote it.
func TestConfigEchoesValuesAsWritten(t *testing.T) {
	clearEnv(t)
	t.Setenv("JARVIS_APPROVAL_TTL", "30s")
	t.Setenv("SSH_TIMEOUT", "10m")
	_, err := LoadConfig(true)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"JARVIS_APPROVAL_TTL=30s: must be between 1m and 24h", "SSH_TIMEOUT=10m: must be between 1s and 5m"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestConfigUnreadableKeyNamesTheImageUser(t *testing.T) {
	if os.Getuid() == 0 {
		// root reads any file; the case is checked through fileProblem directly.
		msg := fileProblem(&fs.PathError{Op: "open", Path: "/k", Err: fs.ErrPermission})
		if !strings.Contains(msg, "chown 65532") {
			t.Fatalf("permission problem says %q", msg)
		}
		return
	}
	clearEnv(t)
	key := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(key, []byte("x"), 0o000); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_KEY_PATH", key)
	_, err := LoadConfig(false)
	if err == nil || !strings.Contains(err.Error(), "chown 65532") {
		t.Fatalf("err = %v", err)
	}
}

// Proxmox shows a new token as user@realm!id=SECRET; pasted whole into
// PVE_TOKEN_ID, the secret is never echoed back.
func TestPastedTokenSecretIsNotEchoed(t *testing.T) {
	clearEnv(t)
	t.Setenv("PVE_TOKEN_ID", "jarvis@pve!mcp=0f1e2d3c-aaaa-bbbb-cccc-123456789abc")
	_, err := LoadConfig(false)
	if err == nil || strings.Contains(err.Error(), "0f1e2d3c") || !strings.Contains(err.Error(), `PVE_TOKEN_ID="jarvis@pve!mcp"=… includes the token's secret`) {
		t.Fatalf("err = %v", err)
	}
	_, err = pve.New(pve.Config{Endpoints: []pve.Endpoint{{Name: "pve", URL: "https://127.0.0.1:8006"}}, TokenID: "jarvis@pve!mcp=0f1e2d3c-aaaa", TokenSecret: "x"})
	if err == nil || strings.Contains(err.Error(), "0f1e2d3c") {
		t.Fatalf("pve.New: %v", err)
	}
}

// The performance settings are range-checked, each problem named by its variable.
func TestConfigChecksTheLoadSettings(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"JARVIS_READ_CACHE", "30s", "JARVIS_READ_CACHE=30s: must be between 0s and 10s"},
		{"JARVIS_READ_CACHE", "-1s", "JARVIS_READ_CACHE=-1s"},
		{"JARVIS_MCP_SESSION_IDLE", "1s", "JARVIS_MCP_SESSION_IDLE=1s: must be between 10s and 24h"},
		{"JARVIS_MCP_MAX_SESSIONS", "0", "JARVIS_MCP_MAX_SESSIONS=0: must be between 1 and 1024"},
		{"JARVIS_METRICS_ADDR", ":9464", `JARVIS_METRICS_ADDR=":9464": must be IP:port`},
		{"JARVIS_METRICS_ADDR", "localhost", `JARVIS_METRICS_ADDR="localhost": must be IP:port`},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			clearEnv(t)
			t.Setenv(tc.name, tc.value)
			_, err := LoadConfig(true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadConfig: %v\nwant it to say %q", err, tc.want)
			}
		})
	}
	clearEnv(t)
	t.Setenv("JARVIS_METRICS_ADDR", "127.0.0.1:9464")
	t.Setenv("JARVIS_READ_CACHE", "0")
	if cfg, err := LoadConfig(true); err != nil || cfg.ReadCache != 0 || cfg.MaxSessions != 32 || cfg.SessionIdle != 5*time.Minute {
		t.Fatalf("good settings: %+v, %v", cfg, err)
	}
}
