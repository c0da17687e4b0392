//! A small in-process Meilisearch-compatible node used by the test harness when no real
//! `meilisearch` binary is given (`MEILI_BIN`). Every behaviour it has is Meilisearch's
//! (checked against `../shared/meilisearch-contract`); it lacks much that Meilisearch has.
//!
//! Seam: [`TestNode::start`] binds an ephemeral port on 127.0.0.1 and serves until dropped.

pub mod engine;
