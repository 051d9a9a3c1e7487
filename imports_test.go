package jarvis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/jarvis-homelab/jarvis"

// rooms says which of Jarvis's own packages each package may import in
// production code (tests may import more: simulators, harnesses). Imports point
// one way: cmd → web → server → tools/safety/store. A package missing here
// fails the test, so a new one is placed on purpose.
var rooms = map[string][]string{
	"":                 {},
	"cmd/jarvis":       {"web", "server", "server/watch", "tools", "tools/pve", "tools/pve/pveid", "tools/ssh", "tools/sim/pvesim", "tools/sim/sshsim", "safety", "store", "metrics", "notify"},
	"web":              {"server", "server/watch", "safety", "store", "tools/pve/pveid"},
	"server":           {"tools", "safety", "store"},
	"server/watch":     {"tools", "tools/pve", "tools/ssh", "safety", "store"},
	"tools":            {"tools/pve", "tools/pve/pveid", "tools/ssh", "safety"},
	"tools/pve":        {"tools/pve/pveid"},
	"tools/pve/pveid":  {},
	"tools/ssh":        {"tools/pve/pveid"},
	"tools/sim/pvesim": {},
	"tools/sim/sshsim": {},
	"safety":           {"tools/pve/pveid"},
	"store":            {},
	// Fresh databases for tests of any package, on either engine; imports
	// nothing of Jarvis's, so store's own tests can use it.
	"store/storetest": {},
	// Prometheus collectors: a leaf, so any room can be handed one without an
	// import pointing the wrong way; only cmd/jarvis wires it.
	"metrics": {},
	// Notifications to people away from the desk: reads the feed's events
	// (store) and redacts with safety; only cmd/jarvis wires it.
	"notify": {"store", "safety"},
	// The load tool measures a running Jarvis from outside, as a client does.
	"cmd/jarvis-load": {},
}

// forbidden lists outside packages (prefixes) a room must not import.
var forbidden = map[string][]string{
	// The safety layer decides; it does no I/O, so it can be tested as a pure
	// function and cannot be tricked by what it reads.
	"safety": {"os", "net", "syscall", "io/fs", "database/", "gorm.io/", "github.com/modelcontextprotocol/", "github.com/labstack/"},
	// The store keeps records; it speaks no protocol.
	"store": {"net", "github.com/modelcontextprotocol/", "github.com/labstack/"},
	// The tools do their work and say what they would do; MCP and HTTP serving
	// are the server's and web's.
	"tools": {"github.com/modelcontextprotocol/", "github.com/labstack/"},
}

// demoFile is the one production file that may start the simulators.
const demoFile = "cmd/jarvis/demo.go"

type goPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
}

func TestImportGraph(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < len(rooms)-1 {
		t.Fatalf("go list found %d packages; the test is not seeing the module", len(pkgs))
	}
	for _, v := range violations(pkgs, parseImports) {
		t.Error(v)
	}
}

// The check itself must catch each kind of violation.
func TestImportGraphCatchesViolations(t *testing.T) {
	imp := func(rel string, imports ...string) goPackage {
		return goPackage{ImportPath: strings.TrimSuffix(module+"/"+rel, "/"), Imports: imports}
	}
	noFiles := func(string) ([]string, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		pkg  goPackage
		want string
	}{
		{"safety does I/O", imp("safety", "net/http"), `safety imports "net/http"`},
		{"safety reads files", imp("safety", "os"), `safety imports "os"`},
		{"store speaks MCP", imp("store", "github.com/modelcontextprotocol/go-sdk/mcp"), "store imports"},
		{"tools imports the server", imp("tools", module+"/server"), "tools imports server"},
		{"server imports web", imp("server", module+"/web"), "server imports web"},
		{"web imports a simulator", imp("web", module+"/tools/sim/pvesim"), "web imports tools/sim/pvesim"},
		{"a package nobody placed", imp("tools/helpers"), "tools/helpers is not in the import map"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := violations([]goPackage{tc.pkg}, noFiles)
			if len(got) != 1 || !strings.Contains(got[0], tc.want) {
				t.Fatalf("violations = %q, want one mentioning %q", got, tc.want)
			}
		})
	}
	t.Run("a simulator outside the demo file", func(t *testing.T) {
		pkg := goPackage{ImportPath: module + "/cmd/jarvis", Dir: "cmd/jarvis", GoFiles: []string{"app.go", "demo.go"},
			Imports: []string{module + "/tools/sim/pvesim"}}
		files := func(path string) ([]string, error) { return []string{module + "/tools/sim/pvesim"}, nil }
		got := violations([]goPackage{pkg}, files)
		if len(got) != 1 || !strings.Contains(got[0], "cmd/jarvis/app.go imports tools/sim/pvesim") {
			t.Fatalf("violations = %q", got)
		}
	})
}

// violations checks each package's production imports against rooms,
// forbidden and the simulator rule. importsOf reads one file's imports.
func violations(pkgs []goPackage, importsOf func(path string) ([]string, error)) []string {
	var out []string
	for _, p := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		allowed, placed := rooms[rel]
		if !placed {
			out = append(out, fmt.Sprintf("%s is not in the import map (imports_test.go): add it with the packages it may import", rel))
			continue
		}
		for _, imp := range p.Imports {
			if own, ok := strings.CutPrefix(imp, module+"/"); ok {
				if !slices.Contains(allowed, own) {
					out = append(out, fmt.Sprintf("%s imports %s, which it may not (allowed: %s)", displayName(rel), own, strings.Join(allowed, ", ")))
				}
				continue
			}
			room := rel
			if strings.HasPrefix(rel, "tools/") && !strings.HasPrefix(rel, "tools/sim/") {
				room = "tools"
			}
			for _, f := range forbidden[room] {
				if imp == strings.TrimSuffix(f, "/") || strings.HasPrefix(imp, strings.TrimSuffix(f, "/")+"/") {
					out = append(out, fmt.Sprintf("%s imports %q; %s must not import %s", displayName(rel), imp, room, f))
				}
			}
		}
		for _, f := range p.GoFiles {
			file := filepath.ToSlash(filepath.Join(rel, f))
			if file == demoFile {
				continue
			}
			imports, err := importsOf(filepath.Join(p.Dir, f))
			if err != nil {
				out = append(out, fmt.Sprintf("reading %s: %v", file, err))
				continue
			}
			for _, imp := range imports {
				if strings.HasPrefix(imp, module+"/tools/sim/") && !strings.HasPrefix(rel, "tools/sim/") {
					out = append(out, fmt.Sprintf("%s imports %s: only %s may start a simulator", file, strings.TrimPrefix(imp, module+"/"), demoFile))
				}
			}
		}
	}
	return out
}

func displayName(rel string) string {
	if rel == "" {
		return "the root package"
	}
	return rel
}

func listPackages(t *testing.T) []goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func parseImports(path string) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range f.Imports {
		out = append(out, strings.Trim(s.Path.Value, `"`))
	}
	return out, nil
}
