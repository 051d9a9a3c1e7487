package main

// The clusters Jarvis serves. Without JARVIS_CLUSTERS there is one, read from
// the variables every installation has always used (JARVIS_NODES,
// PVE_TOKEN_ID, …) and named by JARVIS_CLUSTER_NAME. JARVIS_CLUSTERS=home,lab
// names several; each cluster's settings are then the same variables with
// JARVIS_CLUSTER_<NAME>_ before them and any leading JARVIS_ dropped:
// JARVIS_CLUSTER_HOME_NODES, JARVIS_CLUSTER_HOME_PVE_TOKEN_ID,
// JARVIS_CLUSTER_LAB_PROTECTED_VMIDS, …

import (
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/caarlos0/env/v11"

	"github.com/jarvis-homelab/jarvis/tools"
	"github.com/jarvis-homelab/jarvis/tools/pve"
	"github.com/jarvis-homelab/jarvis/tools/pve/pveid"
)

// ClusterEnv is one cluster's settings: what reaches its API and its nodes,
// and what of it is protected. The env tag is the variable of the one
// cluster of an installation without JARVIS_CLUSTERS; the cluster tag is the
// name after JARVIS_CLUSTER_<NAME>_ (the env tag without JARVIS_).
type ClusterEnv struct {
	Nodes              string `env:"JARVIS_NODES" cluster:"NODES"`
	PVETokenID         string `env:"PVE_TOKEN_ID" cluster:"PVE_TOKEN_ID"`
	PVETokenSecret     string `env:"PVE_TOKEN_SECRET" cluster:"PVE_TOKEN_SECRET"`
	PVETokenSecretFile string `env:"PVE_TOKEN_SECRET_FILE" cluster:"PVE_TOKEN_SECRET_FILE"`
	PVEFingerprint     string `env:"PVE_TLS_FINGERPRINT" cluster:"PVE_TLS_FINGERPRINT"`
	PVECAFile          string `env:"PVE_CA_FILE" cluster:"PVE_CA_FILE"`
	PVEInsecure        bool   `env:"PVE_INSECURE_TLS" cluster:"PVE_INSECURE_TLS" envDefault:"false"`

	ProtectedNodes    []string `env:"JARVIS_PROTECTED_NODES" cluster:"PROTECTED_NODES" envSeparator:","`
	ProtectedVMIDs    []string `env:"JARVIS_PROTECTED_VMIDS" cluster:"PROTECTED_VMIDS" envSeparator:","`
	ProtectedServices []string `env:"JARVIS_PROTECTED_SERVICES" cluster:"PROTECTED_SERVICES" envSeparator:","`

	SSHUser       string `env:"SSH_USER" cluster:"SSH_USER" envDefault:"root"`
	SSHKeyPath    string `env:"SSH_KEY_PATH" cluster:"SSH_KEY_PATH"`
	SSHKnownHosts string `env:"SSH_KNOWN_HOSTS" cluster:"SSH_KNOWN_HOSTS"`
	SSHNodes      string `env:"SSH_NODES" cluster:"SSH_NODES"`
	WakeMACs      string `env:"JARVIS_WOL_MACS" cluster:"WOL_MACS"`
	WakeBroadcast string `env:"JARVIS_WOL_BROADCAST" cluster:"WOL_BROADCAST" envDefault:"255.255.255.255:9"`

	// Filled by LoadConfig.
	name        string // the cluster's name
	prefix      string // "" for the unprefixed variables, else JARVIS_CLUSTER_<NAME>_
	nodeList    []nodeAddr
	sshNodeList []nodeAddr
	vmids       []int
	wake        *tools.WakeOnLAN
}

// clusterNameRE is what a cluster may be called: it becomes part of variable
// names, audit rows and the tools' cluster argument.
var clusterNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

const clusterNameRule = "lower-case letters, digits and '-', starting with a letter, at most 32"

// clusterPrefix is the start of a cluster's variables: JARVIS_CLUSTER_HOME_
// for home, JARVIS_CLUSTER_HOME_LAB_ for home-lab.
func clusterPrefix(name string) string {
	return "JARVIS_CLUSTER_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_"
}

