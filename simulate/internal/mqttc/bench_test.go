package mqttc

import (
	"bufio"
	"bytes"
	"testing"
)

// benchConn returns a client connected over a fakeConn that reads data
// and discards what is written.
func benchConn(data []byte) (*Client, *conn) {
	c := New(Options{ClientID: "bench"})
	cn := newConn(c, &fakeConn{r: bytes.NewReader(data)})
	c.cur = cn
	return c, cn
}

// BenchmarkPublishQoS0 measures encoding and writing a device's message:
// no allocation.
func BenchmarkPublishQoS0(b *testing.B) {
	c, _ := benchConn(nil)
	payload := []byte(`{"status":"ok","progress":42}`)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Publish(ctx, "$iothub/twin/PATCH/properties/reported/?$rid=1", 0, false, payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceivePublishQoS0 measures reading and decoding a message for
// a device (without a handler): the body and the topic are allocated.
func BenchmarkReceivePublishQoS0(b *testing.B) {
	one, err := appendPublish(nil, &publishPacket{topic: "$iothub/methods/POST/reboot/?$rid=1", payload: []byte(`{"delay":5}`)})
	if err != nil {
		b.Fatal(err)
	}
	_, cn := benchConn(bytes.Repeat(one, b.N))
	b.ReportAllocs()
	b.ResetTimer()
	cn.readLoop(bufio.NewReaderSize(cn.nc, readBufferSize))
}
