<?php
// submit.php: submits a PDF to a signing terminal for an official named
// by NIP, and prints the letter's id. With --wait it then waits until the
// letter is final and, when it was signed, writes the signed PDF to --out.
//
//   export TEKEN_API_KEY=tk_...
//   php submit.php --gateway http://127.0.0.1:8480 --terminal kendari-setda-01 \
//       --nip 198703152010012003 --title "Undangan Rapat" --number 005/123/SETDA/2026 \
//       --sender "Sekretariat Daerah" [--idempotency-key surat-123] \
//       [--wait [--webhook-log events.jsonl] [--out signed.pdf] [--timeout 900]] undangan.pdf
//
// It waits by reading the log webhook.php writes (--webhook-log) or, without
// it, by long polls of the gateway's event feed. The id is printed as soon
// as the letter is taken, before any waiting; progress goes to stderr.
//
// Exit status: 0 submitted (or, with --wait, signed), 1 the gateway
// refused or could not be reached, 2 wrong usage, 3 the letter ended
// unsigned, 4 --timeout passed first.

declare(strict_types=1);

require __DIR__ . '/TekenGateway.php';

const FINAL_STATES = ['refused', 'signed', 'rejected', 'expired', 'cancelled', 'failed'];

function usage(string $why): never
{
    fwrite(STDERR, "submit.php: $why\n");
    fwrite(STDERR, "usage: php submit.php --gateway URL --terminal ID --nip NIP --title T --number N --sender S\n"
        . "       [--idempotency-key K] [--wait] [--webhook-log FILE] [--out PATH] [--timeout SECONDS] FILE.pdf\n"
        . "       the API key comes from the environment: TEKEN_API_KEY\n");
    exit(2);
}

function say(string $msg): void
{
    fwrite(STDERR, "submit.php: $msg\n");
}

/**
 * Waits for the letter's final state in the log webhook.php appends to,
 * reading only what was added since the last look. The event with the
 * highest seq is the letter's latest: a retried delivery may come late.
 */
function waitInLog(string $path, string $id, int $deadline): ?string
{
    $offset = 0;
    $partial = '';
    $latest = ['seq' => -1, 'state' => null];
    while (time() < $deadline) {
        clearstatcache(false, $path);
        $size = is_file($path) ? (int) filesize($path) : 0;
        if ($size > $offset) {
            $fh = fopen($path, 'rb');
            if ($fh === false) {
                throw new RuntimeException("cannot open $path");
            }
            fseek($fh, $offset);
            $chunk = (string) stream_get_contents($fh);
            fclose($fh);
            $offset += strlen($chunk);
            $lines = explode("\n", $partial . $chunk);
            $partial = array_pop($lines); // a line still being written
            foreach ($lines as $line) {
                $rec = json_decode($line, true);
                $ev = is_array($rec) ? ($rec['event'] ?? null) : null;
                if (!is_array($ev) || ($ev['letter']['id'] ?? null) !== $id) {
                    continue;
                }
                if ((int) ($ev['seq'] ?? 0) > $latest['seq']) {
                    $latest = ['seq' => (int) $ev['seq'], 'state' => (string) ($ev['letter']['state'] ?? '')];
                    say("letter $id is {$latest['state']} (webhook, seq {$latest['seq']})");
                }
            }
            if (in_array($latest['state'], FINAL_STATES, true)) {
                return $latest['state'];
            }
        }
        usleep(200_000);
    }
    return null;
}

/** Waits for the letter's final state in the gateway's event feed, from seq $after on. */
function waitInFeed(TekenGateway $gw, string $id, int $after, int $deadline): ?string
{
    while (($left = $deadline - time()) > 0) {
        $feed = $gw->events($after, max(1, min(30, $left)));
        foreach ($feed['events'] as $ev) {
            if (($ev['letter_id'] ?? null) !== $id) {
                continue;
            }
            say("letter $id is {$ev['state']} (feed, seq {$ev['seq']})");
            if (in_array($ev['state'], FINAL_STATES, true)) {
                return $ev['state'];
            }
        }
        $after = (int) ($feed['next'] ?? $after);
    }
    return null;
}

