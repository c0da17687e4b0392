//! Miroir: one Meilisearch API in front of a fleet of unmodified Meilisearch nodes.
//!
//! * [`commands`] — `miroir serve` and `miroir dev`
//! * [`dataplane`] — HTTP API, routing, scatter/gather, merge
//! * [`controlplane`] — custom resources and their controllers
//! * [`store`] — durable state (tasks, leases, mirrored CR state) on SQLite or Redis
//! * [`node`] — client for one Meilisearch node

pub mod commands;
pub mod config;
pub mod error;
pub mod dataplane;
pub mod controlplane;
pub mod store;
pub mod node;
