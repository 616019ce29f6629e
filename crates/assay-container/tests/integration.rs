//! The container runtime's integration tests: one binary, the files beside it as modules.
//! They need a Docker Engine API with the test images of `scripts/container-images.sh`
//! (`scripts/test.sh` starts Podman and sets `ASSAY_TEST_DOCKER_HOST`).

mod client;
mod support;
