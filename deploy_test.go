package jarvis

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose renders compose files as `docker compose config` does (the same
// loader, schema validation and interpolation), in a folder holding only
// those files and .env from .env.example: a fresh checkout without SSH keys.
func loadCompose(t *testing.T, files ...string) *types.Project {
	t.Helper()
	dir := t.TempDir()
	for _, f := range append(files, ".env.example") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if f == ".env.example" {
			f = ".env"
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts, err := cli.NewProjectOptions(files, cli.WithWorkingDirectory(dir), cli.WithName("jarvis"), cli.WithDotEnv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose config %v: %v", files, err)
	}
	return p
}

// compose.yaml starts on a machine without SSH keys: it mounts no host file,
// so Docker never makes a directory where a key should be.
func TestComposeStartsWithoutSSHKeys(t *testing.T) {
	p := loadCompose(t, "compose.yaml")
	svc, err := p.GetService("jarvis")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeBind {
			t.Errorf("compose.yaml mounts host path %s: a fresh checkout does not have it", v.Source)
		}
	}
	for _, name := range []string{"SSH_KEY_PATH", "SSH_KNOWN_HOSTS"} {
		if v := svc.Environment[name]; v != nil && *v != "" {
			t.Errorf("compose.yaml sets %s=%s without mounting it", name, *v)
		}
	}
	if svc.User != "" {
		t.Errorf("compose.yaml overrides the image user (%s); the README's chown names uid 65532", svc.User)
	}
}

// compose.ssh.yaml adds the SSH files: each is mounted read-only where the
// variables point, and a missing one stops Docker instead of becoming a
// directory. The uid it tells users to chown to is the image's.
func TestComposeSSHOverlay(t *testing.T) {
	p := loadCompose(t, "compose.yaml", "compose.ssh.yaml")
	svc, err := p.GetService("jarvis")
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		targets[v.Target] = true
		if v.Bind == nil || v.Bind.CreateHostPath {
			t.Errorf("bind %s → %s lets Docker create a missing source as a directory", v.Source, v.Target)
		}
		if !v.ReadOnly {
			t.Errorf("bind %s → %s is writable", v.Source, v.Target)
		}
	}
	for _, name := range []string{"SSH_KEY_PATH", "SSH_KNOWN_HOSTS"} {
		v := svc.Environment[name]
		if v == nil || !targets[*v] {
			t.Errorf("%s does not point at a mounted file (mounts %v)", name, targets)
		}
	}

	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^USER (\d+):`).FindSubmatch(dockerfile)
	if m == nil {
		t.Fatal("Dockerfile has no numeric USER")
	}
	overlay, _ := os.ReadFile("compose.ssh.yaml")
	readme, _ := os.ReadFile("README.md")
	for file, text := range map[string][]byte{"compose.ssh.yaml": overlay, "README.md": readme} {
		if !strings.Contains(string(text), "chown "+string(m[1])) {
			t.Errorf("%s does not tell users to give the key to uid %s (the image's USER)", file, m[1])
		}
	}
}

// Every variable compose sets is one Jarvis reads (.env.example lists them all).
func TestComposeSetsOnlyKnownVariables(t *testing.T) {
	example, err := os.ReadFile(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t, "compose.yaml", "compose.ssh.yaml")
	svc, _ := p.GetService("jarvis")
	raw, _ := os.ReadFile("compose.yaml")
	rawSSH, _ := os.ReadFile("compose.ssh.yaml")
	for name := range svc.Environment {
		set := strings.Contains(string(raw), "  "+name+":") || strings.Contains(string(rawSSH), "  "+name+":")
		if set && !regexp.MustCompile(`(?m)^`+name+`=`).Match(example) {
			t.Errorf("compose sets %s, which .env.example does not list", name)
		}
	}
}
