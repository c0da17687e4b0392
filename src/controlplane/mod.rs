//! The control plane: custom resource types (`crd`) and their controllers.
