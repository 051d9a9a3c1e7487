package tools

import (
	"slices"
	"strings"
	"testing"
)

// Every tool is in exactly one toolset, and every toolset names real tools.
func TestEveryToolIsInOneToolset(t *testing.T) {
	inCatalogue := map[string]bool{}
	for _, tool := range Catalogue() {
		inCatalogue[tool.Name] = true
		n := 0
		for _, ts := range Toolsets {
			if slices.Contains(ts.Tools, tool.Name) {
				n++
			}
		}
		if n != 1 || tool.Toolset == "" {
			t.Errorf("%s is in %d toolsets (toolset %q); put it in exactly one (toolsets.go)", tool.Name, n, tool.Toolset)
		}
	}
	for _, ts := range Toolsets {
		if ts.Description == "" || len(ts.Tools) == 0 {
			t.Errorf("toolset %s needs a description and tools", ts.Name)
		}
		for _, name := range ts.Tools {
			if !inCatalogue[name] {
				t.Errorf("toolset %s lists %s, which is not in the catalogue", ts.Name, name)
			}
		}
	}
}

func TestParseToolsets(t *testing.T) {
	defaults := strings.Join(DefaultToolsets(), ",")
	cases := []struct {
		in, want, err string
	}{
		{in: "", want: defaults},
		{in: " , ", want: defaults},
		{in: "default", want: defaults},
		{in: "all", want: strings.Join(ToolsetNames(), ",")},
		{in: "backups,cluster", want: "cluster,backups"}, // documented order
		{in: "Cluster, cluster ,power", want: "cluster,power"},
		{in: "nodes,default", want: defaults + ",nodes"},
		{in: "default,backups", want: defaults + ",backups"},
		{in: "clustr", err: `unknown toolset "clustr"; the toolsets are cluster, power,`},
		{in: "cluster,*", err: `unknown toolset "*"`},
	}
	for _, c := range cases {
		got, err := ParseToolsets(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseToolsets(%q) error = %v, want it to contain %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != c.want {
			t.Errorf("ParseToolsets(%q) = %v, %v; want %s", c.in, got, err, c.want)
		}
	}
}
