package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"slices"

	"github.com/iotjobs/iotjobs/hub/mqttproto"
)

// A gateway ("$gateway/{name}", Config.AuthenticateGateway) plays many
// devices over one connection, with device-scoped topics, as devices do
// on an external broker: it announces each device it plays on
// "devices/{id}/presence" (mqttproto.PresencePayload, empty to withdraw),
// and from then on receives that device's hub-to-device messages (through
// its "devices/+/..." subscriptions) and may publish its device-to-hub
// ones. Its disconnect withdraws all of them.

func isGateway(cl *mqtt.Client) bool {
	_, ok := gatewayName(cl.ID)
	return ok && !cl.Net.Inline
}

// plays reports whether gateway gw has announced device id.
func (b *Broker) plays(gw *mqtt.Client, id string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	_, ok := b.gateways[gw][id]
	return ok
}

// announce handles a gateway's presence message for device id.
func (b *Broker) announce(gw *mqtt.Client, id string, payload []byte) {
	p, up, err := mqttproto.ParsePresence(payload)
	subs := p.Subscriptions
	if err != nil {
		b.log.Debug("ignored gateway presence", "gateway", gw.ID, "device", id, "err", err)
		return
	}
	if !up {
		b.withdraw(gw, id)
		return
	}
	if b.cfg.DeviceAllowed != nil {
		if err := b.cfg.DeviceAllowed(id); err != nil {
			b.log.Debug("refused gateway presence", "gateway", gw.ID, "device", id, "err", err)
			return
		}
	}
	b.evMu.Lock()
	defer b.evMu.Unlock()
	b.mu.Lock()
	if gw.Closed() || b.gateways[gw] == nil {
		b.mu.Unlock()
		return
	}
	d := b.devices[id]
	if d == nil {
		d = &device{}
		b.devices[id] = d
	}
	if d.cl != nil {
		// The device has a connection of its own, which wins.
		b.mu.Unlock()
		b.log.Debug("ignored gateway presence: the device is connected itself", "gateway", gw.ID, "device", id)
		return
	}
	if d.gw != nil && d.gw != gw {
		delete(b.gateways[d.gw], id) // another gateway took it over
	}
	wasUp, old := d.up, d.subs
	d.gw, d.up, d.subs = gw, true, subs
	b.gateways[gw][id] = struct{}{}
	b.mu.Unlock()
	if !wasUp {
		b.events.Connected(id)
		old = nil
	}
	for _, s := range subs {
		if !slices.Contains(old, s) {
			b.events.Subscribed(id, s)
		}
	}
}

// withdraw ends gateway gw's play of device id.
func (b *Broker) withdraw(gw *mqtt.Client, id string) {
	b.evMu.Lock()
	defer b.evMu.Unlock()
	b.mu.Lock()
	report := false
	if d := b.devices[id]; d != nil && d.gw == gw && d.cl == nil {
		report = d.up
		d.gw, d.up, d.subs = nil, false, nil
	}
	delete(b.gateways[gw], id)
	b.mu.Unlock()
	if report {
		b.events.Disconnected(id)
	}
}

// gatewayGone withdraws every device of a gateway whose connection ended.
func (b *Broker) gatewayGone(gw *mqtt.Client) {
	b.mu.Lock()
	ids := make([]string, 0, len(b.gateways[gw]))
	for id := range b.gateways[gw] {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	for _, id := range ids {
		b.withdraw(gw, id)
	}
	b.mu.Lock()
	delete(b.gateways, gw)
	b.mu.Unlock()
}
