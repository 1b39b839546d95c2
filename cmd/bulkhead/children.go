package main

import (
	"fmt"
	"path/filepath"

	"github.com/bulkhead-run/bulkhead/host/workflow"
)

// addChildWorkflows registers the workflows that w's workflow nodes run
// (and theirs), read from the workflow files beside w's file.
func addChildWorkflows(e *workflow.Engine, w *workflow.Workflow, opts workflow.ParseOptions) error {
	var names []string
	for _, n := range w.Nodes {
		if n.Workflow != "" {
			names = append(names, n.Workflow)
		}
	}
	if len(names) == 0 {
		return nil
	}
	dir := filepath.Dir(w.File)
	ws, _ := workflow.LoadDir(dir, opts) // files no node needs may be broken
	for len(names) > 0 {
		name := names[0]
		names = names[1:]
		if _, ok := e.Workflow(name); ok || name == w.Name {
			continue
		}
		c := ws[name]
		if c == nil {
			return fmt.Errorf("workflow %q (run by a node of %s) is not in %s", name, w.Name, dir)
		}
		e.AddWorkflow(c)
		for _, n := range c.Nodes {
			if n.Workflow != "" {
				names = append(names, n.Workflow)
			}
		}
	}
	return nil
}
