<?php
// TekenGateway: a client of the Teken gateway's HTTP API (/v1) for a
// letter system written in PHP. It needs nothing but PHP 8.2 and the curl
// extension (Debian: php-cli php-curl).
//
//   $gw = new TekenGateway('https://tekengw.example.go.id', getenv('TEKEN_API_KEY'));
//   $letter = $gw->submitLetter([...], ['surat' => '/srv/surat/undangan.pdf'], 'surat-123');
//
// Every answer of the gateway that is not a success becomes a
// TekenGatewayException with the gateway's error code (for the program to
// decide on) and its message in English and Indonesian (for people).

declare(strict_types=1);

/**
 * An answer of the gateway that is not a success, or no answer at all.
 *
 * $errorCode is the gateway's code ("not_found", "unknown_signer",
 * "idempotency_mismatch", ...), or "transport" when the gateway could not
 * be reached or answered something that is not the API's JSON.
 */
final class TekenGatewayException extends RuntimeException
{
    public function __construct(
        public readonly int $status,        // the HTTP status; 0 when there was no answer
        public readonly string $errorCode,
        public readonly string $messageEn,
        public readonly string $messageId,
        ?Throwable $previous = null,
    ) {
        parent::__construct("$errorCode: $messageEn", $status, $previous);
    }

    /** Whether the same request may succeed later: the gateway was busy or out of reach. */
    public function isTemporary(): bool
    {
        return $this->status === 0 || $this->status === 429 || $this->status >= 500;
    }
}

final class TekenGateway
{
    private string $base;

    /**
     * @param string $baseUrl the gateway, e.g. "https://tekengw.example.go.id"
     * @param string $apiKey  the letter system's key ("tk_..."), sent as a bearer token
     * @param int    $timeout seconds a request may take, long polls excepted
     */
    public function __construct(string $baseUrl, private string $apiKey, private int $timeout = 30)
    {
        if ($apiKey === '') {
            throw new InvalidArgumentException('TekenGateway: the API key is empty');
        }
        $this->base = rtrim($baseUrl, '/');
    }

