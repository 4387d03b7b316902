"""One MQTT connection of the central side, on paho (Debian's
python3-paho-mqtt, 1.6 on Debian 12 and 2.x on Debian 13 alike), and the
topics of the contract (Topics, in docs/PROTOCOL.md)."""

import json
import logging
import time
import urllib.parse

import paho.mqtt.client as mqtt

import wire

log = logging.getLogger("central")

# What the central side subscribes to: {root}/t/+/{kind}, QoS 1.
KINDS = ("receipts", "results", "status", "sync")


def emit(event, **fields):
    """One event as a line of JSON on stdout, flushed at once."""
    fields = dict(event=event, **fields)
    print(json.dumps(fields, sort_keys=True), flush=True)


def new_client(client_id, clean):
    """paho 1.x (Debian 12) and 2.x (Debian 13) alike, MQTT 3.1.1."""
    kwargs = dict(client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311)
    if hasattr(mqtt, "CallbackAPIVersion"):
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, **kwargs)
    return mqtt.Client(**kwargs)


class Link:
    """One MQTT connection, driven by loop() from this one thread: paho runs
    no thread of its own, so the ledger's SQLite connection is only ever
    used here, and a callback never waits for the network.

    paho sends the PUBACK of a QoS 1 message after on_message returns, and
    not at all when it raises: a message is acknowledged only once it was
    handled, and one that could not be stored comes again (Sequences,
    Duplicate delivery)."""

    def __init__(self, args, client_id, clean, on_message=None, on_ready=None):
        self.args, self.on_message_cb, self.on_ready = args, on_message, on_ready
        self.client = c = new_client(client_id, clean)
        self.connected, self.session_present = False, False
        self.pending = {}  # mid of a QoS 1 publish → what to do on its PUBACK
        self.suback = set()
        url = urllib.parse.urlsplit(args.broker)
        if url.scheme not in ("tcp", "mqtt", "ssl", "mqtts"):
            raise SystemExit("--broker %s: want tcp://, mqtt://, ssl:// or mqtts://" % args.broker)
        tls = url.scheme in ("ssl", "mqtts")
        self.host, self.port = url.hostname, url.port or (8883 if tls else 1883)
        if tls:
            c.tls_set(ca_certs=args.tls_ca, certfile=args.tls_cert, keyfile=args.tls_key)
        if args.username:
            c.username_pw_set(args.username, open(args.password_file).read().strip() if args.password_file else None)
        c.on_connect, c.on_disconnect = self._connected, self._disconnected
        c.on_message, c.on_subscribe, c.on_publish = self._message, self._subscribed, self._published

    def connect(self):
        self.client.connect(self.host, self.port, keepalive=30)

    def _connected(self, client, userdata, flags, rc):
        if rc != 0:
            log.error("broker refused the connection: %s", mqtt.connack_string(rc))
            return
        self.connected = True
        self.session_present = bool(flags.get("session present"))
        emit("connected", session_present=self.session_present)
        if self.on_message_cb is None:
            if self.on_ready:
                self.on_ready()
            return
        # Subscribe again on every connect, kept session or not: a broker
        # that lost our session lost the subscriptions with it (Topics).
        root = self.args.root
        result, mid = client.subscribe([("%s/t/+/%s" % (root, k), 1) for k in KINDS])
        self.suback.add(mid)

    def _subscribed(self, client, userdata, mid, granted):
        if mid in self.suback:
            self.suback.discard(mid)
            if any(q not in (0, 1, 2) for q in granted):
                # 0x80: the broker refused a filter, an ACL most often.
                # Without it results would be missed, not just late.
                raise SystemExit("the broker refused a subscription: granted %s" % (list(granted),))
            emit("subscribed", granted_qos=list(granted))
            if self.on_ready:
                self.on_ready()

    def _disconnected(self, client, userdata, rc):
        self.connected = False
        if rc != 0:
            log.warning("connection lost (%s)", mqtt.error_string(rc))

    def _message(self, client, userdata, msg):
        self.on_message_cb(msg)

    def _published(self, client, userdata, mid):
        done = self.pending.pop(mid, None)
        if done:
            done()

    def publish(self, topic, payload, on_puback=None):
        info = self.client.publish(topic, payload, qos=1)
        if on_puback:
            self.pending[info.mid] = on_puback
        return info

    def pump(self, until, deadline=None, reconnect=False):
        """Run the connection until until() holds or the deadline passes.
        With reconnect, a lost connection is opened again with a capped
        backoff; the session (clean_session false) keeps what was queued."""
        backoff, next_try = 1, 0.0
        while not until():
            if deadline is not None and time.monotonic() > deadline:
                return False
            rc = self.client.loop(timeout=0.5)
            if rc == mqtt.MQTT_ERR_SUCCESS:
                continue
            if not reconnect:
                raise SystemExit("broker connection lost: %s" % mqtt.error_string(rc))
            if time.monotonic() >= next_try:
                try:
                    self.client.reconnect()
                    backoff = 1
                except OSError as err:
                    log.warning("reconnect: %s", err)
                    backoff = min(backoff * 2, 30)
                next_try = time.monotonic() + backoff
            time.sleep(0.2)
        return True

    def close(self):
        """Wait a little for the PUBACKs still owed (a ResultAck lost here
        only costs a duplicate result, acked again), then disconnect."""
        if self.connected:
            self.pump(lambda: not self.pending, deadline=time.monotonic() + 5)
        self.client.disconnect()
        self.client.loop(timeout=0.5)


def topic(root, terminal, kind):
    return "%s/t/%s/%s" % (root, terminal, kind)


def parse_topic(root, name):
    """{root}/t/{terminal}/{kind}: the terminal id is taken from the topic
    (the broker's ACL vouches for it) and checked against the message."""
    prefix = root + "/t/"
    if not name.startswith(prefix):
        return None, None
    parts = name[len(prefix):].split("/")
    if len(parts) != 2 or not wire.TERMINAL.match(parts[0]) or parts[1] not in KINDS:
        return None, None
    return parts[0], parts[1]
