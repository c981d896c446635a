// Package yamlnode holds the yaml.v3 node helpers the project's file
// parsers (engine config, campaign files) share to report errors by line.
package yamlnode

import "gopkg.in/yaml.v3"

// Deref follows a YAML alias (*name) to the node it names.
func Deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// KindName names a node's kind as an error message would.
func KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	}
	return "node"
}
