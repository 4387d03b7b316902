package pivsim

import (
	"bytes"
	"fmt"
)

// The YubiKey management application, as much of it as PIV clients read:
// piv-go's FormFactor and ykman ask it for the device's form factor,
// serial and firmware (READ CONFIG, INS 1D; yubikit/management.py in
// yubikey-manager 4.0.9, DeviceInfo.parse).

// aidManagement is the management application's AID.
var aidManagement = []byte{0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17}

const insReadConfig = 0x1D

// Device information tags (yubikit/management.py).
const (
	tagUSBSupported = 0x01
	tagDevSerial    = 0x02
	tagUSBEnabled   = 0x03
	tagFormFactor   = 0x04
	tagDevVersion   = 0x05
)

// capPIV is the PIV bit of the USB capabilities; it is the only
// application this card has.
const capPIV = 0x0010

func isManagementAID(cmd command) bool {
	return cmd.p1 == 0x04 && cmd.p2 == 0x00 && bytes.Equal(cmd.data, aidManagement)
}

// selectManagement answers SELECT with the text a YubiKey 5 answers, from
// which ykman reads the firmware version; c.mu is held.
func (c *Card) selectManagement() []byte {
	return fmt.Appendf(nil, "Virtual mgr - FW version %d.%d.%d", c.version[0], c.version[1], c.version[2])
}

// management answers a command to the management application; c.mu is held.
func (c *Card) management(cmd command) ([]byte, error) {
	if cmd.ins != insReadConfig {
		return nil, swINSNotSupported
	}
	if cmd.p1 != 0 || cmd.p2 != 0 {
		return nil, swIncorrectP1P2
	}
	var info []byte
	info = appendTLV(info, tagUSBSupported, []byte{capPIV >> 8, capPIV & 0xff})
	info = appendTLV(info, tagDevSerial, []byte{byte(c.serial >> 24), byte(c.serial >> 16), byte(c.serial >> 8), byte(c.serial)})
	info = appendTLV(info, tagUSBEnabled, []byte{capPIV >> 8, capPIV & 0xff})
	info = appendTLV(info, tagFormFactor, []byte{c.formFactor})
	info = appendTLV(info, tagDevVersion, c.version[:])
	return append([]byte{byte(len(info))}, info...), nil
}
