//! Finding the test engine.
#![allow(dead_code)]

/// The tiny busybox image (`scripts/container-images.sh`).
pub const TINY: &str = "localhost/assay-tiny:1";
/// busybox whose entrypoint serves `/www` over HTTP on port 8080.
pub const WEB: &str = "localhost/assay-web:1";
/// Debian minbase with python3 and curl.
pub const PY: &str = "localhost/assay-py:1";

/// The engine the tests use (`ASSAY_TEST_DOCKER_HOST`), or `None` when the caller said to skip
/// container tests (`ASSAY_TEST_SKIP_CONTAINERS=1`; the skip is said loudly). Without either,
/// the test fails: a missing engine must not look like a pass.
pub fn engine_host() -> Option<String> {
    if let Ok(host) = std::env::var("ASSAY_TEST_DOCKER_HOST")
        && !host.is_empty()
    {
        return Some(host);
    }
    if std::env::var("ASSAY_TEST_SKIP_CONTAINERS").as_deref() == Ok("1") {
        eprintln!("SKIPPED: no container engine (ASSAY_TEST_SKIP_CONTAINERS=1)");
        return None;
    }
    panic!(
        "container tests need a Docker Engine API: run scripts/test.sh (it starts Podman and sets ASSAY_TEST_DOCKER_HOST), or set ASSAY_TEST_SKIP_CONTAINERS=1 to skip them"
    );
}