// varName is the variable this cluster reads for the setting that an
// installation with one cluster reads from legacy (e.g. JARVIS_NODES).
func (cc *ClusterEnv) varName(legacy string) string {
	if cc.prefix == "" {
		return legacy
	}
	return cc.prefix + strings.TrimPrefix(legacy, "JARVIS_")
}

// fieldVar is the variable of a ClusterEnv field, for env's parse errors.
func (cc *ClusterEnv) fieldVar(field string) string {
	f, ok := reflect.TypeFor[ClusterEnv]().FieldByName(field)
	if !ok {
		return field
	}
	return cc.varName(f.Tag.Get("env"))
}

// loadClusters reads the clusters: JARVIS_CLUSTERS, or the one cluster of the
// unprefixed variables. Outside the demo each must say how to reach it.
func (cfg *Config) loadClusters(demo bool) []string {
	names := trimAll(strings.Split(cfg.ClusterList, ","))
	if len(names) == 0 {
		if !clusterNameRE.MatchString(cfg.ClusterName) {
			return []string{fmt.Sprintf("JARVIS_CLUSTER_NAME=%q: a cluster's name is %s, e.g. home", cfg.ClusterName, clusterNameRule)}
		}
		cc := &ClusterEnv{name: cfg.ClusterName}
		problems := cc.load(demo)
		cfg.clusters = []*ClusterEnv{cc}
		return append(problems, strayClusterVars("", nil)...)
	}
	var problems []string
	// Its default, as a copied .env.example sets it, does not count.
	if v := os.Getenv("JARVIS_CLUSTER_NAME"); v != "" && v != "pve" {
		problems = append(problems, fmt.Sprintf("JARVIS_CLUSTER_NAME=%q names the one cluster of an installation without JARVIS_CLUSTERS; with JARVIS_CLUSTERS=%s unset it", v, cfg.ClusterList))
	}
	for _, name := range names {
		switch {
		case !clusterNameRE.MatchString(name):
			problems = append(problems, fmt.Sprintf("JARVIS_CLUSTERS=%q: cluster %q must be %s, e.g. home,lab", cfg.ClusterList, name, clusterNameRule))
			continue
		case slices.ContainsFunc(cfg.clusters, func(c *ClusterEnv) bool { return c.name == name }):
			problems = append(problems, fmt.Sprintf("JARVIS_CLUSTERS=%q: cluster %s is listed twice", cfg.ClusterList, name))
			continue
		}
		cc := &ClusterEnv{name: name, prefix: clusterPrefix(name)}
		for _, other := range cfg.clusters {
			if p := overlappingClusters(cfg.ClusterList, names, other, cc); p != "" {
				problems = append(problems, p)
			}
		}
		problems = append(problems, cc.load(demo)...)
		cfg.clusters = append(cfg.clusters, cc)
	}
	problems = append(problems, unprefixedClusterVars(cfg.ClusterList)...)
	return append(problems, strayClusterVars(cfg.ClusterList, cfg.clusters)...)
}

// overlappingClusters says why clusters a and b cannot both be listed when
// the variables of one start like the other's (lab and lab-ssh:
// JARVIS_CLUSTER_LAB_SSH_NODES would be lab's SSH_NODES and lab-ssh's NODES),
// else "". It is refused on the names alone, set variables or not, so
// whether Jarvis starts never depends on which settings happen to be set.
func overlappingClusters(list string, names []string, a, b *ClusterEnv) string {
	short, long := a, b
	if len(long.prefix) < len(short.prefix) {
		short, long = long, short
	}
	if !strings.HasPrefix(long.prefix, short.prefix) {
		return ""
	}
	// An example of a variable both would read, when there is one.
	example := fmt.Sprintf("a variable starting %s could be meant for either", long.prefix)
	rest := strings.TrimPrefix(long.prefix, short.prefix)
	settings := clusterSettings()
	for _, setting := range settings {
		if slices.Contains(settings, rest+setting) {
			example = fmt.Sprintf("%s%s would be both %s's %s and %s's %s", long.prefix, setting, short.name, rest+setting, long.name, setting)
			break
		}
	}
	msg := fmt.Sprintf("JARVIS_CLUSTERS=%q: clusters %s and %s cannot both be listed: the variables of %s (%s…) start like those of %s (%s…), "+
		"so one variable could be a setting of both (%s); rename %s so that it does not start with %q",
		list, a.name, b.name, long.name, long.prefix, short.name, short.prefix, example, long.name, short.name+"-")
	if fix := strings.ReplaceAll(long.name, "-", ""); clusterNameRE.MatchString(fix) && !slices.Contains(names, fix) {
		msg += fmt.Sprintf(" (e.g. %s)", fix)
	}
	return msg
}

