//! Miroir: one Meilisearch API in front of a fleet of unmodified Meilisearch nodes.
//!
//! * [`commands`] — `miroir serve` and `miroir dev`
//! * [`model`] — the Meilisearch model: validated index uids, document ids, setting routes
//! * [`http`] — the HTTP layer: one module per Meilisearch resource, auth at the edge
//! * [`auth`] — API keys, tenant tokens and the action/index check of every request
//! * [`dataplane`] — routing, health, the read (scatter/merge) and write (fan-out/quorum) services
//! * [`controlplane`] — custom resources and their controllers
//! * [`store`] — durable state (tasks, leases, mirrored CR state) on SQLite or Redis
//! * [`node`] — client for one Meilisearch node

pub mod auth;
pub mod commands;
pub mod config;
pub mod error;
pub mod model;
pub mod dataplane;
pub mod http;
pub mod controlplane;
pub mod store;
pub mod node;
