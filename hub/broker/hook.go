package broker

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotjobs/iotjobs/hub/sas"
)

// hook is where the broker enforces Azure's device protocol on mochi.
//
// The order mochi (v2.7.9) runs these in, which the design relies on:
//   - CONNECT: mochi reads the fixed header (closing on a first packet
//     that is not CONNECT, or on flags that are not 0) and decodes the
//     fields by their length prefixes → OnPacketRead, which alone sees
//     the packet's flags and lengths before mochi acts on them → mochi's
//     validation (whose refusals carry CONNACK codes MQTT 3.1.1 lacks, so
//     OnPacketRead leaves it nothing to refuse but a full server) →
//     OnConnect → OnConnectAuthenticate → OnSessionEstablish → session
//     takeover/inheritance → CONNACK → OnSessionEstablished. An error
//     from OnPacketRead closes the connection with no CONNACK but the
//     one it sent; a failed OnConnectAuthenticate is CONNACK 5. mochi's
//     client id is empty until it takes the first CONNECT's (assigning
//     one when it is empty), which is how OnPacketRead tells the first
//     CONNECT from a second; a second CONNECT closes the connection
//     (mochi).
//   - SUBSCRIBE: OnSubscribe first, so the rewritten filters are what is
//     validated, ACL-checked, indexed and stored in the client's session
//     (and copied to the next connection of a clean-session-0 client).
//   - PUBLISH from a client: OnPacketRead (before validation) → OnACLCheck
//     (write, original topic) → OnPublish (may rewrite or ignore) → retain
//     → routing. Deliveries to a client run OnACLCheck (read) and, when
//     encoded, OnPacketEncode.
//   - The inline client's publishes skip OnACLCheck but do run OnPublish.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "iotjobs-azure-device-protocol" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck,
		mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnPacketRead, mqtt.OnPacketEncode,
		mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnUnsubscribe,
		mqtt.OnPublish, mqtt.OnClientExpired:
		return true
	}
	return false
}

// OnConnect refuses client ids that are not device ids or module keys
// "{deviceId}/{moduleId}" (Azure's MQTT endpoint speaks only MQTT 3.1.1,
// which OnPacketRead enforced), caps the keep-alive and confines a Will
// message to the device's own topics (mochi publishes Wills without an
// ACL check).
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	id := pk.Connect.ClientIdentifier
	_, gateway := gatewayName(id)
	if !gateway && !validClientID(id) {
		h.b.log.Debug("refused connection: invalid client id", "client", id)
		_ = h.b.srv.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
		return packets.ErrClientIdentifierNotValid
	}
	if cl.State.Keepalive == 0 || cl.State.Keepalive > maxKeepalive {
		cl.State.Keepalive = maxKeepalive
	}
	if cl.Properties.Will.Flag != 0 {
		if isEmptyWillMessage(cl.Properties.Will.Payload) {
			cl.Properties.Will.Payload = []byte{} // as sent (see checkConnect)
		}
		if gateway {
			cl.Properties.Will = mqtt.Will{} // its disconnect withdraws its devices
		} else if t, ok := canonicalPublish(id, cl.Properties.Will.TopicName); ok {
			cl.Properties.Will.TopicName = t
			cl.Properties.Will.Retain = false
		} else {
			h.b.log.Debug("dropped will message: topic not allowed", "device", id, "topic", cl.Properties.Will.TopicName)
			cl.Properties.Will = mqtt.Will{}
		}
	}
	return nil
}

// OnConnectAuthenticate checks the username form, then the credentials: a
// gateway's with Config.AuthenticateGateway, a device's SAS token that
// names a shared access policy with Config.Policies (Azure's DeviceConnect
// rule), any other device password with Config.Authenticate.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	username := string(pk.Connect.Username)
	if !usernameMatches(username, cl.ID) {
		h.b.log.Debug("refused connection: username does not name the client id", "device", cl.ID, "username", username)
		return false
	}
	if name, gateway := gatewayName(cl.ID); gateway {
		if h.b.cfg.AuthenticateGateway == nil {
			h.b.log.Debug("refused gateway: gateways are not enabled", "gateway", cl.ID)
			return false
		}
		if err := h.b.cfg.AuthenticateGateway(name, username, pk.Connect.Password); err != nil {
			h.b.log.Debug("refused gateway: not authorized", "gateway", cl.ID, "error", err)
			return false
		}
	} else if err := h.authenticateDevice(cl.ID, username, pk.Connect.Password, peerCertificates(cl.Net.Conn)); err != nil {
		h.b.log.Debug("refused connection: not authorized", "device", cl.ID, "error", err)
		return false
	}
	if at := h.credentialsExpire(cl, pk.Connect.Password); !at.IsZero() {
		h.b.expireAt(cl, at.Sub(h.b.cfg.Now()))
	}
	return true
}

