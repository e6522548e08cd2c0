//! Double Time: a Kalshi × Polymarket buy-both arbitrage host.
//!
//! Data flows one way: `venues` (wire → domain events) → `domain` (books, prices,
//! fees) → `bus` → `strategy` (wasm plugins) → `risk` → `execution` → `store`;
//! `api` observes and steers. `config` loads and validates the settings.

pub mod api;
pub mod app;
pub mod bench;
pub mod books;
pub mod bus;
pub mod config;
pub mod cores;
pub mod demo;
pub mod domain;
pub mod execution;
pub mod feeds;
pub mod replay;
pub mod risk;
pub mod sim;
pub mod store;
pub mod strategy;
pub mod venues;
