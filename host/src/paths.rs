//! Asset path syntax and job scoping, re-exported from the pure `wasmq-request`
//! crate (which the fuzz targets build without the rest of the host).

pub use wasmq_request::paths::*;
