package api

import (
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

//go:embed schema/*.schema.json
var schemaFiles embed.FS

// SchemaNames returns the names of the JSON Schemas (draft 2020-12), one per
// message: cancel, job, receipt, result, result-ack, result-acks, status,
// sync, sync-request. The list is the embedded schema directory's, so a new
// schema file is a new name.
func SchemaNames() []string {
	entries, _ := fs.ReadDir(schemaFiles, "schema")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".schema.json"))
	}
	slices.Sort(names)
	return names
}

// Schema returns the JSON Schema of one message by name (see SchemaNames),
// so integrators can have it from the binary that speaks the protocol.
func Schema(name string) ([]byte, error) {
	b, err := schemaFiles.ReadFile("schema/" + name + ".schema.json")
	if err != nil {
		return nil, fmt.Errorf("schema %q: want one of %s", name, strings.Join(SchemaNames(), ", "))
	}
	return b, nil
}
