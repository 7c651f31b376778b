"""Many numbers, several nodes: numbers as rows, one lease per number, nodes that share."""