// load reads and checks one cluster's settings. The simulated cluster of the
// demo needs no API or SSH settings.
func (cc *ClusterEnv) load(demo bool) []string {
	var problems []string
	opts := env.Options{}
	if cc.prefix != "" {
		opts = env.Options{Prefix: cc.prefix, TagName: "cluster"}
	}
	if err := env.ParseWithOptions(cc, opts); err != nil {
		_, problems = explainAll(err, cc.fieldVar)
	}
	v := cc.varName
	if cc.PVETokenSecretFile != "" {
		b, err := os.ReadFile(cc.PVETokenSecretFile)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: cannot read %s: %v", v("PVE_TOKEN_SECRET_FILE"), cc.PVETokenSecretFile, err))
		} else {
			cc.PVETokenSecret = strings.TrimRight(string(b), "\r\n")
		}
	}
	for _, id := range trimAll(cc.ProtectedVMIDs) {
		n, err := strconv.Atoi(id)
		if err != nil || !pveid.ValidVMID(n) {
			problems = append(problems, fmt.Sprintf("%s: %q is not a VMID (%d..%d)", v("JARVIS_PROTECTED_VMIDS"), id, pveid.MinVMID, pveid.MaxVMID))
			continue
		}
		cc.vmids = append(cc.vmids, n)
	}
	cc.ProtectedNodes = trimAll(cc.ProtectedNodes)
	cc.ProtectedServices = trimAll(cc.ProtectedServices)
	if cc.WakeMACs != "" {
		wake, err := tools.ParseWakeOnLAN(cc.WakeMACs, cc.WakeBroadcast)
		if err != nil {
			problems = append(problems, cc.renamed(err.Error(), "JARVIS_WOL_MACS", "JARVIS_WOL_BROADCAST"))
		}
		cc.wake = wake
	}
	if demo {
		return problems
	}

	nodes, errs := parseNodes(cc.Nodes, v("JARVIS_NODES"), 8006)
	problems = append(problems, errs...)
	if cc.Nodes == "" {
		problems = append(problems, v("JARVIS_NODES")+": list the cluster's nodes and where their APIs answer, e.g. pve=10.0.0.5,pve2=10.0.0.6:8006")
	}
	cc.nodeList = nodes
	if err := pve.CheckTokenID(cc.PVETokenID); err != nil {
		problems = append(problems, v("PVE_TOKEN_ID")+"="+err.Error())
	}
	if cc.PVETokenSecret == "" {
		problems = append(problems, fmt.Sprintf("%s (or %s): the API token's secret UUID is missing", v("PVE_TOKEN_SECRET"), v("PVE_TOKEN_SECRET_FILE")))
	}
	if cc.PVEInsecure && (cc.PVEFingerprint != "" || cc.PVECAFile != "") {
		problems = append(problems, fmt.Sprintf("%s=true cannot be combined with %s or %s; pin the certificate instead of switching checks off",
			v("PVE_INSECURE_TLS"), v("PVE_TLS_FINGERPRINT"), v("PVE_CA_FILE")))
	}
	problems = append(problems, checkTLSPins(cc.PVEFingerprint, cc.PVECAFile, v)...)
	if cc.SSHNodes != "" {
		sn, errs := parseNodes(cc.SSHNodes, v("SSH_NODES"), 22)
		problems = append(problems, errs...)
		cc.sshNodeList = sn
	} else {
		for _, n := range nodes {
			host, _, err := net.SplitHostPort(n.Host)
			if err != nil {
				host = n.Host
			}
			cc.sshNodeList = append(cc.sshNodeList, nodeAddr{Name: n.Name, Host: net.JoinHostPort(host, "22")})
		}
	}
	if cc.SSHKeyPath != "" && cc.SSHKnownHosts == "" {
		problems = append(problems, fmt.Sprintf("%s: required when %s is set; Jarvis never connects to a host whose key it cannot check (make it with ssh-keyscan and verify it)",
			v("SSH_KNOWN_HOSTS"), v("SSH_KEY_PATH")))
	}
	if cc.SSHKeyPath != "" {
		problems = append(problems, checkSSHFiles(cc.SSHKeyPath, cc.SSHKnownHosts, v)...)
	}
	return problems
}

