//! Start-up reconciliation: a trade whose intent was written but whose
//! outcome was not (the host died between sending and booking) is settled
//! from what the venues say about each of its orders.
