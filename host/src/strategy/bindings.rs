//! Host bindings generated from `wit/strategy.wit`, the single source of truth.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "strategy",
    // Tests and the runtime compare what plugins return.
    additional_derives: [PartialEq],
});

// The world's `use types.{...}` already brings MarketInfo, MarketView,
// Opportunity, Param and PluginInfo to this module's root.
pub use self::doubletime::strategy::types::{LogLevel, ParamSpec, Venue, VenueQuote};

/// The optional 1.1 export `top-of-book`. Only its export bindings are used:
/// the rest of the `strategy-top` world is the `strategy` world above, whose
/// types and host imports are shared rather than generated twice.
pub mod top {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "strategy-top",
        // The runtime compares terms with those a plugin was last given.
        additional_derives: [PartialEq, Eq],
        with: {
            "doubletime:strategy/types": super::doubletime::strategy::types,
            "doubletime:strategy/host": super::doubletime::strategy::host,
        },
    });

    pub use self::exports::doubletime::strategy::top_of_book::{
        Guest as TopOfBook, GuestIndices as TopOfBookIndices, MarketTerms, TopView, VenueTerms,
        VenueTop,
    };
}

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "1.1.0";
