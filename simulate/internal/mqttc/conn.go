package mqttc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// readBufferSize is the read buffer of a connection: the packets a
// simulated device receives are small, and a larger one would be paid
// once per device.
const readBufferSize = 512

// epoch anchors the connections' last-read and last-write times, kept as
// monotonic nanoseconds since it in atomics.
var epoch = time.Now()

func sinceEpoch() int64 { return int64(time.Since(epoch)) }

// conn is one open connection and the little state it needs.
type conn struct {
	c    *Client
	nc   net.Conn
	done chan struct{} // closed when the read loop has ended

	wmu sync.Mutex // serializes writes

	// Guarded by c.mu.
	nextID  uint16
	pending []waiter // requests awaiting their acknowledgement
	err     error    // why the connection ended (the first reason)
	closing bool     // Disconnect closed it
	dead    bool     // the read loop has ended
	ping    *time.Timer

	lastRead, lastWrite, lastPing atomic.Int64 // sinceEpoch
}

// waiter is a request awaiting the acknowledgement of type kind with its
// packet id.
type waiter struct {
	id   uint16
	kind byte
	ch   chan ack
}

// ack is an acknowledgement (a SUBACK's return codes), or why none will
// come.
type ack struct {
	codes []byte
	err   error
}

func newConn(c *Client, nc net.Conn) *conn {
	cn := &conn{c: c, nc: nc, done: make(chan struct{})}
	now := sinceEpoch()
	cn.lastRead.Store(now)
	cn.lastWrite.Store(now)
	return cn
}

// send writes the packet that encode appends to a buffer, within
// writeTimeout. A failed write closes the connection: a partial packet
// leaves the stream unusable.
func (cn *conn) send(encode func([]byte) ([]byte, error)) error {
	bp := bufferPool.Get().(*[]byte)
	b, err := encode((*bp)[:0])
	if cap(b) <= 64<<10 { // keep the pool from holding large payloads' buffers
		*bp = b[:0]
		defer bufferPool.Put(bp)
	}
	if err != nil {
		return fmt.Errorf("encode %w", err) // the encoder's errors start with the packet's name
	}
	cn.wmu.Lock()
	cn.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = cn.nc.Write(b)
	cn.wmu.Unlock()
	if err != nil {
		err = fmt.Errorf("write %s: %w", packetName(b[0]>>4), err)
		cn.fail(err)
		return err
	}
	cn.lastWrite.Store(sinceEpoch())
	return nil
}

// fail closes the connection for err; the read loop then ends with it.
func (cn *conn) fail(err error) {
	cn.c.mu.Lock()
	if cn.err == nil {
		cn.err = err
	}
	cn.c.mu.Unlock()
	cn.nc.Close()
}

// request sends the packet that encode appends to a buffer with a fresh
// packet id, and waits for its acknowledgement of type kind, returning a
// SUBACK's return codes.
func (cn *conn) request(ctx context.Context, kind byte, encode func(b []byte, id uint16) ([]byte, error)) ([]byte, error) {
	w, err := cn.await(kind)
	if err != nil {
		return nil, err
	}
	if err := cn.send(func(b []byte) ([]byte, error) { return encode(b, w.id) }); err != nil {
		cn.forget(w)
		return nil, err
	}
	select {
	case a := <-w.ch:
		return a.codes, a.err
	case <-ctx.Done():
		cn.forget(w)
		return nil, fmt.Errorf("wait for %s: %w", packetName(kind), ctx.Err())
	}
}

// await registers a request with a packet id not in use.
func (cn *conn) await(kind byte) (waiter, error) {
	c := cn.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if cn.dead {
		return waiter{}, ErrNotConnected
	}
	if len(cn.pending) >= 0xffff {
		return waiter{}, errors.New("no packet id left: 65,535 requests in flight")
	}
	for {
		cn.nextID++
		if cn.nextID != 0 && !cn.inUseLocked(cn.nextID) {
			break
		}
	}
	w := waiter{id: cn.nextID, kind: kind, ch: make(chan ack, 1)}
	cn.pending = append(cn.pending, w)
	return w, nil
}

func (cn *conn) inUseLocked(id uint16) bool {
	for _, w := range cn.pending {
		if w.id == id {
			return true
		}
	}
	return false
}

// forget drops a request that no longer waits.
func (cn *conn) forget(w waiter) {
	cn.c.mu.Lock()
	defer cn.c.mu.Unlock()
	cn.pending = slices.DeleteFunc(cn.pending, func(p waiter) bool { return p.ch == w.ch })
}

