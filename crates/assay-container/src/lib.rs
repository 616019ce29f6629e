//! The container runtime of Assay: each step, service and parallel worker of a plan runs in its
//! image through the Docker Engine API (Docker, or Podman's compatible socket).

pub mod client;
mod config;
mod ownership;
pub mod runtime;

pub use ownership::sweep;
pub use runtime::{ContainerRuntime, DEFAULT_IMAGE};
