package broker

import (
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListenerID is the mochi listener name of MQTT-over-WebSocket clients.
const wsListenerID = "ws"

// WebsocketHandler returns the handler for MQTT over WebSocket, which
// Azure IoT Hub serves at /$iothub/websocket on its HTTPS port (subprotocol
// "mqtt") for devices behind firewalls that only pass port 443. The
// caller mounts it on its own (HTTPS) server; devices connecting through
// it are authenticated and treated exactly as devices on the TCP
// listener. After [Broker.Close] it answers 503. Every call returns the
// same handler.
func (b *Broker) WebsocketHandler() http.Handler {
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	if l, ok := b.srv.Listeners.Get(wsListenerID); ok {
		return l.(*wsListener)
	}
	l := &wsListener{b: b, conns: make(map[*wsConn]struct{}), log: b.log}
	// AddListener fails only for a duplicate id, excluded above under
	// lifeMu. Registering with mochi is what makes Server.Close end these
	// connections (it closes only its listeners' clients, then waits for
	// all of them).
	_ = b.srv.AddListener(l)
	return l
}

// wsListener upgrades HTTP requests to MQTT connections. It is also a
// mochi listener that accepts nothing by itself (the connections come
// from the caller's HTTP server), so that mochi closes its clients on
// Server.Close.
type wsListener struct {
	b   *Broker
	log *slog.Logger // mochi's logger for this listener, set by Init

	mu     sync.Mutex
	closed bool                 // guarded by mu
	conns  map[*wsConn]struct{} // open connections; guarded by mu
}

var _ listeners.Listener = (*wsListener)(nil)

// The upgrader allows any Origin: devices are not browsers, and a
// connection gains nothing without the device's SAS token.
var upgrader = websocket.Upgrader{
	ReadBufferSize:  bufferSize,
	WriteBufferSize: bufferSize,
	// Idle connections, most of a hub's, then hold no write buffer.
	WriteBufferPool: new(sync.Pool),
	CheckOrigin:     func(*http.Request) bool { return true },
}

func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if l.b.closed.Load() || l.isClosed() {
		http.Error(w, "MQTT broker is shut down", http.StatusServiceUnavailable)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, `MQTT over WebSocket: this endpoint needs a WebSocket upgrade with subprotocol "mqtt"`, http.StatusUpgradeRequired)
		return
	}
	proto := mqttSubprotocol(r)
	if proto == "" {
		http.Error(w, `MQTT over WebSocket needs the subprotocol "mqtt" (Sec-WebSocket-Protocol: mqtt)`, http.StatusBadRequest)
		return
	}
	// The client's own spelling is echoed: the Azure C SDK offers "MQTT".
	ws, err := upgrader.Upgrade(w, r, http.Header{"Sec-Websocket-Protocol": {proto}})
	if err != nil {
		return // Upgrade has answered with the HTTP error
	}
	c := &wsConn{ws: ws}
	if r.TLS != nil {
		c.certs = r.TLS.PeerCertificates
	}
	defer c.Close()
	// As deadlineListener does for TCP: mochi sets no deadline before
	// CONNECT.
	_ = c.SetDeadline(time.Now().Add(connectTimeout))
	if !l.add(c) {
		return
	}
	defer l.remove(c)
	if err := l.b.srv.EstablishConnection(wsListenerID, c); err != nil {
		l.log.Warn("", "error", err) // as mochi's own listeners report it
	}
}

// mqttSubprotocol returns the client's spelling of the "mqtt" subprotocol
// it offers, or "".
func mqttSubprotocol(r *http.Request) string {
	for _, p := range websocket.Subprotocols(r) {
		if strings.EqualFold(p, "mqtt") {
			return p
		}
	}
	return ""
}

func (l *wsListener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// add records c as open, or reports false once the listener is closed.
// It also counts c in mochi's ClientsWg, under mu, so that Server.Close
// (which closes this listener before it waits) never sees an Add racing
// its Wait, and waits for c.
func (l *wsListener) add(c *wsConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	l.b.srv.Listeners.ClientsWg.Add(1)
	return true
}

func (l *wsListener) remove(c *wsConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	l.b.srv.Listeners.ClientsWg.Done()
}

func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve does nothing: connections arrive through ServeHTTP.
func (l *wsListener) Serve(listeners.EstablishFn) {}

func (l *wsListener) ID() string       { return wsListenerID }
func (l *wsListener) Address() string  { return "" }
func (l *wsListener) Protocol() string { return "ws" }

// Close refuses new connections and ends the open ones: closeClients
// disconnects those past CONNECT, and closing the rest ends those still
// before it, which would otherwise hold Server.Close for connectTimeout.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	l.closed = true
	open := make([]*wsConn, 0, len(l.conns))
	for c := range l.conns {
		open = append(open, c)
	}
	l.mu.Unlock()
	closeClients(wsListenerID)
	for _, c := range open {
		_ = c.Close()
	}
}

// errTextMessage ends a connection that sent a text message: MQTT over
// WebSocket uses binary messages only.
var errTextMessage = errors.New("websocket text message: MQTT needs binary messages")

// wsConn is a WebSocket connection as the byte stream mochi reads MQTT
// packets from. MQTT over WebSocket lets a packet span messages and a
// message hold several packets, so Read ignores message boundaries.
type wsConn struct {
	ws    *websocket.Conn
	certs []*x509.Certificate // the HTTPS client's certificates, for X.509 devices
	r     io.Reader           // the rest of the message being read; nil between messages

	writeMu sync.Mutex // one Write at a time, as gorilla requires

	dlMu sync.Mutex
	wdl  time.Time // write deadline; guarded by dlMu
}

var _ net.Conn = (*wsConn)(nil)

func (c *wsConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
				return 0, io.EOF // a closed stream, as on TCP
			}
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errTextMessage
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue // an empty message, or its end: go on with the next
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary message.
func (c *wsConn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	// gorilla's deadline is a plain field read by WriteMessage; it is set
	// only here, under writeMu, so SetWriteDeadline can be called from
	// mochi's read loop while a write is in progress.
	c.dlMu.Lock()
	dl := c.wdl
	c.dlMu.Unlock()
	_ = c.ws.SetWriteDeadline(dl)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close closes the connection without a WebSocket close message, as a TCP
// connection is closed: Close runs on mochi's paths that must not block
// behind a stalled write.
func (c *wsConn) Close() error { return c.ws.Close() }

func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

func (c *wsConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.dlMu.Lock()
	c.wdl = t
	c.dlMu.Unlock()
	// The next Write applies t; setting it on the connection too holds a
	// write in progress to it, as on TCP.
	return c.ws.NetConn().SetWriteDeadline(t)
}
