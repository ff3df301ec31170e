package mqttc

import (
	"bufio"
	"bytes"
	"net"
	"testing"
	"time"
)

// fakeConn is a connection that reads from a fixed input and discards
// what is written.
type fakeConn struct {
	r *bytes.Reader
}

func (f *fakeConn) Read(b []byte) (int, error)       { return f.r.Read(b) }
func (f *fakeConn) Write(b []byte) (int, error)      { return len(b), nil }
func (f *fakeConn) Close() error                     { return nil }
func (f *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (f *fakeConn) SetDeadline(time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// must returns a function that returns what an encoder appended, or
// fails t: must(t)(appendPublish(nil, pk)).
func must(t testing.TB) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// FuzzRead feeds arbitrary bytes from "the broker" to a connection's read
// loop, which must end (at the input's end or at a protocol error)
// without panicking, with two requests in flight to exercise the
// acknowledgements.
func FuzzRead(f *testing.F) {
	seeds := map[string][]byte{
		"connack":     {typeConnack << 4, 2, 0, 0},
		"publish 0":   must(f)(appendPublish(nil, &publishPacket{topic: "$iothub/methods/POST/m/?$rid=1", payload: []byte("{}")})),
		"publish 1":   must(f)(appendPublish(nil, &publishPacket{qos: 1, id: 7, topic: "a/b", payload: []byte("x")})),
		"puback":      appendPuback(nil, 1),
		"suback":      {typeSuback << 4, 5, 0, 2, 0, 1, 0x80},
		"pingresp":    {typePingresp << 4, 0},
		"disconnect":  {typeDisconnect << 4, 0},
		"long length": {typePingresp << 4, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"huge":        {typePublish << 4, 0xff, 0xff, 0xff, 0x7f},
		"truncated":   {typePublish << 4, 10, 0, 3, 'a'},
		"qos 2":       {typePublish<<4 | 4, 5, 0, 1, 'a', 0, 1},
		"bad flags":   {typePuback<<4 | 1, 2, 0, 1},
	}
	var all []byte
	for _, s := range seeds {
		f.Add(s)
		all = append(all, s...)
	}
	f.Add(all)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := New(Options{ClientID: "fuzz", MaxPacketSize: 64 << 10})
		c.handler = func(string, []byte) {}
		cn := newConn(c, &fakeConn{r: bytes.NewReader(data)})
		c.cur = cn
		if _, err := cn.await(typePuback); err != nil {
			t.Fatal(err)
		}
		if _, err := cn.await(typeSuback); err != nil {
			t.Fatal(err)
		}
		cn.readLoop(bufio.NewReaderSize(cn.nc, readBufferSize))
		select {
		case <-cn.done:
		default:
			t.Fatal("the read loop returned without ending the connection")
		}
		if c.IsConnected() {
			t.Fatal("still connected after the read loop ended")
		}
	})
}
