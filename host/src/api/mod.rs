//! REST control API (axum): arrives with the API work.