// credentialsExpire is when an accepted connection's credentials stop
// being valid: its SAS token's expiry (Config.Expires) or, for a device
// admitted with no password (only an X.509 device can be), its
// certificate's; the zero time for never.
func (h *hook) credentialsExpire(cl *mqtt.Client, password []byte) time.Time {
	if len(password) == 0 && h.b.cfg.AuthenticateCert != nil {
		if chain := peerCertificates(cl.Net.Conn); len(chain) > 0 {
			return chain[0].NotAfter
		}
	}
	if h.b.cfg.Expires != nil {
		return h.b.cfg.Expires(password)
	}
	return time.Time{}
}

// authenticateDevice checks a SAS token that names a shared access policy
// (skn) against that policy, and passes any other password to
// Config.Authenticate (or, with chain, Config.AuthenticateCert).
// Authenticate knows device keys only: given a policy's token it would
// check the signature against the device's key, and accept a token that
// claims a policy but is signed by the device.
func (h *hook) authenticateDevice(id, username string, password []byte, chain []*x509.Certificate) error {
	tok, err := sas.ParseToken(string(password))
	if err != nil || tok.KeyName == "" {
		if h.b.cfg.AuthenticateCert != nil {
			return h.b.cfg.AuthenticateCert(id, username, password, chain)
		}
		return h.b.cfg.Authenticate(id, username, password)
	}
	if h.b.cfg.Policies == nil {
		return fmt.Errorf("token names shared access policy %q: policy tokens are not enabled for devices", tok.KeyName)
	}
	var hosts []string
	if h.b.cfg.Hosts != nil {
		hosts = h.b.cfg.Hosts()
	}
	if err := tok.VerifyPolicy(h.b.cfg.Policies, sas.DeviceConnect, hosts, resourcePath(id), h.b.cfg.Now()); err != nil {
		return err
	}
	if h.b.cfg.DeviceAllowed != nil {
		return h.b.cfg.DeviceAllowed(id)
	}
	return nil
}

// OnACLCheck lets a device receive only its own hub-to-device topics, and
// of those only the ones of filters it subscribed to: its subscriptions
// share one route (deviceRoute), which matches all of its topics,
// including what it publishes itself.
// Publishes are checked (and rewritten) in OnPublish, where a refused
// one can be dropped quietly instead of costing the device its connection.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline || write {
		return true
	}
	if isGateway(cl) {
		if gatewayFilter(topic) {
			return true // SUBSCRIBE's check; deliveries are checked per device
		}
		id, _, ok := deviceOf(topic)
		return ok && h.b.plays(cl, id)
	}
	if topic == deviceRoute(cl.ID) {
		return true // SUBSCRIBE's check of a filter OnSubscribe rewrote
	}
	rest, ok := scopedRest(topic, cl.ID)
	if !ok {
		return false
	}
	bit := topicBit(rest)
	h.b.mu.RLock()
	d := h.b.devices[cl.ID]
	held := d != nil && d.filters&bit != 0
	h.b.mu.RUnlock()
	return bit != 0 && held
}

// OnSessionEstablish makes cl the device's current connection before mochi
// takes over (and disconnects) an older one, so the older one's disconnect
// is recognised as a takeover.
func (h *hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	if isGateway(cl) {
		h.b.gateways[cl] = map[string]struct{}{}
		return
	}
	d := h.b.devices[cl.ID]
	if d == nil {
		d = &device{}
		h.b.devices[cl.ID] = d
	}
	if d.gw != nil {
		// The device's own connection takes over from a gateway.
		delete(h.b.gateways[d.gw], cl.ID)
		d.gw, d.subs = nil, nil
	}
	d.cl, d.up = cl, false
	if pk.Connect.Clean {
		d.long, d.filters = false, 0
	}
}

