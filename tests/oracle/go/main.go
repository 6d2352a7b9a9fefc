// Command oracle reads Segment-spec request bodies the way a Go receiver does: encoding/json into
// Segment-shaped structs. Go matches struct field names case-insensitively with Unicode simple
// folding ("Context", "con\u017fent"), lets a later duplicate key win (decoding a repeated object
// into the one already decoded, so objects merge key by key), reads JSON null as "absent", and
// picks the body's kind from the endpoint, not from the body.
//
// It also reads RudderStack's context.consentManagement into rudder-server's own struct
// (processor/consent.go: a field of another type makes the whole object unusable, as
// rudder-server then ignores it), and, when a destination is given, its entry and All's in the
// integrations object (a map: exact keys, the last duplicate wins).
//
// Input, one JSON line per request:
//
//	{"path": "/v1/track", "body_b64": "...", "categories": ["Advertising"], "content_encoding": "gzip",
//	 "destination": "Mixpanel"}
//
// Output, one JSON line per input line:
//
//	{"kind": "batch"|"event", "error": null|"...", "items": [{"type": ..., "event": ...,
//	 "messageId": ..., "consent": null|"no_preferences"|{"Advertising": true, ...},
//	 "rudder": null|"unusable"|{"denied": {"Advertising": false, ...}, "allowed": null|{...}, "provider": "", "strategy": ""},
//	 "integrations": null|{"item": null|[dest, all], "batch": null|[dest, all]}}]}
//
// where dest and all are null (absent), "true", "false", "object" or "other".
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// The Segment shapes, as a Go receiver declares them.

type Consent struct {
	CategoryPreferences map[string]bool `json:"categoryPreferences"`
}

// ConsentManagementInfo is rudder-server's (processor/consent.go).
type ConsentManagementInfo struct {
	DeniedConsentIDs   []string    `json:"deniedConsentIds"`
	AllowedConsentIDs  interface{} `json:"allowedConsentIds"`
	Provider           string      `json:"provider"`
	ResolutionStrategy string      `json:"resolutionStrategy"`
}

type Context struct {
	Consent           *Consent        `json:"consent"`
	ConsentManagement json.RawMessage `json:"consentManagement"`
}

type Message struct {
	Type         *string         `json:"type"`
	Event        *string         `json:"event"`
	MessageID    *string         `json:"messageId"`
	Context      *Context        `json:"context"`
	Integrations json.RawMessage `json:"integrations"`
}

type Batch struct {
	Batch        []json.RawMessage `json:"batch"`
	Context      *Context          `json:"context"`
	Integrations json.RawMessage   `json:"integrations"`
}

type request struct {
	Path            string   `json:"path"`
	BodyB64         string   `json:"body_b64"`
	Categories      []string `json:"categories"`
	ContentEncoding string   `json:"content_encoding"`
	Destination     string   `json:"destination"`
}

type rudderReading struct {
	Denied map[string]bool `json:"denied"`
	// nil when allowedConsentIds lists no ID
	Allowed  map[string]bool `json:"allowed"`
	Provider string          `json:"provider"`
	Strategy string          `json:"strategy"`
}

type integrationsReading struct {
	Item  []interface{} `json:"item"`
	Batch []interface{} `json:"batch"`
}

type item struct {
	Type         *string              `json:"type"`
	Event        *string              `json:"event"`
	MessageID    *string              `json:"messageId"`
	Consent      interface{}          `json:"consent"` // nil, "no_preferences" or map[string]bool
	Rudder       interface{}          `json:"rudder"`  // nil, "unusable" or rudderReading
	Integrations *integrationsReading `json:"integrations"`
}

