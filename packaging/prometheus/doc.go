// Package prometheus holds Teken's Prometheus alerting rules (alerts.yml),
// their promtool unit tests (alerts_test.yml) and the Go tests that run
// promtool and check the Grafana dashboard beside it in ../grafana. It has no
// Go API: the rule and dashboard files are what IT installs.
package prometheus
