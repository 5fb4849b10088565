package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// document is one object read from the input, with where it starts.
type document struct {
	source string // file:line
	kind   string
	raw    []byte // JSON
}

// inputError is bad input; the command exits with 2.
type inputError struct{ err error }

func (e inputError) Error() string { return e.err.Error() }
func (e inputError) Unwrap() error { return e.err }

func badInput(format string, args ...any) error { return inputError{fmt.Errorf(format, args...)} }

// readDocuments reads every object of the files, directories (their .yaml,
// .yml and .json files) and "-" (standard input) given, in order, unpacking
// lists.
func readDocuments(paths []string, stdin io.Reader) ([]document, error) {
	var docs []document
	for _, path := range paths {
		files, err := expand(path)
		if err != nil {
			return nil, err
		}
		for _, file := range files {
			var data []byte
			if file == "-" {
				data, err = io.ReadAll(stdin)
			} else {
				data, err = os.ReadFile(file)
			}
			if err != nil {
				return nil, badInput("reading %s: %w", file, err)
			}
			name := file
			if file == "-" {
				name = "<stdin>"
			}
			found, err := splitDocuments(name, data)
			if err != nil {
				return nil, err
			}
			docs = append(docs, found...)
		}
	}
	return docs, nil
}

func expand(path string) ([]string, error) {
	if path == "-" {
		return []string{"-"}, nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, badInput("%w", err)
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, badInput("%w", err)
	}
	var files []string
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	slices.Sort(files)
	return files, nil
}

var (
	yamlLine       = regexp.MustCompile(`line (\d+)`)
	yamlLinePrefix = regexp.MustCompile(`line \d+: `)
)

// splitDocuments splits a YAML stream at its "---" lines and converts each
// document to JSON, reporting errors at their line in the file.
func splitDocuments(name string, data []byte) ([]document, error) {
	var docs []document
	var current bytes.Buffer
	start, lineNo := 1, 0
	flush := func() error {
		defer current.Reset()
		if len(bytes.TrimSpace(current.Bytes())) == 0 {
			return nil
		}
		raw, err := yaml.YAMLToJSON(current.Bytes())
		if err != nil {
			return badInput("%s:%d: %s", name, errorLine(err, start), cleanYAMLError(err))
		}
		if string(raw) == "null" {
			return nil // a document of comments only
		}
		found, err := unpack(fmt.Sprintf("%s:%d", name, start), raw)
		docs = append(docs, found...)
		return err
	}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	scanner.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for scanner.Scan() {
		lineNo++
		line := scanner.Text()
		if line == "---" || strings.HasPrefix(line, "--- ") {
			if err := flush(); err != nil {
				return nil, err
			}
			start = lineNo + 1
			continue
		}
		current.WriteString(line)
		current.WriteByte('\n')
	}
	if err := scanner.Err(); err != nil {
		return nil, badInput("reading %s: %w", name, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return docs, nil
}

// errorLine turns a YAML parser's "line N" into a line of the file.
func errorLine(err error, start int) int {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return start + n - 1
	}
	return start
}

func cleanYAMLError(err error) string {
	return yamlLinePrefix.ReplaceAllString(strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "), "")
}

// unpack returns the object, or the items of a list.
func unpack(source string, raw []byte) ([]document, error) {
	var head struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, badInput("%s: not a Kubernetes object: %w", source, err)
	}
	if head.Kind == "" {
		return nil, badInput("%s: the object has no kind", source)
	}
	if head.Kind != "List" && !strings.HasSuffix(head.Kind, "List") {
		return []document{{source: source, kind: head.Kind, raw: raw}}, nil
	}
	var docs []document
	for i, item := range head.Items {
		found, err := unpack(fmt.Sprintf("%s (item %d)", source, i), item)
		if err != nil {
			return nil, err
		}
		docs = append(docs, found...)
	}
	return docs, nil
}

// decodeStrict decodes a document into out, refusing unknown and duplicate
// fields with their path, as the API server's strict field validation does.
func decodeStrict(doc document, out any) error {
	strict, err := kjson.UnmarshalStrict(doc.raw, out, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		return badInput("%s: %w", doc.source, err)
	}
	if len(strict) > 0 {
		return badInput("%s: %w", doc.source, errors.Join(strict...))
	}
	return nil
}
