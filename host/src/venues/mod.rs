//! Exchange adapters: each venue's wire protocol translated into domain events
//! and domain orders into the venue's requests. Wire types never leave here.

pub mod background;
pub mod feed;
pub mod http;
pub mod kalshi;
pub mod order_line;
pub mod polymarket;
pub mod wire;