// complete hands an acknowledgement to the request awaiting it; one that
// matches no request (late, or a broker's mistake) is dropped.
func (cn *conn) complete(id uint16, kind byte, a ack) {
	c := cn.c
	c.mu.Lock()
	var ch chan ack
	for i, w := range cn.pending {
		if w.id == id && w.kind == kind {
			ch = w.ch
			cn.pending = append(cn.pending[:i], cn.pending[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	if ch != nil {
		ch <- a // buffered: never blocks
	}
}

// readLoop reads and handles packets until the connection ends: the one
// goroutine of an open connection.
func (cn *conn) readLoop(r *bufio.Reader) {
	limit := cn.c.maxPacketSize()
	scratch := make([]byte, 64) // bodies of acknowledgements, reused
	var err error
	for {
		var h header
		var body []byte
		if h, body, err = readPacket(r, limit, scratch); err != nil {
			break
		}
		cn.lastRead.Store(sinceEpoch())
		if err = cn.handle(h, body); err != nil {
			break
		}
	}
	cn.c.lost(cn, err)
}

// readPacket reads one packet. A PUBLISH's body is freshly allocated (its
// payload goes to a handler); other bodies use scratch when they fit.
func readPacket(r *bufio.Reader, limit int, scratch []byte) (header, []byte, error) {
	h, err := readHeader(r)
	if err != nil {
		return h, nil, err
	}
	if h.length > limit {
		return h, nil, fmt.Errorf("%s of %d bytes exceeds the limit of %d", packetName(h.typ), h.length, limit)
	}
	var body []byte
	if h.typ != typePublish && h.length <= len(scratch) {
		body = scratch[:h.length]
	} else {
		body = make([]byte, h.length)
	}
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, fmt.Errorf("%s body: %w", packetName(h.typ), err)
	}
	return h, body, nil
}

// handle acts on one packet from the broker; an error ends the
// connection.
func (cn *conn) handle(h header, body []byte) error {
	switch h.typ {
	case typePublish, typePuback, typeSuback, typeUnsuback, typePingresp:
	case typeDisconnect:
		return errors.New("the broker sent DISCONNECT")
	default:
		return fmt.Errorf("unexpected %s packet from the broker", packetName(h.typ))
	}
	pk, err := decodeBody(h, body)
	if err != nil {
		return err
	}
	switch h.typ {
	case typePublish:
		if pk.qos > 1 {
			return fmt.Errorf("PUBLISH at QoS %d: the client subscribes at QoS 0 and 1 only", pk.qos)
		}
		// The body was allocated for this packet: the handler owns the
		// payload that points into it.
		if h := cn.c.messageHandler(); h != nil {
			go h(pk.topic, pk.payload)
		}
		if pk.qos == 1 {
			return cn.send(func(b []byte) ([]byte, error) { return appendPuback(b, pk.id), nil })
		}
	case typePuback:
		cn.complete(pk.id, typePuback, ack{})
	case typeSuback:
		// Copied: the codes point into the reused scratch buffer.
		cn.complete(pk.id, typeSuback, ack{codes: bytes.Clone(pk.codes)})
	case typePingresp, typeUnsuback:
		// lastRead, updated for every packet, is all a PINGRESP is for;
		// the client never unsubscribes.
	}
	return nil
}

// keepalive runs from the connection's timer: it pings when the
// connection was quiet for a keepalive interval, and closes it when the
// broker sent nothing, not even a PINGRESP, for one and a half.
func (cn *conn) keepalive() {
	ka := int64(cn.c.opts.KeepAlive)
	now := sinceEpoch()
	sinceRead := now - cn.lastRead.Load()
	if sinceRead >= ka*3/2 {
		cn.fail(fmt.Errorf("no packet from the broker for %v (keepalive %v)", time.Duration(sinceRead).Round(time.Millisecond), time.Duration(ka)))
		return
	}
	sinceWrite := now - cn.lastWrite.Load()
	// A ping is due after a keepalive interval without a write (the
	// broker's rule), or without a read (to learn whether the broker is
	// still there), unless one is already out.
	if sinceWrite >= ka || sinceRead >= ka && cn.lastPing.Load() < cn.lastRead.Load() {
		if cn.send(func(b []byte) ([]byte, error) { return appendPingreq(b), nil }) != nil {
			return // the connection is closing
		}
		now = sinceEpoch()
		cn.lastPing.Store(now)
		sinceWrite = 0
	}
	next := ka - sinceWrite
	if untilRead := ka - sinceRead; untilRead > 0 {
		next = min(next, untilRead)
	} else {
		next = min(next, ka*3/2-sinceRead)
	}
	cn.c.mu.Lock()
	if !cn.dead {
		cn.ping.Reset(max(time.Duration(next), time.Millisecond))
	}
	cn.c.mu.Unlock()
}