// isNull: a raw value that is absent or JSON null (Go reads both as absent).
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// rudder reads consentManagement as rudder-server does.
func rudder(raw json.RawMessage, categories []string) interface{} {
	if isNull(raw) {
		return nil
	}
	var info ConsentManagementInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return "unusable"
	}
	// rudder-server's allow-list release: an array's strings, or an object's keys, trimmed, the
	// empty ones dropped.
	var listed []string
	switch ids := info.AllowedConsentIDs.(type) {
	case []interface{}:
		for _, id := range ids {
			if s, ok := id.(string); ok {
				listed = append(listed, s)
			}
		}
	case map[string]interface{}:
		for id := range ids {
			listed = append(listed, id)
		}
	}
	var allowedIDs []string
	for _, id := range listed {
		if t := strings.TrimSpace(id); t != "" {
			allowedIDs = append(allowedIDs, t)
		}
	}
	if info.DeniedConsentIDs == nil && len(allowedIDs) == 0 {
		// Neither list: the decision has nothing to go on.
		return "unusable"
	}
	denied := make(map[string]bool, len(categories))
	for _, c := range categories {
		denied[c] = false
		for _, id := range info.DeniedConsentIDs {
			if id == c || strings.TrimSpace(id) == c {
				denied[c] = true
			}
		}
	}
	var allowed map[string]bool
	if len(allowedIDs) > 0 {
		allowed = make(map[string]bool, len(categories))
		for _, c := range categories {
			allowed[c] = false
			for _, id := range allowedIDs {
				if id == c {
					allowed[c] = true
				}
			}
		}
	}
	return rudderReading{Denied: denied, Allowed: allowed, Provider: info.Provider, Strategy: info.ResolutionStrategy}
}

func kind(v interface{}, present bool) interface{} {
	if !present || v == nil {
		return nil
	}
	switch t := v.(type) {
	case bool:
		if t {
			return "true"
		}
		return "false"
	case map[string]interface{}:
		return "object"
	default:
		return "other"
	}
}

// entries: the destination's and All's entries of an integrations value (nil when absent); an
// error when it is not an object.
func entries(raw json.RawMessage, destination string) ([]interface{}, error) {
	if isNull(raw) {
		return nil, nil
	}
	var m map[string]interface{}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	d, hasD := m[destination]
	a, hasA := m["All"]
	return []interface{}{kind(d, hasD), kind(a, hasA)}, nil
}

func rudderRaw(c *Context) json.RawMessage {
	if c == nil {
		return nil
	}
	return c.ConsentManagement
}

type result struct {
	Kind  string  `json:"kind"`
	Error *string `json:"error"`
	Items []item  `json:"items"`
}

// endpointKind: "batch" when the path's last non-empty segment (query removed) is "batch", "b"
// (analytics.js and the mobile libraries) or "import"; "event" when it names a single call
// ("track", "t", "identify", "i", ...); "" when it names nothing, and the body decides.
func endpointKind(path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	segments := strings.Split(path, "/")
	for i := len(segments) - 1; i >= 0; i-- {
		switch strings.ToLower(segments[i]) {
		case "":
			continue
		case "batch", "b", "import":
			return "batch"
		case "track", "t", "identify", "i", "page", "p", "screen", "s", "group", "g", "alias", "a":
			return "event"
		default:
			return ""
		}
	}
	return ""
}

// bodyIsBatch: at an endpoint that names no call, a Go receiver looks for a batch in the body,
// with Go's key folding (`Batch` is `batch`).
func bodyIsBatch(body []byte) bool {
	var probe struct {
		Batch json.RawMessage `json:"batch"`
	}
	_ = json.Unmarshal(body, &probe)
	return probe.Batch != nil
}

func decompress(body []byte, encoding string) ([]byte, error) {
	if len(body) == 0 {
		return body, nil
	}
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return body, nil
	case "gzip", "x-gzip":
		r, err := gzip.NewReader(bytes.NewReader(body)) // reads every member
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	case "deflate":
		r, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	default:
		return nil, fmt.Errorf("unsupported content-encoding %q", encoding)
	}
}