    /**
     * Submits a letter (POST /v1/letters) and returns the letter as the
     * gateway took it: state "queued", its id, its documents.
     *
     * $letter holds the fields of the API's SubmitRequest: terminal (or
     * group), signer (nip or cert_sha256), title, number, sender, documents.
     * A document's bytes are either inline ("content", base64) or in a file
     * part: "file" names a key of $files, whose value is a path or a
     * CURLFile. With files the request is a multipart form whose "letter"
     * part is the JSON; without, it is JSON.
     *
     * With an idempotency key the same request sent again (after a
     * timeout, say) returns the letter the first one made instead of a
     * second letter; another request under the same key is refused with
     * "idempotency_mismatch".
     *
     * @param array<string, string|CURLFile> $files
     */
    public function submitLetter(array $letter, array $files = [], ?string $idempotencyKey = null): array
    {
        $headers = [];
        if ($idempotencyKey !== null) {
            $headers[] = 'Idempotency-Key: ' . $idempotencyKey;
        }
        $json = json_encode($letter, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
        if ($files === []) {
            $headers[] = 'Content-Type: application/json';
            return $this->json('POST', '/v1/letters', $json, $headers);
        }
        // curl makes a multipart/form-data body of an array; a string
        // value is a plain field, a CURLFile a file part.
        $form = ['letter' => $json];
        foreach ($files as $name => $file) {
            if ($name === 'letter') {
                throw new InvalidArgumentException('TekenGateway: a file part may not be named "letter"');
            }
            if (is_string($file)) {
                if (!is_file($file) || !is_readable($file)) {
                    throw new InvalidArgumentException("TekenGateway: file part \"$name\": cannot read $file");
                }
                $file = new CURLFile($file, '', basename($file));
            }
            if (!$file instanceof CURLFile) {
                throw new InvalidArgumentException("TekenGateway: file part \"$name\": want a path or a CURLFile");
            }
            $form[(string) $name] = $file;
        }
        return $this->json('POST', '/v1/letters', $form, $headers);
    }

    /** The letter with its receipts and documents (GET /v1/letters/{id}). */
    public function getLetter(string $id): array
    {
        return $this->json('GET', '/v1/letters/' . rawurlencode($id));
    }

    /**
     * One page of the client's letters, oldest first (GET /v1/letters):
     * ['letters' => [...], 'next_cursor' => '...'], next_cursor absent on
     * the last page. $filter may hold state, signer and terminal.
     */
    public function listLetters(array $filter = [], ?string $cursor = null, ?int $limit = null): array
    {
        $q = array_intersect_key($filter, ['state' => 1, 'signer' => 1, 'terminal' => 1]);
        if ($cursor !== null && $cursor !== '') {
            $q['cursor'] = $cursor;
        }
        if ($limit !== null) {
            $q['limit'] = $limit;
        }
        $page = $this->json('GET', '/v1/letters' . ($q ? '?' . http_build_query($q) : ''));
        $page['letters'] ??= [];
        return $page;
    }

    /**
     * Every letter matching $filter, page after page.
     *
     * @return Generator<int, array>
     */
    public function allLetters(array $filter = []): Generator
    {
        $cursor = null;
        do {
            $page = $this->listLetters($filter, $cursor);
            yield from $page['letters'];
            $cursor = $page['next_cursor'] ?? null;
        } while ($cursor !== null && $cursor !== '');
    }

    /**
     * Asks for the letter to be withdrawn (POST /v1/letters/{id}/cancel). A
     * letter still queued is cancelled at once; one at its terminal is
     * final when the terminal answers, cancelled, or signed if the
     * official was quicker: watch its events. A final letter is refused
     * with "letter_final".
     */
    public function cancel(string $id, ?string $reason = null): array
    {
        $body = json_encode($reason === null ? new stdClass() : ['reason' => $reason], JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
        return $this->json('POST', '/v1/letters/' . rawurlencode($id) . '/cancel', $body, ['Content-Type: application/json']);
    }

    /**
     * The signed document's bytes: the signed PDF (pades), the CMS
     * SignedData (cms, DER) or the bare signature (raw). Refused with
     * "not_signed" before the letter is signed.
     */
    public function downloadSigned(string $letterId, string $docId): string
    {
        [$status, $body] = $this->request('GET', '/v1/letters/' . rawurlencode($letterId) . '/documents/' . rawurlencode($docId) . '/signed');
        if ($status !== 200) {
            throw self::failure($status, $body);
        }
        return $body;
    }

    /**
     * The client's events after seq $after, oldest first (GET /v1/events):
     * ['events' => [...], 'next' => seq]. With $wait > 0 the gateway holds
     * the request up to that many seconds (at most 60) until there is one.
     * Pass 'next' as $after to read on; webhooks carry the same seq.
     */
    public function events(int $after = 0, int $wait = 0, ?int $limit = null): array
    {
        $q = ['after' => $after];
        if ($wait > 0) {
            $q['wait'] = $wait;
        }
        if ($limit !== null) {
            $q['limit'] = $limit;
        }
        $feed = $this->json('GET', '/v1/events?' . http_build_query($q), null, [], $this->timeout + $wait);
        $feed['events'] ??= [];
        return $feed;
    }

    /** The terminals the client may use and their last status (GET /v1/terminals). */
    public function terminals(): array
    {
        return $this->json('GET', '/v1/terminals')['terminals'] ?? [];
    }

    /** Sends a request and decodes its JSON answer, or throws. */
    private function json(string $method, string $path, string|array|null $body = null, array $headers = [], ?int $timeout = null): array
    {
        [$status, $raw] = $this->request($method, $path, $body, $headers, $timeout);
        if ($status < 200 || $status > 299) {
            throw self::failure($status, $raw);
        }
        try {
            $out = json_decode($raw, true, 64, JSON_THROW_ON_ERROR);
        } catch (JsonException $e) {
            throw new TekenGatewayException($status, 'transport', "the gateway's answer is not JSON: " . $e->getMessage(),
                'jawaban gateway bukan JSON: ' . $e->getMessage(), $e);
        }
        if (!is_array($out)) {
            throw new TekenGatewayException($status, 'transport', "the gateway's answer is not a JSON object",
                'jawaban gateway bukan objek JSON');
        }
        return $out;
    }

    /**
     * Sends one request and returns its status and body.
     *
     * @return array{0: int, 1: string}
     */
    private function request(string $method, string $path, string|array|null $body = null, array $headers = [], ?int $timeout = null): array
    {
        $ch = curl_init($this->base . $path);
        $headers[] = 'Authorization: Bearer ' . $this->apiKey;
        $headers[] = 'Accept: application/json';
        // curl would otherwise wait a second for "100 Continue" before
        // sending a large form.
        $headers[] = 'Expect:';
        curl_setopt_array($ch, [
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_HTTPHEADER => $headers,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_CONNECTTIMEOUT => min(10, $this->timeout),
            CURLOPT_TIMEOUT => $timeout ?? $this->timeout,
            CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
            CURLOPT_USERAGENT => 'teken-php/1',
        ]);
        if ($body !== null) {
            curl_setopt($ch, CURLOPT_POSTFIELDS, $body);
        }
        $raw = curl_exec($ch);
        if ($raw === false) {
            $err = curl_error($ch);
            curl_close($ch);
            throw new TekenGatewayException(0, 'transport', "$method {$this->base}$path: $err",
                "$method {$this->base}$path: gateway tidak dapat dihubungi: $err");
        }
        $status = (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        curl_close($ch);
        return [$status, (string) $raw];
    }

    /** The exception of an error answer: the API's JSON error, or whatever a proxy on the way said. */
    private static function failure(int $status, string $raw): TekenGatewayException
    {
        $doc = json_decode($raw, true);
        $e = is_array($doc) ? ($doc['error'] ?? null) : null;
        if (is_array($e) && is_string($e['code'] ?? null)) {
            $msg = is_array($e['message'] ?? null) ? $e['message'] : [];
            return new TekenGatewayException($status, $e['code'], (string) ($msg['en'] ?? ''), (string) ($msg['id'] ?? ''));
        }
        $snippet = substr(trim($raw), 0, 200);
        return new TekenGatewayException($status, 'transport', "HTTP $status without the API's error: $snippet",
            "HTTP $status tanpa galat API: $snippet");
    }
}
