package workflow

// Node kinds, as NodeInfo.Kind reports them.
const (
	KindPlugin   = "plugin"   // runs its plugin once
	KindMap      = "map"      // runs its plugin once per item (for_each)
	KindTimer    = "timer"    // sleep or until: runs no plugin
	KindEvent    = "event"    // wait_for: runs no plugin
	KindWorkflow = "workflow" // runs another workflow as a child run
)

// Kind is what n runs: one of the Kind constants.
func (n *Node) Kind() string {
	switch {
	case n.Wait != nil:
		return KindEvent
	case n.Timer != nil:
		return KindTimer
	case n.Workflow != "":
		return KindWorkflow
	case n.Map != nil:
		return KindMap
	}
	return KindPlugin
}
