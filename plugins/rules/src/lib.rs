//! The shipped strategy rules on plain integers (units of wit/strategy.wit), free
//! of any bindings: the Rust plugins wrap them, the host runs them natively as
//! the benchmark baseline and the reference in scenario tests.

pub mod buy_both;
pub mod walk_books;
