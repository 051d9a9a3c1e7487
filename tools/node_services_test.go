package tools

import "testing"

func TestUnitRule(t *testing.T) {
	for _, c := range []struct {
		unit string
		ok   bool
	}{{"pveproxy", true}, {"pveproxy.service", true}, {"getty@tty1.service", true}, {"-H", false}, {"a b", false}, {"x;y", false}, {"$(id)", false}} {
		if unitRE.MatchString(c.unit) != c.ok {
			t.Errorf("unit %q accepted=%t", c.unit, !c.ok)
		}
	}
}
