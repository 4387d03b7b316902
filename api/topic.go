package api

import (
	"fmt"
	"strings"
)

// DefaultRoot is the topic root when the configuration names none.
const DefaultRoot = "teken/v1"

// Kind names one per-terminal topic. Messages to the terminal travel on
// KindJobs and KindControl; the rest travel from the terminal.
type Kind string

// The per-terminal topics, all under {root}/t/{terminal}/.
const (
	KindJobs     Kind = "jobs"     // central → terminal: signed Job envelopes
	KindControl  Kind = "control"  // central → terminal: signed Cancel, ResultAck, ResultAcks and SyncRequest envelopes
	KindReceipts Kind = "receipts" // terminal → central: job stored or refused
	KindResults  Kind = "results"  // terminal → central: outcomes of jobs
	KindStatus   Kind = "status"   // terminal → central: retained health; the last will says offline
	KindSync     Kind = "sync"     // terminal → central: what the terminal holds, on every connect
)

// ValidTerminalID reports whether id is a terminal slug such as
// "kendari-setda-01": lowercase letters, digits and inner hyphens, at most 64
// characters, so it is safe as one MQTT topic level.
func ValidTerminalID(id string) error {
	if !isTerminalID(id) {
		return fmt.Errorf("terminal id %q: want 1-64 lowercase letters, digits and inner hyphens", id)
	}
	return nil
}

// ValidRoot reports whether root can prefix topics: non-empty levels without
// MQTT wildcards, no leading or trailing slash.
func ValidRoot(root string) error {
	if root == "" || strings.HasPrefix(root, "/") || strings.HasSuffix(root, "/") {
		return fmt.Errorf("topic root %q: want levels like %q without leading or trailing slash", root, DefaultRoot)
	}
	for _, level := range strings.Split(root, "/") {
		if level == "" || strings.ContainsAny(level, "+#\x00") {
			return fmt.Errorf("topic root %q: empty level or wildcard", root)
		}
	}
	return nil
}

// Topic returns the topic of one kind for one terminal.
func Topic(root, terminal string, kind Kind) string {
	return root + "/t/" + terminal + "/" + string(kind)
}

// AllTerminals returns the subscription filter for one kind across the fleet,
// as the central side uses it.
func AllTerminals(root string, kind Kind) string {
	return root + "/t/+/" + string(kind)
}

// ParseTopic splits a per-terminal topic into terminal id and kind.
func ParseTopic(root, topic string) (terminal string, kind Kind, err error) {
	rest, ok := strings.CutPrefix(topic, root+"/t/")
	if !ok {
		return "", "", fmt.Errorf("topic %q is not under %q", topic, root+"/t/")
	}
	terminal, k, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(k, "/") {
		return "", "", fmt.Errorf("topic %q: want %s/t/{terminal}/{kind}", topic, root)
	}
	if err := ValidTerminalID(terminal); err != nil {
		return "", "", fmt.Errorf("topic %q: %w", topic, err)
	}
	switch kind = Kind(k); kind {
	case KindJobs, KindControl, KindReceipts, KindResults, KindStatus, KindSync:
		return terminal, kind, nil
	}
	return "", "", fmt.Errorf("topic %q: unknown kind %q", topic, k)
}
