//! polymarket adapter (PROTOCOLS.md).
