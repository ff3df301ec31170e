package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

var _ store.Leaser = (*Store)(nil)

// The store's clock for leases and heartbeats is the real one: replicas
// of a test share the store, as they would share PostgreSQL's clock.

// ClaimJob implements store.Leaser.
func (s *Store) ClaimJob(ctx context.Context, id, replica string, ttl time.Duration) (store.Lease, error) {
	if err := s.lock(ctx); err != nil {
		return store.Lease{}, err
	}
	defer s.unlock()
	if _, ok := s.jobs[id]; !ok {
		return store.Lease{}, store.ErrNotFound
	}
	now := time.Now()
	cur, held := s.leases[id]
	switch {
	case held && cur.Replica == replica && cur.Expires.After(now):
		// renewal: same epoch
	case held && cur.Expires.After(now):
		return store.Lease{}, store.ErrLeaseLost
	default:
		cur = store.Lease{JobID: id, Replica: replica, Epoch: cur.Epoch + 1, Cancel: cur.Cancel}
	}
	cur.Expires = now.Add(ttl)
	s.leases[id] = cur
	return cur, nil
}

// ReleaseJob implements store.Leaser.
func (s *Store) ReleaseJob(ctx context.Context, l store.Lease) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	if cur, ok := s.leases[l.JobID]; ok && cur.Epoch == l.Epoch && cur.Replica == l.Replica {
		cur.Expires = time.Time{} // expired: the epoch stays, the next holder's is one more
		s.leases[l.JobID] = cur
	}
	return nil
}

// RequestCancel implements store.Leaser.
func (s *Store) RequestCancel(ctx context.Context, id string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	if _, ok := s.jobs[id]; !ok {
		return store.ErrNotFound
	}
	l := s.leases[id]
	l.JobID, l.Cancel = id, true
	s.leases[id] = l
	return nil
}

// Heartbeat implements store.Leaser.
func (s *Store) Heartbeat(ctx context.Context, replica, endpoint string, ttl time.Duration) ([]store.Replica, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	now := time.Now()
	s.replicas[replica] = store.Replica{ID: replica, Endpoint: endpoint, Seen: now}
	var live []store.Replica
	for _, r := range s.replicas {
		if now.Sub(r.Seen) <= ttl {
			live = append(live, r)
		}
	}
	slices.SortFunc(live, func(a, b store.Replica) int { return cmp.Compare(a.ID, b.ID) })
	return live, nil
}

// fenced checks, with the store taken, that every lease ctx carries for
// the jobs a write touches is still the job's current, unexpired lease.
func (s *Store) fenced(ctx context.Context, jobs []*hub.Job, recs []*hub.DeviceJob) error {
	check := func(id string) error {
		l, ok := store.LeaseOf(ctx, id)
		if !ok {
			return nil
		}
		cur := s.leases[id]
		if cur.Epoch != l.Epoch || cur.Replica != l.Replica || !cur.Expires.After(time.Now()) {
			return fmt.Errorf("job %q, epoch %d: %w", id, l.Epoch, store.ErrLeaseLost)
		}
		return nil
	}
	for _, j := range jobs {
		if err := check(j.JobID); err != nil {
			return err
		}
	}
	for _, r := range recs {
		if err := check(r.JobID); err != nil {
			return err
		}
	}
	return nil
}
