package postgres

import (
	"context"
	"os"
	"testing"
)

// Dev mode's throwaway cluster starts from the machine's binaries, answers,
// and leaves nothing behind when stopped.
func TestLocalCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, err := StartLocal(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := Connect(ctx, l.URL())
	if err != nil {
		_ = l.Stop()
		t.Fatal(err)
	}
	var one int
	err = pool.QueryRow(ctx, "SELECT 1").Scan(&one)
	pool.Close()
	if err != nil || one != 1 {
		t.Errorf("SELECT 1 = %d, %v", one, err)
	}
	if err := l.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(l.dir); !os.IsNotExist(err) {
		t.Errorf("data dir %s left behind", l.dir)
	}
	if _, err := Connect(ctx, l.URL()); err == nil {
		t.Error("server still answers after Stop")
	}
}
