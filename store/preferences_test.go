package store

import (
	"context"
	"maps"
	"testing"
)

func TestPreferences(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)

	if _, ok, err := s.GetPreference(ctx, "missing"); err != nil || ok {
		t.Fatalf("GetPreference(missing) ok=%v err=%v, want false, nil", ok, err)
	}
	steps := []struct{ key, value string }{
		{"theme", "dark"},
		{"feed.filter", `{"type":"alert"}`},
		{"theme", "light"}, // upsert replaces
		{"empty", ""},
	}
	for _, st := range steps {
		if err := s.SetPreference(ctx, st.key, st.value); err != nil {
			t.Fatalf("SetPreference(%q): %v", st.key, err)
		}
		if v, ok, err := s.GetPreference(ctx, st.key); err != nil || !ok || v != st.value {
			t.Fatalf("GetPreference(%q) = %q, %v, %v; want %q", st.key, v, ok, err, st.value)
		}
	}
	got, err := s.ListPreferences(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"theme": "light", "feed.filter": `{"type":"alert"}`, "empty": ""}
	if !maps.Equal(got, want) {
		t.Errorf("ListPreferences = %v, want %v", got, want)
	}
	if err := s.SetPreference(ctx, "", "x"); err == nil {
		t.Error("SetPreference with an empty key succeeded")
	}
}
