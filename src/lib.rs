//! Miroir: one Meilisearch API in front of a fleet of unmodified Meilisearch nodes.
//!
//! * [`dataplane`] — HTTP API, routing, scatter/gather, merge
//! * [`controlplane`] — custom resources and their controllers
//! * [`store`] — durable state (tasks, leases, mirrored CR state) on SQLite or Redis
//! * [`node`] — client for one Meilisearch node
//! * [`testnode`] — the in-repo Meilisearch-compatible node used by tests

pub mod config;
pub mod error;
pub mod dataplane;
pub mod controlplane;
pub mod store;
pub mod node;
pub mod testnode;
