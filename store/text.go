package store

import (
	"strings"
	"unicode/utf8"
)

// Text from outside Jarvis reaches the store: a remote command's stderr in
// an audit row's error, a guest's name in a plan, a client's tool name or
// approval id, an event's summary. SQLite keeps any bytes in a text column;
// PostgreSQL refuses a NUL byte and anything that is not UTF-8 (SQLSTATE
// 22021), which on it failed the row: a call's end row, or a whole batch of
// read rows. So every free-text field is made storable here, the same way on
// both engines, before an audit row is hashed: the chain holds and verifies
// the same text on either, and a log copied from one to the other keeps
// its hashes.
//
// Both become U+FFFD, the replacement character, rather than an escape such
// as "\0": it is what encoding/json already writes for bytes that are not
// UTF-8 (the console and the canonical arguments say the same), and it
// cannot be mistaken for text the source wrote, as a backslash and a zero,
// common enough in shell output, could.

// replacementChar stands for what could not be stored.
const replacementChar = "\uFFFD"

// cleanText is s with every NUL byte and every run of bytes that is not
// UTF-8 replaced by U+FFFD; s itself when there is none (nearly always, and
// then it costs one scan).
func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, replacementChar), "\x00", replacementChar)
}

// isCleanText reports whether s is stored as it is.
func isCleanText(s string) bool { return cleanText(s) == s }

// cleanFields makes every text field of an audit row storable. The row's
// hashes are not text from outside, and are set after this.
func (r *auditRecord) cleanFields() {
	for _, f := range []*string{&r.Kind, &r.Principal, &r.Tool, &r.Args, &r.Tier, &r.Decision, &r.Plan, &r.ApprovalID,
		&r.Status, &r.Error, &r.UPID, &r.Result, &r.Cluster} {
		*f = cleanText(*f)
	}
}
