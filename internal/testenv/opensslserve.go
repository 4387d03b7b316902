package testenv

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
)

// opensslAnswer answers one HTTP query with openssl: the query goes to the
// file in, openssl runs with args (which name in and out), and the file out
// is sent as contentType. The OCSP responder and the timestamp authority
// run openssl once per request this way, behind a listener on 127.0.0.1:
// openssl's own servers bind every interface.
func opensslAnswer(w http.ResponseWriter, r *http.Request, openssl string, query []byte, in, out string, args []string, contentType string) {
	if err := os.WriteFile(in, query, 0o600); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if b, err := exec.CommandContext(r.Context(), openssl, args...).CombinedOutput(); err != nil {
		http.Error(w, strings.TrimSpace(string(b)), http.StatusInternalServerError)
		return
	}
	resp, err := os.ReadFile(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	_, _ = w.Write(resp)
}