// renamed is msg with the unprefixed variables named as this cluster's.
func (cc *ClusterEnv) renamed(msg string, legacy ...string) string {
	for _, name := range legacy {
		msg = strings.ReplaceAll(msg, name, cc.varName(name))
	}
	return msg
}

// unprefixedClusterVars names the cluster settings still set without a
// prefix while JARVIS_CLUSTERS names the clusters: Jarvis would not read
// them, and a protection that silently stopped applying is worse than a
// refusal to start. A value equal to the default (from a copied
// .env.example) is not counted.
func unprefixedClusterVars(list string) []string {
	var problems []string
	t := reflect.TypeFor[ClusterEnv]()
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("env")
		if name == "" {
			continue
		}
		if value := os.Getenv(name); value != "" && value != f.Tag.Get("envDefault") {
			problems = append(problems, fmt.Sprintf("%s is set, but JARVIS_CLUSTERS=%s reads each cluster's settings from JARVIS_CLUSTER_<NAME>_%s: move it to the cluster it belongs to, or unset it",
				name, list, f.Tag.Get("cluster")))
		}
	}
	return problems
}

// clusterSettings are the names of a cluster's settings after its prefix
// (NODES, PVE_TOKEN_ID, …), in the order of ClusterEnv.
func clusterSettings() []string {
	var settings []string
	t := reflect.TypeFor[ClusterEnv]()
	for i := range t.NumField() {
		if s := t.Field(i).Tag.Get("cluster"); s != "" {
			settings = append(settings, s)
		}
	}
	return settings
}

// strayClusterVars names the JARVIS_CLUSTER_… variables no cluster reads: a
// cluster not in JARVIS_CLUSTERS, or a misspelt setting (a protected VMID
// Jarvis never read would not be protected).
func strayClusterVars(list string, clusters []*ClusterEnv) []string {
	settings := clusterSettings()
	var problems []string
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "JARVIS_CLUSTER_") || name == "JARVIS_CLUSTER_NAME" || value == "" {
			continue
		}
		read := slices.ContainsFunc(clusters, func(c *ClusterEnv) bool {
			setting, ok := strings.CutPrefix(name, c.prefix)
			return ok && slices.Contains(settings, setting)
		})
		if read {
			continue
		}
		if list == "" {
			problems = append(problems, fmt.Sprintf("%s is set, but JARVIS_CLUSTERS is not: list the clusters (e.g. JARVIS_CLUSTERS=home,lab), or use the unprefixed variables for one cluster", name))
			continue
		}
		problems = append(problems, fmt.Sprintf("%s is not a setting of a cluster in JARVIS_CLUSTERS=%s: a cluster's settings are JARVIS_CLUSTER_<NAME>_ and one of %s",
			name, list, strings.Join(settings, ", ")))
	}
	slices.Sort(problems)
	return problems
}

// explainAll turns env's parse errors into one problem each, named by the
// variable varOf gives for a Go field, and the set of variables that could
// not be read at all.
func explainAll(err error, varOf func(field string) string) (map[string]bool, []string) {
	bad := map[string]bool{}
	var problems []string
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		agg.Errors = []error{err}
	}
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			// explainParseError finds a Config field's variable, and keeps a
			// name it does not know as it is.
			pe.Name = varOf(pe.Name)
			e = pe
		}
		name, problem := explainParseError(e)
		bad[name] = true
		problems = append(problems, problem)
	}
	return bad, problems
}
