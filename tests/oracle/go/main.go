// Command oracle reads Segment-spec request bodies the way a Go receiver does: encoding/json into
// Segment-shaped structs. Go matches struct field names case-insensitively with Unicode simple
// folding ("Context", "con\u017fent"), lets a later duplicate key win (decoding a repeated object
// into the one already decoded, so objects merge key by key), reads JSON null as "absent", and
// picks the body's kind from the endpoint, not from the body.
//
// Input, one JSON line per request:
//
//	{"path": "/v1/track", "body_b64": "...", "categories": ["Advertising"], "content_encoding": "gzip"}
//
// Output, one JSON line per input line:
//
//	{"kind": "batch"|"event", "error": null|"...", "items": [{"type": ..., "event": ...,
//	 "messageId": ..., "consent": null|"no_preferences"|{"Advertising": true, ...}}]}
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

type Context struct {
	Consent *Consent `json:"consent"`
}

type Message struct {
	Type      *string  `json:"type"`
	Event     *string  `json:"event"`
	MessageID *string  `json:"messageId"`
	Context   *Context `json:"context"`
}

type Batch struct {
	Batch   []json.RawMessage `json:"batch"`
	Context *Context          `json:"context"`
}

type request struct {
	Path            string   `json:"path"`
	BodyB64         string   `json:"body_b64"`
	Categories      []string `json:"categories"`
	ContentEncoding string   `json:"content_encoding"`
}

type item struct {
	Type      *string     `json:"type"`
	Event     *string     `json:"event"`
	MessageID *string     `json:"messageId"`
	Consent   interface{} `json:"consent"` // nil, "no_preferences" or map[string]bool
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

func read(path string, raw []byte, encoding string, categories []string) result {
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
		batchConsent := consentOf(b.Context)
		for i, rawItem := range b.Batch {
			var m Message
			if err := json.Unmarshal(rawItem, &m); err != nil {
				errs = append(errs, fmt.Sprintf("batch[%d]: %v", i, err))
			}
			consent := consentOf(m.Context)
			if consent == nil {
				consent = batchConsent
			}
			res.Items = append(res.Items, newItem(m, consent, categories))
		}
	default:
		var m Message
		if err := json.Unmarshal(body, &m); err != nil {
			errs = append(errs, err.Error())
		}
		res.Items = append(res.Items, newItem(m, consentOf(m.Context), categories))
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
			if err := enc.Encode(read(req.Path, body, req.ContentEncoding, req.Categories)); err != nil {
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
