package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BaseURL is the server and database tests use.
func BaseURL() string {
	if u := os.Getenv("IOTJOBS_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test"
}

var reach = sync.OnceValue(func() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, BaseURL())
	if err != nil {
		return err
	}
	return c.Close(ctx)
})

// Admin connects to the test database for setup, or skips tb (fails it
// under IOTJOBS_REQUIRE_POSTGRES) when there is no server.
func Admin(tb testing.TB) *pgx.Conn {
	tb.Helper()
	if err := reach(); err != nil {
		if os.Getenv("IOTJOBS_REQUIRE_POSTGRES") != "" {
			tb.Fatalf("PostgreSQL at %s is not reachable: %v (IOTJOBS_REQUIRE_POSTGRES is set, so this fails instead of skipping)", BaseURL(), err)
		}
		tb.Skipf("PostgreSQL at %s is not reachable, skipping: %v (set IOTJOBS_POSTGRES_URL to use another server)", BaseURL(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, BaseURL())
	if err != nil {
		tb.Fatalf("connect to %s: %v", BaseURL(), err)
	}
	return c
}

// Schema creates a schema with a random name, dropped when tb ends, and
// returns its name and the URL whose search_path is it.
func Schema(tb testing.TB) (name, u string) {
	tb.Helper()
	c := Admin(tb)
	ctx := context.Background()
	defer c.Close(ctx)
	b := make([]byte, 8)
	rand.Read(b)
	name = "iotjobs_test_" + hex.EncodeToString(b)
	if _, err := c.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		c := Admin(tb)
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", name, err)
		}
	})
	pu, err := url.Parse(BaseURL())
	if err != nil {
		tb.Fatal(err)
	}
	v := pu.Query()
	v.Set("search_path", name)
	pu.RawQuery = v.Encode()
	return name, pu.String()
}