// OnSessionEstablished reports the device online, with the subscriptions
// its session brought along.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if isGateway(cl) {
		return // its devices come online as it announces them
	}
	h.b.evMu.Lock()
	defer h.b.evMu.Unlock()
	// The filters held are those of the route the session brought along
	// (none when mochi started a new session: a clean one, or an old one
	// that expired or ended with a clean connection).
	_, routed := cl.State.Subscriptions.Get(deviceRoute(cl.ID))
	h.b.mu.Lock()
	d := h.b.devices[cl.ID]
	current := d != nil && d.cl == cl && !cl.Closed()
	var filters filterSet
	if current {
		d.up = true
		if !routed {
			d.filters = 0
		}
		filters = d.filters
	}
	h.b.mu.Unlock()
	if !current {
		return
	}
	h.b.events.Connected(cl.ID)
	for _, f := range filters.deviceForms(cl.ID) {
		h.b.events.Subscribed(cl.ID, f)
	}
}

// OnDisconnect reports the device offline unless a newer connection has
// taken over.
func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if cl.Net.Inline {
		return
	}
	if t, ok := h.b.expiry.LoadAndDelete(cl); ok {
		t.(*time.Timer).Stop()
	}
	if isGateway(cl) {
		h.b.gatewayGone(cl)
		if f := h.b.afterDisconnect; f != nil {
			f(cl.ID)
		}
		return
	}
	h.b.evMu.Lock()
	h.b.mu.Lock()
	report := false
	if d := h.b.devices[cl.ID]; d != nil && d.cl == cl {
		report = d.up
		d.cl, d.up = nil, false
		if expire {
			delete(h.b.devices, cl.ID)
		}
	}
	h.b.mu.Unlock()
	if report {
		h.b.events.Disconnected(cl.ID)
	}
	h.b.evMu.Unlock()
	if f := h.b.afterDisconnect; f != nil {
		f(cl.ID)
	}
}

// OnPacketRead holds a client's first CONNECT to MQTT 3.1.1 §3.1
// (checkConnect), answering a malformed one as the spec requires, and
// closes the connection of a device that publishes at QoS 2, as Azure
// does. Only ErrRejectPacket stops mochi: it ignores other errors.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch {
	case pk.FixedHeader.Type == packets.Connect && cl.ID == "":
		rule, connack := checkConnect(&pk)
		if rule == "" {
			return pk, nil
		}
		h.b.log.Debug("refused connection: CONNECT is not MQTT 3.1.1", "rule", rule, "client", pk.Connect.ClientIdentifier, "remote", cl.Net.Remote)
		if connack != packets.CodeSuccess {
			_ = h.b.srv.SendConnack(cl, connack, false, nil)
		}
		return pk, packets.ErrRejectPacket
	case pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 2 && !cl.Net.Inline:
		h.b.log.Debug("disconnecting device: QoS 2 publish", "device", cl.ID, "topic", pk.TopicName)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// OnPacketEncode turns a device-scoped "devices/{id}/$iothub/..." topic
// back into the "$iothub/..." the device subscribed to.
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return pk
	}
	rest, ok := scopedRest(pk.TopicName, cl.ID)
	if !ok || !strings.HasPrefix(rest, iothubPrefix) {
		return pk
	}
	h.b.mu.RLock()
	d := h.b.devices[cl.ID]
	long := d != nil && d.long
	h.b.mu.RUnlock()
	if !long {
		pk.TopicName = rest
	}
	return pk
}

// refusedFilter replaces a filter the device may not use: mochi finds it
// invalid and answers 0x80 in the SUBACK.
const refusedFilter = ""

// OnSubscribe rewrites each filter a device may use to its route
// (deviceRoute), noting which filter it was for OnSubscribed, refuses any
// other filter, and grants QoS 1 for QoS 2 (the hub publishes at QoS 0, so
// filters of different QoS sharing a route deliver alike).
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline {
		return pk
	}
	if isGateway(cl) {
		for i := range pk.Filters {
			f := &pk.Filters[i]
			if !gatewayFilter(f.Filter) {
				h.b.log.Debug("refused gateway subscription", "gateway", cl.ID, "filter", f.Filter)
				f.Filter = refusedFilter
			}
			f.Qos = min(f.Qos, 1)
		}
		return pk
	}
	bits := make([]filterSet, len(pk.Filters))
	long := -1
	for i := range pk.Filters {
		f := &pk.Filters[i]
		canonical, short, ok := canonicalFilter(cl.ID, f.Filter)
		if !ok {
			h.b.log.Debug("refused subscription", "device", cl.ID, "filter", f.Filter)
			f.Filter = refusedFilter
			continue
		}
		rest, _ := scopedRest(canonical, cl.ID)
		bits[i] = filterBit(rest)
		f.Filter = deviceRoute(cl.ID)
		f.Qos = min(f.Qos, 1)
		if strings.HasPrefix(rest, iothubPrefix) {
			long = 0
			if !short {
				long = 1
			}
		}
	}
	h.b.mu.Lock()
	if d := h.b.devices[cl.ID]; d != nil && d.cl == cl {
		d.subscribing = bits
		if long >= 0 {
			d.long = long == 1
		}
	}
	h.b.mu.Unlock()
	return pk
}

