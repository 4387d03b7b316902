package gateway

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

//go:embed i18n/*.json
var catalogues embed.FS

// catalogue holds the text of every error code, one map per language.
var catalogue = func() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, lang := range []string{"en", "id"} {
		raw, err := catalogues.ReadFile("i18n/" + lang + ".json")
		if err != nil {
			panic(err) // embedded at build time
		}
		m := map[string]string{}
		if err := json.Unmarshal(raw, &m); err != nil {
			panic(fmt.Sprintf("i18n/%s.json: %v", lang, err))
		}
		out[lang] = m
	}
	return out
}()

// apiError is an answer of the API that is not a success: an HTTP
// status, a code a program decides on, and the text in both languages.
type apiError struct {
	status int
	code   string
	params map[string]string
}

func (e *apiError) Error() string { return e.code + ": " + e.text("en") }

func (e *apiError) text(lang string) string {
	s := catalogue[lang][e.code]
	for k, v := range e.params {
		s = strings.ReplaceAll(s, "{"+k+"}", v)
	}
	return s
}

func fail(status int, code string, kv ...string) *apiError {
	e := &apiError{status: status, code: code, params: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		e.params[kv[i]] = kv[i+1]
	}
	return e
}

func malformed(format string, a ...any) *apiError {
	return fail(http.StatusBadRequest, "malformed", "detail", fmt.Sprintf(format, a...))
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string            `json:"code"`
	Message map[string]string `json:"message"` // "en" and "id"
}

func writeError(w http.ResponseWriter, e *apiError) {
	body := errorBody{Error: errorDetail{Code: e.code, Message: map[string]string{"en": e.text("en"), "id": e.text("id")}}}
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":{"code":"internal"}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(raw, '\n'))
}
