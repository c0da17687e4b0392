//! The control plane: custom resource types (`crd`) and their controllers.

pub mod crd;
pub mod desired;
