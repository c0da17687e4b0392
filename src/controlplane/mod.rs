//! The control plane: custom resource types and their controllers (`miroir operator`).
//!
//! * [`crd`] — the five custom resources (the single source of `crds/`)
//! * [`desired`] — pure stages: validate a MiroirCluster, build the desired state, compute status
//! * [`managed`] — pure: the Meilisearch nodes the operator runs (StatefulSets, Services, PDBs, scaling, rolling)
//! * [`controller`] — the MiroirCluster controller (read → validate → desired → apply → status)
//! * [`mirror`] — Alias, Tenant, Canary, RolloverPolicy mirrored into task-store tables
//! * [`leader`] — leader election through the task store
//! * [`metrics`] — controller metrics
//! * [`operator`] — one operator process: election plus all controllers
//! * [`cli`] — `miroir crd` and `miroir operator`

pub mod crd;
pub mod desired;
pub mod managed;
pub mod leader;
pub mod metrics;
pub mod controller;
pub mod mirror;
pub mod operator;
pub mod cli;
