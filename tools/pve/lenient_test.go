package pve

import (
	"encoding/json"
	"testing"
)

func TestLenientDecoding(t *testing.T) {
	type row struct {
		B Bool `json:"b"`
		N Num  `json:"n"`
		I Int  `json:"i"`
	}
	cases := []struct {
		name    string
		in      string
		want    row
		wantErr bool
	}{
		{"pve integers", `{"b":1,"n":0.25,"i":42}`, row{true, 0.25, 42}, false},
		{"zero boolean", `{"b":0}`, row{}, false},
		{"json booleans", `{"b":true}`, row{B: true}, false},
		{"json false", `{"b":false}`, row{}, false},
		{"string booleans", `{"b":"1"}`, row{B: true}, false},
		{"string zero", `{"b":"0"}`, row{}, false},
		{"yes/no words", `{"b":"yes"}`, row{B: true}, false},
		{"numeric strings", `{"n":"0.75","i":"12"}`, row{N: 0.75, I: 12}, false},
		{"loadavg style", `{"n":" 1.25 "}`, row{N: 1.25}, false},
		{"float integer", `{"i":1.0e9}`, row{I: 1000000000}, false},
		{"float string integer", `{"i":"3.0"}`, row{I: 3}, false},
		{"nulls", `{"b":null,"n":null,"i":null}`, row{}, false},
		{"empty strings", `{"n":"","i":""}`, row{}, false},
		{"unknown fields ignored", `{"x":{"deep":[1,2]},"i":5}`, row{I: 5}, false},
		{"bad boolean", `{"b":"maybe"}`, row{}, true},
		{"bad number", `{"n":"fast"}`, row{}, true},
		{"bad integer", `{"i":"ten"}`, row{}, true},
		{"object for number", `{"n":{}}`, row{}, true},
		{"array for boolean", `{"b":[1]}`, row{}, true},
		{"NaN word", `{"n":"NaN"}`, row{}, true},
		{"infinity word", `{"n":"-Inf"}`, row{}, true},
		{"2^63 does not wrap", `{"i":9223372036854775808}`, row{}, true},
		{"2^63 as float does not wrap", `{"i":9.223372036854775808e18}`, row{}, true},
		{"max int64", `{"i":9223372036854775807}`, row{I: 9223372036854775807}, false},
		{"min int64", `{"i":-9223372036854775808}`, row{I: -9223372036854775808}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got row
			err := json.Unmarshal([]byte(tc.in), &got)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Unmarshal(%s) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.want {
				t.Fatalf("Unmarshal(%s) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestLenientMarshalsPlainJSON(t *testing.T) {
	out, err := json.Marshal(struct {
		B Bool
		N Num
		I Int
	}{true, 0.5, 7})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), `{"B":true,"N":0.5,"I":7}`; got != want {
		t.Fatalf("Marshal = %s, want %s", got, want)
	}
}

func TestParseUPID(t *testing.T) {
	cases := []struct {
		in      string
		wantErr bool
		node    string
		typ, id string
		user    string
		pid     int64
		start   int64
	}{
		{in: "UPID:pve:000B2F5A:0354A1E2:6745C2D1:qmstart:101:root@pam:", node: "pve", typ: "qmstart", id: "101", user: "root@pam", pid: 0xB2F5A, start: 0x6745C2D1},
		{in: "UPID:agent1:0002F393:0A54A1E2F:6745C2D1:vzdump::jarvis@pve!mcp:", node: "agent1", typ: "vzdump", id: "", user: "jarvis@pve!mcp", pid: 0x2F393, start: 0x6745C2D1},
		{in: "UPID:pve:0002F393:0354A1E2:6745C2D1:qmstart:101:root@pam", wantErr: true}, // no trailing colon
		{in: "UPID:pve:2F393:0354A1E2:6745C2D1:qmstart:101:root@pam:", wantErr: true},   // short pid
		{in: "task-42", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range cases {
		u, err := ParseUPID(tc.in)
		if (err != nil) != tc.wantErr {
			t.Fatalf("ParseUPID(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
		}
		if tc.wantErr {
			continue
		}
		if u.Node != tc.node || u.Type != tc.typ || u.ID != tc.id || u.User != tc.user || u.PID != tc.pid || u.StartTime.Unix() != tc.start {
			t.Fatalf("ParseUPID(%q) = %+v", tc.in, u)
		}
	}
}