$opts = getopt('', ['gateway:', 'terminal:', 'nip:', 'title:', 'number:', 'sender:', 'idempotency-key:',
    'wait', 'webhook-log:', 'out:', 'timeout:', 'help'], $rest);
if ($opts === false || isset($opts['help'])) {
    usage('submit a PDF for signing');
}
$args = array_slice($argv, $rest);
if (count($args) !== 1) {
    usage('want exactly one PDF file');
}
foreach ($opts as $k => $v) {
    if (is_array($v)) {
        usage("--$k given more than once");
    }
}
$pdf = $args[0];
$gatewayUrl = $opts['gateway'] ?? (string) getenv('TEKEN_GATEWAY_URL');
$key = (string) getenv('TEKEN_API_KEY');
foreach (['terminal', 'nip', 'title', 'number', 'sender'] as $need) {
    if (($opts[$need] ?? '') === '') {
        usage("--$need is required");
    }
}
if ($gatewayUrl === '') {
    usage('--gateway (or TEKEN_GATEWAY_URL) is required');
}
if ($key === '') {
    usage('TEKEN_API_KEY is not set');
}
if (!is_file($pdf) || !is_readable($pdf)) {
    usage("cannot read $pdf");
}
$wait = isset($opts['wait']);
if (!$wait && (isset($opts['out']) || isset($opts['webhook-log']))) {
    usage('--out and --webhook-log go with --wait');
}
$timeout = (int) ($opts['timeout'] ?? 900);
if ($timeout < 1) {
    usage('--timeout: want seconds, at least 1');
}

$letter = [
    'terminal' => $opts['terminal'],
    'signer' => ['nip' => $opts['nip']],
    'title' => $opts['title'],
    'number' => $opts['number'],
    'sender' => $opts['sender'],
    'documents' => [[
        'id' => 'surat',
        'name' => basename($pdf),
        'media_type' => 'application/pdf',
        'format' => 'pades',
        'file' => 'surat',
    ]],
];

$gw = new TekenGateway($gatewayUrl, $key);
try {
    $taken = $gw->submitLetter($letter, ['surat' => new CURLFile($pdf, 'application/pdf', basename($pdf))],
        $opts['idempotency-key'] ?? null);
    $id = (string) $taken['id'];
    fwrite(STDOUT, $id . "\n");
    fflush(STDOUT);
    if (!$wait) {
        exit(0);
    }

    $deadline = time() + $timeout;
    $state = (string) $taken['state'];
    // A letter submitted again under its idempotency key may be final
    // already; otherwise wait from its latest event on.
    if (!in_array($state, FINAL_STATES, true)) {
        $state = isset($opts['webhook-log'])
            ? waitInLog($opts['webhook-log'], $id, $deadline)
            : waitInFeed($gw, $id, (int) ($taken['seq'] ?? 0), $deadline);
    }
    if ($state === null) {
        say("letter $id: not final after {$timeout}s");
        exit(4);
    }
    // The letter itself has the last word: its reason, and where the
    // signed document is.
    $final = $gw->getLetter($id);
    if ($final['state'] !== 'signed') {
        $why = trim(($final['reason'] ?? '') . ' ' . ($final['detail'] ?? ''));
        say("letter $id ended {$final['state']}" . ($why !== '' ? ": $why" : ''));
        exit(3);
    }
    say("letter $id signed");
    if (isset($opts['out'])) {
        $bytes = $gw->downloadSigned($id, 'surat');
        // Written beside the target and renamed, so that the path never
        // holds half a PDF.
        $tmp = $opts['out'] . '.part';
        if (file_put_contents($tmp, $bytes) !== strlen($bytes) || !rename($tmp, $opts['out'])) {
            @unlink($tmp);
            say("cannot write {$opts['out']}");
            exit(1);
        }
        say('signed PDF written to ' . $opts['out'] . ' (' . strlen($bytes) . ' bytes)');
    }
    exit(0);
} catch (TekenGatewayException $e) {
    say("{$e->errorCode} (HTTP {$e->status}): {$e->messageEn} / {$e->messageId}");
    exit(1);
} catch (JsonException | RuntimeException $e) {
    say($e->getMessage());
    exit(1);
}
