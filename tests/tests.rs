//! Integration tests: the hoist binary against real peers.
