package pve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// PVE is loose with JSON types: booleans arrive as 0/1 (sometimes as strings),
// and some numbers arrive as strings ("loadavg", "mhz"). These types accept
// every form seen in the wild and marshal back to plain JSON bools and numbers.

// Bool decodes 0/1, true/false and their string forms ("0", "1", "yes", "on").
type Bool bool

// UnmarshalJSON implements json.Unmarshaler.
func (b *Bool) UnmarshalJSON(data []byte) error {
	s, isNull, err := scalarText(data)
	if err != nil || isNull {
		return err
	}
	switch strings.ToLower(s) {
	case "1", "true", "yes", "on":
		*b = true
	case "0", "false", "no", "off", "":
		*b = false
	default:
		f, perr := strconv.ParseFloat(s, 64)
		if perr != nil {
			return fmt.Errorf("pve: cannot read %s as a boolean", truncate(data))
		}
		*b = f != 0
	}
	return nil
}

// Num decodes a JSON number or a numeric string; "" and null read as 0.
type Num float64

// UnmarshalJSON implements json.Unmarshaler.
func (n *Num) UnmarshalJSON(data []byte) error {
	s, isNull, err := scalarText(data)
	if err != nil || isNull {
		return err
	}
	if s == "" {
		*n = 0
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	// NaN and infinities (which ParseFloat accepts as words) cannot be encoded
	// back to JSON and would break a whole tool result.
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("pve: cannot read %s as a number", truncate(data))
	}
	*n = Num(f)
	return nil
}

// Int decodes a JSON integer, a float with no fraction, or a numeric string.
type Int int64

// UnmarshalJSON implements json.Unmarshaler.
func (i *Int) UnmarshalJSON(data []byte) error {
	s, isNull, err := scalarText(data)
	if err != nil || isNull {
		return err
	}
	if s == "" {
		*i = 0
		return nil
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		*i = Int(v)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	// float64(MaxInt64) rounds up to 2^63, which does not fit: compare with >=.
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || f >= 9.223372036854775807e18 || f < -9.223372036854775808e18 {
		return fmt.Errorf("pve: cannot read %s as an integer", truncate(data))
	}
	// Some counters come as floats (e.g. 1.0e9); keep the whole part.
	*i = Int(math.Trunc(f))
	return nil
}

// scalarText returns the text of a JSON scalar: a string's contents, or the
// literal of a number/boolean. Objects and arrays are an error.
func scalarText(data []byte) (text string, isNull bool, err error) {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0 || string(data) == "null":
		return "", true, nil
	case data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return "", false, fmt.Errorf("pve: bad JSON string %s: %w", truncate(data), err)
		}
		return strings.TrimSpace(s), false, nil
	case data[0] == '{' || data[0] == '[':
		return "", false, fmt.Errorf("pve: expected a scalar, got %s", truncate(data))
	default:
		return string(data), false, nil
	}
}

func truncate(data []byte) string {
	const max = 40
	if len(data) > max {
		return string(data[:max]) + "…"
	}
	return string(data)
}
