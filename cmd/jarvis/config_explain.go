package main

// Turning configuration mistakes into lines a user can act on: each names the
// environment variable, echoes what was set (never a secret) and says what
// would be accepted.

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"golang.org/x/crypto/ssh"
)

// imageUID is the user the container image runs as (Dockerfile USER).
const imageUID = 65532

// envVarOf maps a Config field name to its environment variable.
func envVarOf(field string) string {
	f, ok := reflect.TypeFor[Config]().FieldByName(field)
	if !ok {
		return field
	}
	if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" {
		return name
	}
	return field
}

// secretVars are never echoed back, whatever is wrong with them.
// (JARVIS_DATABASE_URL usually holds a password: its own checks print
// redactedURL's form.)
var secretVars = map[string]bool{"JWT_SECRET": true, "JARVIS_PASSWORD": true, "PVE_TOKEN_SECRET": true, "JARVIS_DATABASE_URL": true}

// explainParseError turns one of env's parse errors (which name Go fields)
// into the variable's name and a line that says what to write instead.
func explainParseError(err error) (string, string) {
	var pe env.ParseError
	if !errors.As(err, &pe) {
		return "", err.Error()
	}
	name := envVarOf(pe.Name)
	value := os.Getenv(name)
	shownValue := fmt.Sprintf("%q", value)
	if secretVars[name] || strings.HasSuffix(name, "_PVE_TOKEN_SECRET") {
		shownValue = "(hidden)"
	}
	var want string
	switch pe.Type {
	case reflect.TypeFor[time.Duration]():
		if isDigits(value) {
			want = fmt.Sprintf("needs a unit, e.g. %sm for minutes or %ss for seconds", value, value)
		} else {
			want = "is not a duration; write a number with a unit, e.g. 90s, 10m or 1h"
		}
	case reflect.TypeFor[bool]():
		want = "use true or false"
	case reflect.TypeFor[int]():
		want = "must be a whole number"
	case reflect.TypeFor[float64]():
		want = "must be a number, e.g. 10 or 2.5"
	default:
		want = fmt.Sprintf("cannot be read as %s", pe.Type)
	}
	return name, fmt.Sprintf("%s=%s: %s", name, shownValue, want)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// shown is the value of a variable as the user wrote it, or the default in
// force when it is unset.
func shown(name string, v any) string {
	if raw, ok := os.LookupEnv(name); ok && raw != "" {
		return raw
	}
	if d, ok := v.(time.Duration); ok {
		return short(d)
	}
	return fmt.Sprint(v)
}

// short writes a duration as a person would: 10m, not 10m0s.
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// checkTLSPins checks the certificate settings can be used: a fingerprint of the
// right form, a CA file that can be read and holds a certificate. v names a
// cluster's variable (ClusterEnv.varName).
func checkTLSPins(fingerprints, caFile string, v func(string) string) []string {
	var problems []string
	for _, f := range strings.FieldsFunc(fingerprints, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' }) {
		b, err := hex.DecodeString(strings.ReplaceAll(f, ":", ""))
		if err != nil || len(b) != sha256.Size {
			problems = append(problems, fmt.Sprintf("%s=%q: not a SHA-256 fingerprint (64 hex digits, colons optional; the node's web UI shows it under Certificates)", v("PVE_TLS_FINGERPRINT"), f))
		}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		switch {
		case err != nil:
			problems = append(problems, v("PVE_CA_FILE")+"="+caFile+": "+fileProblem(err))
		case !x509.NewCertPool().AppendCertsFromPEM(pem):
			problems = append(problems, fmt.Sprintf("%s=%s: holds no PEM certificate (on a node it is /etc/pve/pve-root-ca.pem)", v("PVE_CA_FILE"), caFile))
		}
	}
	return problems
}

// checkSSHFiles checks the SSH key and known_hosts can be read by this process
// and the key can be used. Docker turns a missing file it should mount into a
// directory, and a 0600 key owned by the host user is unreadable in the image.
// v names a cluster's variable (ClusterEnv.varName).
func checkSSHFiles(keyPath, knownHosts string, v func(string) string) []string {
	var problems []string
	pem, err := os.ReadFile(keyPath)
	if err != nil {
		problems = append(problems, v("SSH_KEY_PATH")+"="+keyPath+": "+fileProblem(err))
	} else if _, err := ssh.ParsePrivateKey(pem); err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			problems = append(problems, v("SSH_KEY_PATH")+"="+keyPath+": the key is passphrase-protected; make an unencrypted key for Jarvis alone (ssh-keygen -t ed25519 -N '')")
		} else {
			problems = append(problems, v("SSH_KEY_PATH")+"="+keyPath+": not a private key Jarvis can read (want an OpenSSH or PEM private key)")
		}
	}
	if knownHosts != "" {
		if _, err := os.ReadFile(knownHosts); err != nil {
			problems = append(problems, v("SSH_KNOWN_HOSTS")+"="+knownHosts+": "+fileProblem(err))
		}
	}
	return problems
}

// fileProblem says why a file could not be read, and what usually fixes it.
func fileProblem(err error) string {
	var perr *fs.PathError
	if errors.As(err, &perr) {
		err = perr.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("this process (uid %d) may not read it; in the container image that is uid %d: sudo chown %d FILE (keep mode 0600)", os.Getuid(), imageUID, imageUID)
	case strings.Contains(err.Error(), "is a directory"):
		return "is a directory, not a file (Docker makes one when the file it should mount does not exist: create the file, or leave the variable unset)"
	}
	return err.Error()
}
