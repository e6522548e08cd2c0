//! kalshi adapter (PROTOCOLS.md).
