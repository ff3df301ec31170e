package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

var _ store.Leaser = (*Store)(nil)

// Leases are judged by the server's clock (now()), never a replica's.

// claimSQL takes a free or expired lease (a new epoch) or renews the
// caller's own (the same epoch), in one statement: ON CONFLICT locks the
// row, so of replicas claiming at once exactly one gets it.
const claimSQL = `INSERT INTO job_leases (job_id, replica, epoch, expires)
	SELECT id, $2, 1, now() + $3 * interval '1 microsecond' FROM jobs WHERE id = $1
	ON CONFLICT (job_id) DO UPDATE SET
		epoch = CASE WHEN job_leases.replica = excluded.replica AND job_leases.expires > now()
			THEN job_leases.epoch ELSE job_leases.epoch + 1 END,
		replica = excluded.replica,
		expires = excluded.expires
	WHERE job_leases.expires <= now() OR job_leases.replica = excluded.replica
	RETURNING epoch, expires, cancel`

// ClaimJob implements store.Leaser.
func (s *Store) ClaimJob(ctx context.Context, id, replica string, ttl time.Duration) (store.Lease, error) {
	if !storable(id) {
		return store.Lease{}, store.ErrNotFound
	}
	l := store.Lease{JobID: id, Replica: replica}
	err := s.pool.QueryRow(ctx, claimSQL, id, replica, ttl.Microseconds()).Scan(&l.Epoch, &l.Expires, &l.Cancel)
	if errors.Is(err, pgx.ErrNoRows) {
		// Either no such job, or another replica holds it.
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)`, id).Scan(&exists); err != nil {
			return store.Lease{}, ctxErr(ctx, err)
		}
		if !exists {
			return store.Lease{}, store.ErrNotFound
		}
		return store.Lease{}, store.ErrLeaseLost
	}
	if err != nil {
		return store.Lease{}, ctxErr(ctx, err)
	}
	return l, nil
}

// ReleaseJob implements store.Leaser.
func (s *Store) ReleaseJob(ctx context.Context, l store.Lease) error {
	_, err := s.pool.Exec(ctx, `UPDATE job_leases SET expires = '-infinity' WHERE job_id = $1 AND replica = $2 AND epoch = $3`,
		l.JobID, l.Replica, l.Epoch)
	return ctxErr(ctx, err)
}

// RequestCancel implements store.Leaser.
func (s *Store) RequestCancel(ctx context.Context, id string) error {
	if !storable(id) {
		return store.ErrNotFound
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO job_leases (job_id, cancel) SELECT id, true FROM jobs WHERE id = $1
		ON CONFLICT (job_id) DO UPDATE SET cancel = true`, id)
	if err != nil {
		return ctxErr(ctx, err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// Heartbeat implements store.Leaser.
func (s *Store) Heartbeat(ctx context.Context, replica, endpoint string, ttl time.Duration) ([]store.Replica, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO replicas (id, endpoint, seen) VALUES ($1, $2, now())
		ON CONFLICT (id) DO UPDATE SET endpoint = excluded.endpoint, seen = excluded.seen`, replica, endpoint); err != nil {
		return nil, ctxErr(ctx, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, endpoint, seen FROM replicas WHERE seen > now() - $1 * interval '1 microsecond' ORDER BY id`, ttl.Microseconds())
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	defer rows.Close()
	var live []store.Replica
	for rows.Next() {
		var r store.Replica
		if err := rows.Scan(&r.ID, &r.Endpoint, &r.Seen); err != nil {
			return nil, ctxErr(ctx, err)
		}
		live = append(live, r)
	}
	return live, ctxErr(ctx, rows.Err())
}

// fenceSQL returns the jobs among the given leases whose lease is still
// current, and share-locks them: a takeover (which updates the row) waits
// until the write that checked it has committed.
const fenceSQL = `SELECT l.job_id FROM job_leases l
	JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS u(j, r, e) ON l.job_id = u.j
	WHERE l.replica = u.r AND l.epoch = u.e AND l.expires > now()
	FOR SHARE OF l`

// fence checks, inside tx, the leases ctx carries for the given jobs,
// and returns the jobs whose lease is lost (none when ctx carries no
// lease of them).
func fence(ctx context.Context, tx pgx.Tx, jobIDs []string) (map[string]bool, error) {
	var ids, replicas []string
	var epochs []int64
	seen := map[string]bool{}
	for _, id := range jobIDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		if l, ok := store.LeaseOf(ctx, id); ok {
			ids, replicas, epochs = append(ids, id), append(replicas, l.Replica), append(epochs, l.Epoch)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, fenceSQL, ids, replicas, epochs)
	if err != nil {
		return nil, err
	}
	held := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		held[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	lost := map[string]bool{}
	for _, id := range ids {
		if !held[id] {
			lost[id] = true
		}
	}
	return lost, nil
}

// lostErr is the error of a write fenced off for job id.
func lostErr(id string) error {
	return fmt.Errorf("job %q: %w", id, store.ErrLeaseLost)
}

// recJobs are the jobs of records.
func recJobs(recs []*hub.DeviceJob) []string {
	ids := make([]string, 0, len(recs))
	for _, r := range recs {
		ids = append(ids, r.JobID)
	}
	return ids
}

// lostJob is the first job of recs whose lease is lost, or "".
func lostJob(lost map[string]bool, recs []*hub.DeviceJob) string {
	for _, r := range recs {
		if lost[r.JobID] {
			return r.JobID
		}
	}
	return ""
}
