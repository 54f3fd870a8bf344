//! wasmq: a job runtime for bulk asset operations whose job types are
//! WebAssembly components. This crate is the host: library plus the `wasmq` binary.

pub mod api;
pub mod asset_routes;
pub mod assetbench;
pub mod assets;
pub mod auth;
pub mod bench;
pub mod capabilities;
pub mod events;
pub mod facade;
pub mod fairshare;
pub mod jobs;
pub mod paths;
pub mod plugins;
pub mod plugintest;
pub mod publish;
pub mod purge;
pub mod reload;
pub mod report;
pub mod runtime;
pub mod scaffold;
pub mod scheduler;
pub mod schedules;
pub mod server;
pub mod store;
pub mod submission;
pub mod toolchain;
pub mod ui;