func newItem(m Message, consent *Consent, categories []string) item {
	it := item{Type: m.Type, Event: m.Event, MessageID: m.MessageID}
	cm := rudderRaw(m.Context)
	it.Rudder = rudder(cm, categories)
	switch {
	case consent == nil:
	case consent.CategoryPreferences == nil:
		it.Consent = "no_preferences"
	default:
		prefs := make(map[string]bool, len(categories))
		for _, name := range categories {
			prefs[name] = consent.CategoryPreferences[name] // exact key; missing is false
		}
		it.Consent = prefs
	}
	return it
}

func consentOf(c *Context) *Consent {
	if c == nil {
		return nil
	}
	return c.Consent
}

func read(path string, raw []byte, encoding string, categories []string, destination string) result {
	res := result{Kind: "event", Items: []item{}}
	var errs []string
	body, err := decompress(raw, encoding)
	kind := endpointKind(path)
	if kind == "" && err == nil && bodyIsBatch(body) {
		kind = "batch"
	}
	isBatch := kind == "batch"
	if isBatch {
		res.Kind = "batch"
	}
	switch {
	case err != nil:
		errs = append(errs, "content-encoding: "+err.Error())
		if !isBatch {
			res.Items = append(res.Items, item{})
		}
	case isBatch:
		var b Batch
		if err := json.Unmarshal(body, &b); err != nil {
			errs = append(errs, err.Error())
		}
		// Segment's merge: an item without its own context.consent uses the batch's.
		// rudder-server's gateway stores each item alone, without the batch's context: an item's
		// consentManagement is its own (newItem reads it).
		batchConsent := consentOf(b.Context)
		var batchEntries []interface{}
		if destination != "" {
			var err error
			if batchEntries, err = entries(b.Integrations, destination); err != nil {
				errs = append(errs, "integrations: "+err.Error())
			}
		}
		for i, rawItem := range b.Batch {
			var m Message
			if err := json.Unmarshal(rawItem, &m); err != nil {
				errs = append(errs, fmt.Sprintf("batch[%d]: %v", i, err))
			}
			consent := consentOf(m.Context)
			if consent == nil {
				consent = batchConsent
			}
			it := newItem(m, consent, categories)
			if destination != "" {
				mine, err := entries(m.Integrations, destination)
				if err != nil {
					errs = append(errs, fmt.Sprintf("batch[%d].integrations: %v", i, err))
				}
				it.Integrations = &integrationsReading{Item: mine, Batch: batchEntries}
			}
			res.Items = append(res.Items, it)
		}
	default:
		var m Message
		if err := json.Unmarshal(body, &m); err != nil {
			errs = append(errs, err.Error())
		}
		it := newItem(m, consentOf(m.Context), categories)
		if destination != "" {
			mine, err := entries(m.Integrations, destination)
			if err != nil {
				errs = append(errs, "integrations: "+err.Error())
			}
			it.Integrations = &integrationsReading{Item: mine}
		}
		res.Items = append(res.Items, it)
	}
	if len(errs) > 0 {
		text := strings.Join(errs, "; ")
		res.Error = &text
	}
	return res
}

func fatal(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "oracle: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	in := bufio.NewReader(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for n := 1; ; n++ {
		line, readErr := in.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var req request
			if err := json.Unmarshal(line, &req); err != nil {
				fatal("input line %d: %v", n, err)
			}
			body, err := base64.StdEncoding.DecodeString(req.BodyB64)
			if err != nil {
				fatal("input line %d: body_b64: %v", n, err)
			}
			if err := enc.Encode(read(req.Path, body, req.ContentEncoding, req.Categories, req.Destination)); err != nil {
				fatal("output: %v", err)
			}
			if err := out.Flush(); err != nil {
				fatal("output: %v", err)
			}
		}
		if readErr == io.EOF {
			return
		}
		if readErr != nil {
			fatal("input: %v", readErr)
		}
	}
}
