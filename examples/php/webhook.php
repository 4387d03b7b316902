<?php
// webhook.php: a receiver of the Teken gateway's webhooks, for PHP's
// built-in server or any PHP web server:
//
//   TEKEN_WEBHOOK_SECRET=... TEKEN_WEBHOOK_LOG=/var/lib/surat/teken-events.jsonl \
//       php -S 127.0.0.1:8081 webhook.php
//
// It checks each delivery's Teken-Signature, appends the verified event as
// one JSON line to TEKEN_WEBHOOK_LOG and answers 204; the letter system
// reads that file (or a queue in its place) at its own pace. Doing no more
// than that before answering keeps the answer within the gateway's
// timeout, so a delivery is not tried again only because the letter
// system was slow.
//
// Deliveries come at least once and not always in order: the same event
// may be in the log twice (the same "delivery" id), and a later event may
// come before an earlier one. A reader keeps, per letter, the event with
// the highest seq.

declare(strict_types=1);

// A signature older or newer than this is refused: a delivery recorded
// on the way and sent again later.
const TOLERANCE_SECONDS = 300;

// Deliveries are small; anything bigger is not one.
const MAX_BODY_BYTES = 65536;

/** Ends the request with a status and a short plain-text reason. */
function answer(int $status, string $reason = ''): never
{
    http_response_code($status);
    if ($reason !== '') {
        header('Content-Type: text/plain; charset=utf-8');
        echo $reason, "\n";
    }
    exit;
}

/**
 * Whether $header ("t=<unix>,v1=<hex>[,v1=<hex>...]") signs $body with
 * $secret at a time within TOLERANCE_SECONDS of $now. More than one v1
 * may come while a secret is being changed; one that verifies is enough.
 */
function verifySignature(string $secret, string $body, string $header, int $now): bool
{
    $t = null;
    $sigs = [];
    foreach (explode(',', $header) as $part) {
        [$k, $v] = array_pad(explode('=', trim($part), 2), 2, '');
        if ($k === 't' && $t === null) {
            $t = $v;
        } elseif ($k === 'v1') {
            $sigs[] = strtolower($v);
        }
    }
    if ($t === null || !ctype_digit($t) || strlen($t) > 12 || $sigs === []) {
        return false;
    }
    if (abs($now - (int) $t) > TOLERANCE_SECONDS) {
        return false;
    }
    $want = hash_hmac('sha256', "$t.$body", $secret);
    $ok = false;
    foreach ($sigs as $sig) {
        // hash_equals takes the same time wherever the strings differ.
        $ok = hash_equals($want, $sig) || $ok;
    }
    return $ok;
}

$secret = (string) getenv('TEKEN_WEBHOOK_SECRET');
$logPath = (string) getenv('TEKEN_WEBHOOK_LOG');
if ($secret === '' || $logPath === '') {
    error_log('webhook.php: set TEKEN_WEBHOOK_SECRET and TEKEN_WEBHOOK_LOG');
    answer(500, 'receiver not configured');
}

if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
    header('Allow: POST');
    answer(405, 'POST only');
}
$length = (int) ($_SERVER['CONTENT_LENGTH'] ?? 0);
if ($length > MAX_BODY_BYTES) {
    answer(413, 'too large');
}
$body = (string) file_get_contents('php://input', false, null, 0, MAX_BODY_BYTES + 1);
if (strlen($body) > MAX_BODY_BYTES) {
    answer(413, 'too large');
}

$header = (string) ($_SERVER['HTTP_TEKEN_SIGNATURE'] ?? '');
if (!verifySignature($secret, $body, $header, time())) {
    error_log('webhook.php: refused a delivery whose signature does not verify');
    answer(401, 'signature does not verify');
}

try {
    $event = json_decode($body, true, 16, JSON_THROW_ON_ERROR);
} catch (JsonException $e) {
    answer(400, 'not JSON');
}
if (!is_array($event) || !is_string($event['type'] ?? null) || !is_array($event['letter'] ?? null)) {
    answer(400, 'not an event');
}

$line = json_encode([
    'received_at' => gmdate('Y-m-d\TH:i:s\Z'),
    'delivery' => (string) ($_SERVER['HTTP_TEKEN_DELIVERY'] ?? ($event['id'] ?? '')),
    'verified' => true,
    'event' => $event,
], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);

// One write of one line under a lock: lines of deliveries received side
// by side do not interleave. Only once it is written is the delivery
// acknowledged; a failed write answers 500 and the gateway tries again.
if ($line === false || file_put_contents($logPath, $line . "\n", FILE_APPEND | LOCK_EX) === false) {
    error_log("webhook.php: cannot append to $logPath");
    answer(500, 'cannot record the event');
}
answer(204);
