//! Host bindings generated from `wit/strategy.wit`, the single source of truth.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "strategy",
});

// The world's `use types.{...}` already brings MarketInfo, MarketView,
// Opportunity, Param and PluginInfo to this module's root.
pub use self::doubletime::strategy::types::{LogLevel, ParamSpec, Venue, VenueQuote};

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "1.0.0";
