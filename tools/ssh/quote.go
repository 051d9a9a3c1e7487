package sshexec

import "strings"

// Quote returns s as one POSIX shell word that the shell reads back as exactly
// s, whatever bytes it holds (quotes, $(…), backticks, newlines, non-UTF-8).
//
// Words made only of characters that no shell treats specially are returned
// as they are, so audit logs stay readable ("systemctl status pveproxy");
// everything else is wrapped in single quotes, with each embedded ' written as
// '"'"' (close quote, a double-quoted ', reopen). The empty string becomes ”.
//
// A NUL byte cannot be passed in a command line at all (exec truncates there);
// callers must reject such input before building a command.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if isPlainWord(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// Command joins argv into one shell command line, quoting every argument, so
// the remote shell runs exactly argv and nothing an argument smuggles in.
func Command(argv ...string) string {
	words := make([]string, len(argv))
	for i, arg := range argv {
		words[i] = Quote(arg)
	}
	return strings.Join(words, " ")
}

// isPlainWord reports whether every byte of s is one the shell leaves alone in
// any position. '=' is excluded (a leading NAME=value is an assignment) and so
// is '~' (tilde expansion).
func isPlainWord(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-_./:,@%+", c) >= 0:
		default:
			return false
		}
	}
	return true
}
