// Package extbrokertest gives tests the machine's MQTT broker.
package extbrokertest
