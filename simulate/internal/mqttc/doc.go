// Package mqttc is a lean MQTT 3.1.1 client for the simulator's devices
// that each hold a connection of their own: tens of thousands of them in
// one process, where a general-purpose client (paho: half a dozen
// goroutines, channels and buffers per connection, ~50 KB) costs more
// than the device it plays.
//
// A [Client] keeps one goroutine per open connection, the reader. Writes
// go straight onto the connection under a mutex, with a deadline;
// keepalive pings run from a timer; nothing else is kept per connection
// but a small read buffer and the packets awaiting an acknowledgement.
// The packets are encoded and decoded by a small MQTT 3.1.1 codec of its
// own (codec.go), on the standard library alone.
//
// It does what the simulator needs and no more: QoS 0 and 1 (no QoS 2),
// one message handler for every subscription, no retransmission of
// unacknowledged publishes after a reconnect (the call that published
// fails instead), automatic reconnection with a backoff capped at two
// seconds. Its timeouts are network deadlines, on the wall clock, so it
// uses package time directly rather than a clock.Clock.
package mqttc
