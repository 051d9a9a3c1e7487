package safety

// Canonical JSON for tool arguments: the one spelling that approvals and
// confirmation states bind to.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
)

// approvalArg is the argument that carries an approval id; it is not part of
// what is approved (the retry adds it), so canonical form leaves it out.
const approvalArg = "approval_id"

// CanonicalArgs renders tool arguments as canonical JSON: keys sorted at every
// level, numbers in one stable form (1, 1.0 and json.Number("1") agree), no
// HTML escaping, and the top-level "approval_id" left out. Approvals and
// confirmation states bind to this string, so equal arguments must render
// equally however they were decoded.
func CanonicalArgs(args map[string]any) (string, error) {
	trimmed := make(map[string]any, len(args))
	for k, v := range args {
		if k != approvalArg {
			trimmed[k] = v
		}
	}
	// A JSON round trip turns structs, typed slices and maps into the generic
	// tree, with numbers kept as their exact text.
	raw, err := json.Marshal(trimmed)
	if err != nil {
		return "", fmt.Errorf("canonical arguments: cannot encode the arguments as JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return "", fmt.Errorf("canonical arguments: cannot decode the arguments back: %w", err)
	}
	var buf bytes.Buffer
	if err := writeCanonical(&buf, tree); err != nil {
		return "", fmt.Errorf("canonical arguments: %w", err)
	}
	return buf.String(), nil
}

func writeCanonical(buf *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(x))
	case string:
		writeJSONString(buf, x)
	case json.Number:
		n, err := canonicalNumber(string(x))
		if err != nil {
			return err
		}
		buf.WriteString(n)
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeCanonical(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeJSONString(buf, k)
			buf.WriteByte(':')
			if err := writeCanonical(buf, x[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		return fmt.Errorf("unexpected value of type %T", v)
	}
	return nil
}

func writeJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // encoding a string cannot fail
	buf.Truncate(buf.Len() - 1)
}

var integerLiteral = regexp.MustCompile(`^-?[0-9]+$`)

// canonicalNumber gives every JSON number one spelling: integral values as
// plain integers of any size, others in Go's shortest float form.
func canonicalNumber(s string) (string, error) {
	if integerLiteral.MatchString(s) {
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return "", fmt.Errorf("number %q is not a valid integer", s)
		}
		return n.String(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("number %q cannot be represented exactly enough to be approved", s)
	}
	if f == math.Trunc(f) {
		i, _ := new(big.Float).SetFloat64(f).Int(nil)
		return i.String(), nil
	}
	return strconv.FormatFloat(f, 'g', -1, 64), nil
}
