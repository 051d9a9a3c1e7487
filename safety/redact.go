package safety

import (
	"regexp"
	"strings"
)

// Redacted replaces secret values in logs, audit rows and events.
const Redacted = "[redacted]"

// secretKeyWords mark an argument name as holding a secret.
var secretKeyWords = []string{"password", "passwd", "secret", "token", "key", "passphrase", "credential", "private"}

// isSecretKey reports whether an argument name suggests a secret value.
func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range secretKeyWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// RedactArgs returns a copy of args with the values of secret-looking keys
// (at any depth) replaced by "[redacted]". The input is not modified.
func RedactArgs(args map[string]any) map[string]any {
	if args == nil {
		return nil
	}
	out := make(map[string]any, len(args))
	for k, v := range args {
		if isSecretKey(k) {
			out[k] = Redacted
			continue
		}
		if cmd, ok := v.(string); ok && strings.EqualFold(k, "command") {
			out[k] = RedactCommand(cmd)
			continue
		}
		if s, ok := v.(string); ok && strings.Contains(s, "://") {
			out[k] = RedactURL(s)
			continue
		}
		out[k] = redactValue(v)
	}
	return out
}

var (
	// --password=x, -p x is too ambiguous; names that say what they hold are not.
	secretOption = regexp.MustCompile(`(?i)(--?[a-z0-9_-]*(?:pass(?:word|wd|phrase)?|token|secret|api[_-]?key|credential)[a-z0-9_-]*)(=|\s+)([^\s'"]+|'[^']*'|"[^"]*")`)
	// NAME=value where the name says it is a secret.
	secretAssign = regexp.MustCompile(`(?i)\b([a-z0-9_]*(?:pass(?:word|wd)?|token|secret|api[_-]?key)[a-z0-9_]*)=([^\s'"]+|'[^']*'|"[^"]*")`)
	// scheme://user:password@host
	urlPassword = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+@`)
	// A URL's query parameter whose name says it holds a credential: signed
	// download links (X-Amz-Signature, X-Amz-Credential, token=, key=).
	urlQuerySecret = regexp.MustCompile(`(?i)([?&][a-z0-9_.-]*(?:token|sig|secret|pass|key|auth|credential)[a-z0-9_.-]*=)[^&#\s'"]+`)
)

// RedactURL hides the credentials a URL may carry: a password in it, and the
// values of query parameters whose names say they hold one. Anything that is
// not such a credential is left as it is.
func RedactURL(s string) string {
	s = urlPassword.ReplaceAllString(s, "${1}"+Redacted+"@")
	return urlQuerySecret.ReplaceAllString(s, "${1}"+Redacted)
}

// RedactCommand hides credentials written into a shell command (option values
// and assignments whose names say they are secrets, passwords in URLs), so a
// command can be shown in plans, audit rows and events.
func RedactCommand(cmd string) string {
	cmd = secretOption.ReplaceAllString(cmd, "${1}${2}"+Redacted)
	cmd = secretAssign.ReplaceAllString(cmd, "${1}="+Redacted)
	return RedactURL(cmd)
}

func redactValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return RedactArgs(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = redactValue(e)
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, s := range x {
			if isSecretKey(k) {
				out[k] = Redacted
			} else {
				out[k] = s
			}
		}
		return out
	}
	return v
}
