//! Pure request checks of wasmq, free of wasmtime and I/O so that the fuzz
//! targets build in seconds: asset path syntax and job submission bodies.

pub mod paths;
pub mod submission;
