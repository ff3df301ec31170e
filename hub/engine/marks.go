package engine

import (
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

// startMarks makes "this device may have been sent the method" durable
// before each method request of a job, coarsely: a method job's pending
// devices start in device id order, and the job's stored StartedThrough
// is the greatest id that may have started. One write of the job row
// covers every device handed to a worker by then, instead of a record per
// device (which cost a job as much as its results). A hub killed mid-job
// resumes with every device up to StartedThrough still pending recorded
// as CodeMethodOutcomeUnknown (recoverRecords): at most once holds,
// conservatively, for the devices handed out or covered ahead but not yet
// sent. A mark covers ahead what the job will start in about 50 ms (a
// quarter window when the hub's rate is unlimited), so that marks are a
// few transactions a second, not one per device freed.
type startMarks struct {
	e       *Engine
	r       *run
	pending []*hub.DeviceJob // in id order
	ahead   int              // devices a mark covers beyond those handed out

	mu      sync.Mutex
	handed  int           // devices handed to workers so far
	durable int           // devices [0, durable) are covered by the stored mark
	commit  chan struct{} // closed when the write in progress ends; nil if none
	err     error         // the last write's error
}

// newStartMarks prepares the marks of a job's pending devices (in id
// order).
func (e *Engine) newStartMarks(r *run, pending []*hub.DeviceJob) *startMarks {
	ahead := e.Window / 4
	if every := e.pace.interval(); every > 0 { // replicas change it (setRate)
		ahead = min(ahead, int(50*time.Millisecond/every))
	}
	return &startMarks{e: e, r: r, pending: pending, ahead: ahead}
}

// hand records that the feeder handed pending[k] to a worker.
func (m *startMarks) hand(k int) {
	m.mu.Lock()
	m.handed = max(m.handed, k+1)
	m.mu.Unlock()
}

// mark returns once pending[k] is covered by the stored mark, writing a
// new mark (covering every device handed out by then) unless a write in
// progress or done already covers it. Concurrent callers share writes.
func (m *startMarks) mark(k int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k >= m.durable {
		if m.commit != nil {
			ch := m.commit
			m.mu.Unlock()
			<-ch
			m.mu.Lock()
			if m.err != nil && k >= m.durable {
				return m.err
			}
			continue
		}
		to := min(max(m.handed, k+1)+m.ahead, len(m.pending))
		ch := make(chan struct{})
		m.commit = ch
		m.mu.Unlock()
		through := m.pending[to-1].DeviceID
		m.e.update(m.r, func(j *hub.Job) {
			if through > j.StartedThrough {
				j.StartedThrough = through
			}
		})
		err := m.e.commit(nil, m.r)
		m.mu.Lock()
		m.commit, m.err = nil, err
		if err == nil {
			m.durable = max(m.durable, to)
		}
		close(ch)
		if err != nil {
			return err
		}
	}
	return nil
}
