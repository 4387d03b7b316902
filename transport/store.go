package transport

import (
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// copyingStore is paho's memory store whose Get hands out a copy of a
// PUBLISH. On a reconnect paho's resume sets the DUP flag on the packet
// it reads from the store while the new connection may still be writing
// that very packet from the outgoing queue it sat in when the old one
// dropped (eclipse-paho/paho.mqtt.golang#703, a data race the race
// detector reports): with a copy, resume marks its own packet and the
// one in flight is left alone. Both go out, as they did before; a
// duplicate QoS 1 PUBLISH is what the contract expects anyway.
type copyingStore struct {
	*paho.MemoryStore
}

func newCopyingStore() paho.Store { return copyingStore{paho.NewMemoryStore()} }

// Get returns the stored packet, a PUBLISH as a copy.
func (s copyingStore) Get(key string) packets.ControlPacket {
	p := s.MemoryStore.Get(key)
	if pub, ok := p.(*packets.PublishPacket); ok {
		cp := *pub
		return &cp
	}
	return p
}
