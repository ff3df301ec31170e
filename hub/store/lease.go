package store

import (
	"context"
	"errors"
	"time"
)

// Several hub processes (replicas) may share one store (PostgreSQL). Each
// job is then run by exactly one replica at a time, the holder of the
// job's lease; the lease expires unless its holder renews it, and
// another replica takes the job over after that. Every takeover starts a
// new epoch, and every write a replica makes for a job carries the lease
// it holds: the store refuses it (ErrLeaseLost) unless that lease is
// still the job's current one and unexpired. So a replica that was cut
// off, paused or slow, and lost its lease meanwhile, cannot write for the
// job any more, even if it does not know yet (fencing). Expiry is judged
// by the store's clock, not the replicas'.

// ErrLeaseLost is the error of a claim on a job another replica holds,
// and of a write under a lease that is no longer the job's (expired, or
// taken over since).
var ErrLeaseLost = errors.New("the job's lease is held by another replica")

// Lease is a replica's hold on running a job.
type Lease struct {
	JobID   string
	Replica string
	// Epoch counts the job's holders: each takeover increments it.
	Epoch int64
	// Expires is when the lease ends unless renewed, by the store's
	// clock.
	Expires time.Time
	// Cancel says that a cancel of the job was asked for (RequestCancel),
	// through whichever replica: its holder cancels the job when it
	// sees it. It survives takeovers.
	Cancel bool
}

// Replica is a hub process sharing the store, as it last reported itself.
type Replica struct {
	ID       string
	Endpoint string    // where its REST API is, for operators
	Seen     time.Time // its last heartbeat, by the store's clock
}

// Leaser is implemented by stores that several replicas may share.
type Leaser interface {
	// ClaimJob gives replica the lease on job id until ttl from now: a
	// new epoch when nobody holds it or its holder's lease has expired,
	// the same epoch (renewed) when replica holds it already. A job held
	// by another replica whose lease has not expired is ErrLeaseLost; a
	// job that is not stored is ErrNotFound.
	ClaimJob(ctx context.Context, id, replica string, ttl time.Duration) (Lease, error)
	// ReleaseJob ends l at once, so that another replica need not wait
	// for it to expire; a lease that is no longer the job's is left
	// alone.
	ReleaseJob(ctx context.Context, l Lease) error
	// RequestCancel asks the job's holder, or its next one, to cancel
	// it: the next ClaimJob of the job says Cancel. A job that is not
	// stored is ErrNotFound.
	RequestCancel(ctx context.Context, id string) error
	// Heartbeat records that replica is alive (with its endpoint) and
	// returns the replicas seen within ttl, itself included, in id order.
	Heartbeat(ctx context.Context, replica, endpoint string, ttl time.Duration) ([]Replica, error)
}

type leaseKey struct{}

// WithLease returns ctx carrying the leases a write is made under: a
// Leaser store refuses, with ErrLeaseLost, a write of a job's records or
// snapshot under a context that carries a lease of that job which is no
// longer current. Writes for jobs without a lease in ctx are not fenced.
func WithLease(ctx context.Context, leases ...Lease) context.Context {
	m := map[string]Lease{}
	if prev, ok := ctx.Value(leaseKey{}).(map[string]Lease); ok {
		for k, v := range prev {
			m[k] = v
		}
	}
	for _, l := range leases {
		m[l.JobID] = l
	}
	return context.WithValue(ctx, leaseKey{}, m)
}

// LeaseOf returns the lease ctx carries for job id.
func LeaseOf(ctx context.Context, id string) (Lease, bool) {
	m, _ := ctx.Value(leaseKey{}).(map[string]Lease)
	l, ok := m[id]
	return l, ok
}
