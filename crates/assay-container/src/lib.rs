//! The container runtime of Assay: each step, service and parallel worker of a plan runs in its
//! image through the Docker Engine API (Docker, or Podman's compatible socket).

pub mod client;
pub mod runtime;

pub use runtime::{ContainerRuntime, DEFAULT_IMAGE, sweep};
