package safety

import (
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// Len reports how many buckets are held (for tests and metrics).
func (r *RateLimiter) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.buckets)
}

func TestRateLimiterBurstRefusalAndRefill(t *testing.T) {
	r := NewRateLimiter(RateLimits{})
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 3; i++ {
		if ok, _ := r.Allow("agent:a", Red, now); !ok {
			t.Fatalf("red call %d within burst refused", i+1)
		}
	}
	ok, retry := r.Allow("agent:a", Red, now)
	if ok || retry <= 0 {
		t.Fatalf("4th red call = %v, retryAfter %v; want refusal with a positive wait", ok, retry)
	}
	if retry > 6*time.Second {
		t.Errorf("retryAfter %v, want at most 6s at 10/min", retry)
	}
	// Refused calls must not consume tokens: after retryAfter one call passes.
	if ok, _ := r.Allow("agent:a", Red, now.Add(retry)); !ok {
		t.Fatal("call after retryAfter refused")
	}
	if ok, _ := r.Allow("agent:a", Red, now.Add(retry)); ok {
		t.Fatal("second call right after refill allowed")
	}

	for i := 0; i < 10; i++ {
		if ok, _ := r.Allow("agent:a", Yellow, now); !ok {
			t.Fatalf("yellow call %d within burst refused", i+1)
		}
	}
	if ok, retry := r.Allow("agent:a", Yellow, now); ok || retry <= 0 || retry > 2*time.Second {
		t.Fatalf("11th yellow call = %v, %v", ok, retry)
	}
	if ok, _ := r.Allow("agent:a", Yellow, now.Add(time.Minute)); !ok {
		t.Fatal("yellow bucket did not refill after a minute")
	}
}

func TestRateLimiterGreenUnlimitedAndIsolation(t *testing.T) {
	r := NewRateLimiter(RateLimits{Red: rate.Every(time.Hour), RedBurst: 1})
	now := time.Now()
	for i := 0; i < 1000; i++ {
		if ok, _ := r.Allow("agent:a", Green, now); !ok {
			t.Fatal("green call limited")
		}
	}
	if ok, _ := r.Allow("agent:a", Red, now); !ok {
		t.Fatal("first red call refused")
	}
	if ok, _ := r.Allow("agent:a", Red, now); ok {
		t.Fatal("custom burst of 1 not applied")
	}
	if ok, _ := r.Allow("agent:b", Red, now); !ok {
		t.Fatal("another principal was limited by agent:a's calls")
	}
	if ok, _ := r.Allow("agent:a", Yellow, now); !ok {
		t.Fatal("yellow bucket shared with red")
	}
	if ok, _ := r.Allow("agent:a", Black, now); !ok {
		t.Fatal("black tier uses its own red-strength bucket; the first call should pass")
	}
}

func TestRateLimiterBoundedMemory(t *testing.T) {
	r := NewRateLimiter(RateLimits{})
	r.max = 10
	now := time.Now()
	for i := 0; i < 50; i++ {
		r.Allow(string(rune('a'+i)), Yellow, now)
		if r.Len() > 10 {
			t.Fatalf("holds %d buckets, cap 10", r.Len())
		}
	}
	// Buckets that refilled are dropped first; a drained one survives.
	for i := 0; i < 10; i++ {
		r.Allow("busy", Yellow, now.Add(time.Second))
	}
	later := now.Add(3 * time.Second) // the others refilled (2s per token); busy has not
	for i := 0; i < 9; i++ {
		r.Allow(string(rune('A'+i)), Yellow, later)
	}
	if _, kept := r.buckets[bucketKey{"busy", Yellow}]; !kept {
		t.Error("the drained bucket was evicted, which would reset its limit")
	}
	if r.Len() > 10 {
		t.Errorf("holds %d buckets, cap 10", r.Len())
	}
}
