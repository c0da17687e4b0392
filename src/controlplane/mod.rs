//! The control plane: custom resource types (`crd`) and their controllers.

pub mod crd;
pub mod desired;
pub mod leader;
pub mod metrics;
pub mod controller;
pub mod mirror;
pub mod operator;
pub mod cli;
