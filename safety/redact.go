package safety

import "strings"

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
		out[k] = redactValue(v)
	}
	return out
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
