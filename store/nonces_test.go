package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSpendNonceOnceAcrossHandles(t *testing.T) {
	a, path := openTemp(t)
	b, err := openStore(path, Options{AuditKey: a.auditKey})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	var wg sync.WaitGroup
	var fresh atomic.Int32
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := a
			if i%2 == 1 {
				st = b
			}
			err := st.SpendNonce(ctx, "n1", exp)
			switch {
			case err == nil:
				fresh.Add(1)
			case !errors.Is(err, ErrAlreadyConsumed):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if fresh.Load() != 1 {
		t.Fatalf("nonce spent %d times", fresh.Load())
	}
	// Once expired it is forgotten, and the table does not grow without bound.
	if err := a.SpendNonce(ctx, "old", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := a.SpendNonce(ctx, "n2", exp); err != nil {
		t.Fatal(err)
	}
	var n int64
	a.db.Model(&spentNonceRecord{}).Where("nonce = ?", "old").Count(&n)
	if n != 0 {
		t.Fatal("expired nonce kept")
	}
}