// OnSubscribed reports the granted subscriptions.
func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if cl.Net.Inline || isGateway(cl) {
		return
	}
	h.b.evMu.Lock()
	defer h.b.evMu.Unlock()
	var granted filterSet
	h.b.mu.Lock()
	d := h.b.devices[cl.ID]
	current := d != nil && d.cl == cl
	if current {
		for i, bit := range d.subscribing {
			if i < len(codes) && codes[i] <= packets.CodeGrantedQos2.Code {
				granted |= bit
			}
		}
		d.filters |= granted
		d.subscribing = nil
		current = d.up
	}
	h.b.mu.Unlock()
	if !current {
		return
	}
	for _, f := range granted.deviceForms(cl.ID) {
		h.b.events.Subscribed(cl.ID, f)
	}
}

// OnUnsubscribe drops filters from the device's set, and its route with
// the last of them.
func (h *hook) OnUnsubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline || isGateway(cl) {
		return pk
	}
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	d := h.b.devices[cl.ID]
	for i := range pk.Filters {
		f := &pk.Filters[i]
		canonical, _, ok := canonicalFilter(cl.ID, f.Filter)
		if !ok || d == nil || d.cl != cl {
			continue
		}
		rest, _ := scopedRest(canonical, cl.ID)
		d.filters &^= filterBit(rest)
		// The route goes with the last filter; until then mochi is given
		// nothing it holds to remove.
		f.Filter = refusedFilter
		if d.filters == 0 {
			f.Filter = deviceRoute(cl.ID)
		}
	}
	return pk
}

// OnPublish rewrites a device's "$iothub/..." publish to its device-scoped
// topic, keeps its own telemetry topic, and drops anything else (with a
// PUBACK for QoS 1, so a misbehaving device is not also stalled). RETAIN is
// never honoured for device messages.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	if isGateway(cl) {
		return h.gatewayPublish(cl, pk)
	}
	topic, ok := canonicalPublish(cl.ID, pk.TopicName)
	if !ok {
		h.b.log.Debug("dropped publish: topic not allowed", "device", cl.ID, "topic", pk.TopicName)
		return pk, packets.CodeSuccessIgnore
	}
	pk.TopicName = topic
	pk.FixedHeader.Retain = false
	return pk, nil
}

// OnClientExpired removes an expired session's subscriptions from the
// topic index, which mochi leaves behind; a later connection of the same
// id would otherwise receive on them without having subscribed.
func (h *hook) OnClientExpired(cl *mqtt.Client) {
	h.b.srv.UnsubscribeClient(cl)
	h.b.mu.Lock()
	if d := h.b.devices[cl.ID]; d != nil && d.cl == nil {
		delete(h.b.devices, cl.ID)
	}
	h.b.mu.Unlock()
}

// gatewayPublish takes a gateway's presence announcements and passes on
// the device-to-hub messages of the devices it announced; anything else
// is dropped.
func (h *hook) gatewayPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	id, rest, ok := deviceOf(pk.TopicName)
	switch {
	case ok && "/"+rest == presenceSuffix:
		h.b.announce(cl, id, pk.Payload)
		return pk, packets.CodeSuccessIgnore
	case !ok || !h.b.plays(cl, id):
		h.b.log.Debug("dropped gateway publish: device not announced", "gateway", cl.ID, "topic", pk.TopicName)
		return pk, packets.CodeSuccessIgnore
	}
	topic, ok := canonicalPublish(id, pk.TopicName)
	if !ok {
		h.b.log.Debug("dropped gateway publish: topic not allowed", "gateway", cl.ID, "topic", pk.TopicName)
		return pk, packets.CodeSuccessIgnore
	}
	pk.TopicName = topic
	pk.FixedHeader.Retain = false
	return pk, nil
}

// peerCertificates is the certificate chain the client of conn presented
// in its TLS handshake (done by the time mochi has read CONNECT), or nil.
func peerCertificates(conn net.Conn) []*x509.Certificate {
	switch c := conn.(type) {
	case *tls.Conn:
		return c.ConnectionState().PeerCertificates
	case *wsConn:
		return c.certs
	}
	return nil
}
