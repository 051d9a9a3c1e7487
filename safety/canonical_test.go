package safety

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCanonicalArgs(t *testing.T) {
	var fromJSON map[string]any
	dec := json.NewDecoder(strings.NewReader(`{"vmid": 101.0, "node": "pve", "opts": {"z": [1, 2.50, {"b": true, "a": null}], "a": "x<y>"}, "approval_id": "ap-1"}`))
	dec.UseNumber()
	if err := dec.Decode(&fromJSON); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args map[string]any
	}{
		{"json numbers", fromJSON},
		{"go values, other order", map[string]any{
			"opts": map[string]any{"a": "x<y>", "z": []any{int64(1), 2.5, map[string]any{"a": nil, "b": true}}},
			"node": "pve", "vmid": 101,
		}},
		{"float64 from plain Unmarshal", map[string]any{"node": "pve", "vmid": float64(101),
			"opts": map[string]any{"z": []any{float64(1), float64(2.5), map[string]any{"b": true, "a": nil}}, "a": "x<y>"}}},
	}
	const want = `{"node":"pve","opts":{"a":"x<y>","z":[1,2.5,{"a":null,"b":true}]},"vmid":101}`
	for _, tc := range tests {
		got, err := CanonicalArgs(tc.args)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != want {
			t.Errorf("%s: CanonicalArgs = %s, want %s", tc.name, got, want)
		}
	}
	for i := 0; i < 20; i++ { // map iteration order must not leak into the result
		got, _ := CanonicalArgs(map[string]any{"c": 1, "b": 2, "a": 3, "d": map[string]any{"y": 1, "x": 2}})
		if got != `{"a":3,"b":2,"c":1,"d":{"x":2,"y":1}}` {
			t.Fatalf("unstable: %s", got)
		}
	}
	big, _ := CanonicalArgs(map[string]any{"n": json.Number("12345678901234567890123")})
	if big != `{"n":12345678901234567890123}` {
		t.Errorf("big integer = %s", big)
	}
	nested, _ := CanonicalArgs(map[string]any{"x": map[string]any{"approval_id": "kept"}, "approval_id": "dropped"})
	if nested != `{"x":{"approval_id":"kept"}}` {
		t.Errorf("approval_id handling = %s, want only the top-level one dropped", nested)
	}
	empty, err := CanonicalArgs(nil)
	if err != nil || empty != "{}" {
		t.Errorf("CanonicalArgs(nil) = %q, %v", empty, err)
	}
	if _, err := CanonicalArgs(map[string]any{"bad": make(chan int)}); err == nil {
		t.Error("unencodable value accepted")
	}
}
