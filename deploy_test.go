package jarvis

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
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
	return loadComposeWith(t, nil, nil, files...)
}

// loadComposeWith is loadCompose with the profiles given (--profile) and
// .env's variables in env set to other values than .env.example's.
func loadComposeWith(t *testing.T, profiles []string, env map[string]string, files ...string) *types.Project {
	t.Helper()
	dir := t.TempDir()
	for _, f := range append(files, ".env.example") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if f == ".env.example" {
			f = ".env"
			for name, value := range env {
				line := regexp.MustCompile(`(?m)^` + name + `=.*$`)
				if !line.Match(b) {
					t.Fatalf(".env.example does not list %s", name)
				}
				b = line.ReplaceAllLiteral(b, []byte(name+"="+value))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts, err := cli.NewProjectOptions(files, cli.WithWorkingDirectory(dir), cli.WithName("jarvis"),
		cli.WithEnvFiles(), cli.WithDotEnv, cli.WithProfiles(profiles))
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
	// Every Jarvis: the default service and the replicas of the profile.
	p := loadComposeWith(t, []string{"replicas"}, nil, "compose.yaml", "compose.ssh.yaml")
	raw, _ := os.ReadFile("compose.yaml")
	rawSSH, _ := os.ReadFile("compose.ssh.yaml")
	jarvises := 0
	for _, svc := range p.Services {
		if svc.Image != "jarvis:local" {
			continue
		}
		jarvises++
		for name := range svc.Environment {
			set := strings.Contains(string(raw), "  "+name+":") || strings.Contains(string(rawSSH), "  "+name+":")
			if set && !regexp.MustCompile(`(?m)^`+name+`=`).Match(example) {
				t.Errorf("compose sets %s for %s, which .env.example does not list", name, svc.Name)
			}
		}
	}
	if jarvises != 3 {
		t.Errorf("checked %d Jarvis services, want 3 (jarvis, jarvis-a, jarvis-b)", jarvises)
	}
}

// `docker compose up -d` starts what it started before the profile existed:
// one Jarvis on SQLite, with its volume and nothing else, with or without
// the overlays.
func TestComposeDefaultIsOneJarvisOnSQLite(t *testing.T) {
	for _, files := range [][]string{
		{"compose.yaml"},
		{"compose.yaml", "compose.ssh.yaml"},
		{"compose.yaml", "compose.postgres.yaml"},
	} {
		t.Run(strings.Join(files, "+"), func(t *testing.T) {
			p := loadCompose(t, files...).WithoutUnnecessaryResources()
			if got := p.ServiceNames(); !slices.Equal(got, []string{"jarvis"}) {
				t.Errorf("services %v, want [jarvis]", got)
			}
			if got := p.VolumeNames(); !slices.Equal(got, []string{"jarvis-data"}) {
				t.Errorf("volumes %v, want [jarvis-data]", got)
			}
			svc, err := p.GetService("jarvis")
			if err != nil {
				t.Fatal(err)
			}
			if len(svc.Profiles) > 0 || len(svc.DependsOn) > 0 {
				t.Errorf("jarvis has profiles %v and depends on %v: it must start alone, without --profile", svc.Profiles, svc.DependsOn)
			}
			wantDB := "/data/jarvis.db"
			if slices.Contains(files, "compose.postgres.yaml") {
				wantDB = ""
			}
			if got := env(svc, "DB_PATH"); got != wantDB {
				t.Errorf("DB_PATH=%q, want %q", got, wantDB)
			}
		})
	}
}

// What each command the README gives starts, selected as docker compose
// selects (cmd/compose/compose.go ToProject: the named services' profiles
// enabled, then only those services and what they depend on).
func TestComposeReplicasStartByName(t *testing.T) {
	replicas := []string{"jarvis-a", "jarvis-b", "jarvis-b-anchor", "postgres"}
	for _, tc := range []struct {
		command  string
		profiles []string
		named    []string
		want     []string
	}{
		{command: "up -d", want: []string{"jarvis"}},
		{command: "--profile replicas up -d jarvis-b", profiles: []string{"replicas"}, named: []string{"jarvis-b"}, want: replicas},
		{command: "up -d jarvis-b", named: []string{"jarvis-b"}, want: replicas},
		{command: "up -d jarvis-a", named: []string{"jarvis-a"}, want: []string{"jarvis-a", "postgres"}},
		{command: "--profile replicas up -d jarvis-a jarvis-b", profiles: []string{"replicas"}, named: []string{"jarvis-a", "jarvis-b"}, want: replicas},
		// Why the README names the service: a service without a profile always starts.
		{command: "--profile replicas up -d", profiles: []string{"replicas"}, want: append([]string{"jarvis"}, replicas...)},
	} {
		t.Run(tc.command, func(t *testing.T) {
			p, err := loadComposeWith(t, tc.profiles, nil, "compose.yaml").WithServicesEnabled(tc.named...)
			if err != nil {
				t.Fatal(err)
			}
			if p, err = p.WithSelectedServices(tc.named); err != nil {
				t.Fatal(err)
			}
			got := p.ServiceNames()
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("docker compose %s starts %v, want %v", tc.command, got, tc.want)
			}
		})
	}
}

// The profile: PostgreSQL 15, and two replicas that are the default service
// with their state in it, each with its own name, port and anchor volume,
// started in the order the audit log needs.
func TestComposeReplicas(t *testing.T) {
	const password = "p@ss:w/rd%?# 'x'"
	p := loadComposeWith(t, []string{"replicas"}, map[string]string{"POSTGRES_PASSWORD": password}, "compose.yaml")
	get := func(name string) types.ServiceConfig {
		t.Helper()
		svc, err := p.GetService(name)
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	single, db := get("jarvis"), get("postgres")

	if db.Image != "postgres:15" {
		t.Errorf("postgres runs %s, want postgres:15 (what CI tests)", db.Image)
	}
	if got := env(db, "POSTGRES_PASSWORD"); got != password {
		t.Errorf("POSTGRES_PASSWORD=%q, want .env's", got)
	}
	if hc := db.HealthCheck; hc == nil || len(hc.Test) < 2 || hc.Test[1] != "pg_isready" || !slices.Contains(hc.Test, "127.0.0.1") {
		t.Errorf("postgres health check %v: want pg_isready over TCP (-h 127.0.0.1)", db.HealthCheck)
	}
	if len(db.Ports) > 0 {
		t.Errorf("postgres publishes %v: only the replicas need it", db.Ports)
	}
	if v := mounts(db); v["postgres-data"] != "/var/lib/postgresql/data" {
		t.Errorf("postgres keeps its data in %v, want the named volume postgres-data", v)
	}

	anchorVolumes := map[string]string{} // volume → replica
	ids := map[string]bool{}
	ports := map[string]string{single.Ports[0].Published: "jarvis"}
	for _, name := range []string{"jarvis-a", "jarvis-b"} {
		t.Run(name, func(t *testing.T) {
			svc := get(name)
			if svc.Image != single.Image || svc.Build == nil || svc.Build.Context != single.Build.Context {
				t.Errorf("image %s: want the default service's", svc.Image)
			}
			if v, ok := svc.Environment["DB_PATH"]; !ok || v == nil || *v != "" {
				t.Errorf("DB_PATH must be set empty (the image sets it; both set is refused)")
			}
			u, err := url.Parse(env(svc, "JARVIS_DATABASE_URL"))
			if err != nil || u.Scheme != "postgres" || u.Hostname() != "postgres" ||
				u.User.Username() != env(db, "POSTGRES_USER") || u.Path != "/"+env(db, "POSTGRES_DB") {
				t.Errorf("JARVIS_DATABASE_URL=%s (%v): want the postgres service's database and user", env(svc, "JARVIS_DATABASE_URL"), err)
			}
			if _, set := u.User.Password(); set {
				t.Error("JARVIS_DATABASE_URL holds a password: give it in PGPASSWORD")
			}
			if got := env(svc, "PGPASSWORD"); got != password {
				t.Errorf("PGPASSWORD=%q, want .env's POSTGRES_PASSWORD", got)
			}

			anchor := env(svc, "JARVIS_AUDIT_ANCHOR")
			volume := ""
			for source, target := range mounts(svc) {
				if target == path.Dir(anchor) {
					volume = source
				}
			}
			if volume == "" || anchorVolumes[volume] != "" || slices.Contains(mountsOf(single), volume) {
				t.Errorf("the anchor %s is in volume %q, shared or not its own (%v)", anchor, volume, anchorVolumes)
			}
			anchorVolumes[volume] = name
			// The copier writes jarvis-b's volume only while it is empty.
			for _, other := range p.Services {
				if other.Name != name && other.Name != "jarvis-b-anchor" && mountedWritable(other, volume) {
					t.Errorf("%s can write %s's anchor volume %s", other.Name, name, volume)
				}
			}

			id := env(svc, "JARVIS_REPLICA_ID")
			if !regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,55}$`).MatchString(id) || ids[id] {
				t.Errorf("JARVIS_REPLICA_ID=%q: want a valid name of its own", id)
			}
			ids[id] = true
			if len(svc.Ports) != 1 || svc.Ports[0].HostIP != "127.0.0.1" || strconv.Itoa(int(svc.Ports[0].Target)) != env(svc, "PORT") ||
				ports[svc.Ports[0].Published] != "" {
				t.Errorf("ports %+v: want one, on 127.0.0.1, to PORT, on a host port of its own (%v)", svc.Ports, ports)
			} else {
				ports[svc.Ports[0].Published] = name
			}

			// The default service's hardening and health check (which asks
			// /api/health on PORT, the same on PostgreSQL).
			if !reflect.DeepEqual(svc.HealthCheck, single.HealthCheck) || svc.ReadOnly != single.ReadOnly ||
				!slices.Equal(svc.CapDrop, single.CapDrop) || !slices.Equal(svc.SecurityOpt, single.SecurityOpt) ||
				!slices.Equal(svc.Tmpfs, single.Tmpfs) || svc.User != single.User || svc.Restart != single.Restart {
				t.Error("health check, read_only, cap_drop, security_opt, tmpfs, user or restart differ from the default service's")
			}
			if dep := svc.DependsOn["postgres"]; dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("depends on postgres %+v: want service_healthy", dep)
			}
		})
	}

	// A founds the log; B starts once the copier gave it A's anchor, and the
	// copier runs once A is healthy (so A's anchor exists).
	for _, dep := range []struct{ service, on, condition string }{
		{"jarvis-b-anchor", "jarvis-a", types.ServiceConditionHealthy},
		{"jarvis-b", "jarvis-b-anchor", types.ServiceConditionCompletedSuccessfully},
	} {
		if got := get(dep.service).DependsOn[dep.on].Condition; got != dep.condition {
			t.Errorf("%s depends on %s %q, want %s", dep.service, dep.on, got, dep.condition)
		}
	}
	if len(get("jarvis-a").DependsOn) != 1 {
		t.Errorf("jarvis-a depends on %v: it founds the log, so it waits for postgres only", get("jarvis-a").DependsOn)
	}
	copier := get("jarvis-b-anchor")
	if copier.NetworkMode != "none" || !copier.ReadOnly || !slices.Equal(copier.CapDrop, []string{"ALL"}) || copier.Restart != "no" ||
		len(copier.CapAdd) > 2 || slices.ContainsFunc(copier.CapAdd, func(c string) bool { return c != "CHOWN" && c != "DAC_OVERRIDE" }) {
		t.Errorf("jarvis-b-anchor: network %q, read_only %v, cap_drop %v, cap_add %v, restart %q: want none, true, [ALL], CHOWN and DAC_OVERRIDE at most, no",
			copier.NetworkMode, copier.ReadOnly, copier.CapDrop, copier.CapAdd, copier.Restart)
	}
}

// No password is written in compose.yaml: each one is .env's POSTGRES_PASSWORD,
// which .env.example leaves empty, and PostgreSQL refuses to start without.
func TestComposeTakesPasswordsFromEnv(t *testing.T) {
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lines := regexp.MustCompile(`(?m)^\s*([A-Z_]*PASS[A-Z_]*):\s*(.*)$`).FindAllSubmatch(raw, -1)
	if len(lines) != 2 {
		t.Errorf("compose.yaml sets %d passwords, want 2 (postgres's, the replicas')", len(lines))
	}
	for _, m := range lines {
		if string(m[2]) != "${POSTGRES_PASSWORD:-}" {
			t.Errorf("compose.yaml sets %s: %s, want ${POSTGRES_PASSWORD:-}", m[1], m[2])
		}
	}
	p := loadComposeWith(t, []string{"replicas"}, nil, "compose.yaml")
	for _, name := range []string{"postgres", "jarvis-a", "jarvis-b"} {
		svc, _ := p.GetService(name)
		for _, v := range []string{"POSTGRES_PASSWORD", "PGPASSWORD"} {
			if got := env(svc, v); got != "" {
				t.Errorf("with .env.example, %s gets %s=%q: want empty", name, v, got)
			}
		}
	}
}

// env is the value compose gives a service's variable name ("" when unset).
func env(svc types.ServiceConfig, name string) string {
	if v := svc.Environment[name]; v != nil {
		return *v
	}
	return ""
}

// mounts maps a service's named volumes to where it mounts them.
func mounts(svc types.ServiceConfig) map[string]string {
	m := map[string]string{}
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeVolume {
			m[v.Source] = v.Target
		}
	}
	return m
}

func mountsOf(svc types.ServiceConfig) []string {
	var names []string
	for name := range mounts(svc) {
		names = append(names, name)
	}
	return names
}

func mountedWritable(svc types.ServiceConfig, volume string) bool {
	return slices.ContainsFunc(svc.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Source == volume && !v.ReadOnly
	})
}

// The copier's script, run here as compose runs it (its entrypoint and
// command after interpolation) on two folders standing for the volumes, with
// chown recorded instead of done: it copies jarvis-a's anchor only into an
// empty volume, and refuses a volume that lost its anchor.
func TestComposeAnchorCopier(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	svc, err := loadComposeWith(t, []string{"replicas"}, nil, "compose.yaml").GetService("jarvis-b-anchor")
	if err != nil {
		t.Fatal(err)
	}
	v := mounts(svc)
	if len(svc.Volumes) != 2 || !slices.ContainsFunc(svc.Volumes, func(m types.ServiceVolumeConfig) bool {
		return m.Source == "jarvis-a-data" && m.ReadOnly
	}) {
		t.Fatalf("jarvis-b-anchor mounts %+v: want jarvis-a-data read-only and jarvis-b-data", svc.Volumes)
	}
	if len(svc.Entrypoint) < 1 || len(svc.Command) != 1 || path.Base(svc.Entrypoint[0]) != "sh" {
		t.Fatalf("entrypoint %q, command %q: want sh and one script", svc.Entrypoint, svc.Command)
	}
	paths := "from=" + v["jarvis-a-data"] + " to=" + v["jarvis-b-data"] + "\n"
	if !strings.HasPrefix(svc.Command[0], paths) {
		t.Fatalf("the script does not start with %q: its paths must be the mounts'", paths)
	}

	const anchorA, anchorB = `{"a":1}` + "\n", `{"b":1}` + "\n"
	for _, tc := range []struct {
		name    string
		a, b    map[string]string // files in jarvis-a's and jarvis-b's volumes
		fails   string            // what stderr says when it must fail
		anchorB string            // jarvis-b's anchor afterwards
	}{
		{name: "a new replica gets a copy", a: map[string]string{"jarvis.anchor": anchorA}, anchorB: anchorA},
		{name: "its own anchor is kept", a: map[string]string{"jarvis.anchor": anchorA},
			b: map[string]string{"jarvis.anchor": anchorB, "jarvis.anchor.lock": ""}, anchorB: anchorB},
		{name: "an anchor deleted after the copy", a: map[string]string{"jarvis.anchor": anchorA},
			b: map[string]string{".anchor-copied-from-jarvis-a": "x"}, fails: "Not copying"},
		{name: "an anchor deleted after checkpoints", a: map[string]string{"jarvis.anchor": anchorA},
			b: map[string]string{"jarvis.anchor.lock": ""}, fails: "Not copying"},
		{name: "a copy cut short", a: map[string]string{"jarvis.anchor": anchorA},
			b: map[string]string{".jarvis.anchor.copy": "{"}, fails: "Not copying"},
		{name: "jarvis-a has none", fails: "jarvis-a has no anchor file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dirA, dirB, bin := t.TempDir(), t.TempDir(), t.TempDir()
			for dir, files := range map[string]map[string]string{dirA: tc.a, dirB: tc.b} {
				for name, text := range files {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			chowned := filepath.Join(bin, "chowned")
			shim := "#!/bin/sh\necho \"$@\" >> " + chowned + "\n"
			if err := os.WriteFile(filepath.Join(bin, "chown"), []byte(shim), 0o700); err != nil {
				t.Fatal(err)
			}
			script := "from=" + dirA + " to=" + dirB + "\n" + strings.TrimPrefix(svc.Command[0], paths)
			run := func() (string, error) {
				cmd := exec.Command(sh, append(svc.Entrypoint[1:], script)...)
				cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
				var stderr strings.Builder
				cmd.Stderr = &stderr
				err := cmd.Run()
				return stderr.String(), err
			}
			before := listDir(t, dirB)
			stderr, err := run()
			if tc.fails != "" {
				if err == nil || !strings.Contains(stderr, tc.fails) {
					t.Errorf("err %v, stderr %q: want a failure saying %q", err, stderr, tc.fails)
				}
				if after := listDir(t, dirB); !slices.Equal(after, before) {
					t.Errorf("jarvis-b's volume went from %v to %v: a refusal writes nothing", before, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v: %s", err, stderr)
			}
			got, err := os.ReadFile(filepath.Join(dirB, "jarvis.anchor"))
			if err != nil || string(got) != tc.anchorB {
				t.Errorf("jarvis-b's anchor is %q (%v), want %q", got, err, tc.anchorB)
			}
			if tc.b != nil {
				return // its own: nothing else to check
			}
			if fi, err := os.Stat(filepath.Join(dirB, "jarvis.anchor")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("the copy's mode: %v %v, want 0600", fi.Mode(), err)
			}
			if files := listDir(t, dirB); !slices.Equal(files, []string{".anchor-copied-from-jarvis-a", "jarvis.anchor"}) {
				t.Errorf("jarvis-b's volume holds %v: want the anchor and the note beside it", files)
			}
			log, _ := os.ReadFile(chowned)
			for _, want := range []string{dirB, "jarvis.anchor.copy", ".anchor-copied-from-jarvis-a"} {
				if !strings.Contains(string(log), "65532:65532") || !strings.Contains(string(log), want) {
					t.Errorf("chown %q: want %s given to the image's uid 65532", log, want)
				}
			}
			// Every `up` runs it again: the copy is jarvis-b's own now.
			if stderr, err := run(); err != nil {
				t.Errorf("the second run: %v: %s", err, stderr)
			}
			if again, _ := os.ReadFile(filepath.Join(dirB, "jarvis.anchor")); string(again) != tc.anchorB {
				t.Errorf("the second run changed jarvis-b's anchor to %q", again)
			}
		})
	}
}

// listDir names the files in dir, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
