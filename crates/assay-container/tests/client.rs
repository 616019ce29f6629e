//! The Docker Engine API client against a real engine.

use assay_container::client::{Engine, EngineError, PullPolicy};

use crate::support::{TINY, engine_host};

fn no_progress() -> impl FnMut(String) + Send {
    |_| {}
}

#[tokio::test]
async fn connects_and_finds_local_images() {
    let Some(host) = engine_host() else { return };
    let engine = Engine::connect(Some(&host))
        .await
        .expect("the test engine answers");
    assert_eq!(engine.endpoint(), host);
    assert!(engine.has_image(TINY).await.unwrap());
    assert!(
        !engine
            .has_image("localhost/assay-no-such-image:1")
            .await
            .unwrap()
    );
    // Never and IfNotPresent use the local image without pulling.
    for policy in [PullPolicy::Never, PullPolicy::IfNotPresent] {
        let mut lines = Vec::new();
        engine
            .ensure_image(TINY, policy, &mut |l| lines.push(l))
            .await
            .unwrap();
        assert!(lines.is_empty(), "{policy:?} pulled: {lines:?}");
    }
}

#[tokio::test]
async fn a_missing_socket_is_one_clear_error_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("unix://{}/docker.sock", dir.path().display());
    let err = Engine::connect(Some(&endpoint)).await.unwrap_err();
    assert!(matches!(err, EngineError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&endpoint), "{text}");
    assert!(text.contains("hint: start Docker or Podman"), "{text}");
    assert!(text.contains("DOCKER_HOST"), "{text}");
    assert!(!err.is_input_error());
}

#[tokio::test]
async fn a_socket_nobody_serves_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.sock");
    // A socket file whose listener is gone: connecting is refused.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let err = Engine::connect(Some(&format!("unix://{}", path.display())))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn never_refuses_an_image_that_is_not_here() {
    let Some(host) = engine_host() else { return };
    let engine = Engine::connect(Some(&host)).await.unwrap();
    let image = "localhost/assay-no-such-image:1";
    let err = engine
        .ensure_image(image, PullPolicy::Never, &mut no_progress())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        EngineError::ImageNotPresent {
            image: image.into()
        }
    );
    assert!(err.is_input_error());
    assert!(
        err.to_string().contains("imagePullPolicy: IfNotPresent"),
        "{err}"
    );
}

#[tokio::test]
async fn a_pull_that_cannot_succeed_says_why_and_reports_progress() {
    let Some(host) = engine_host() else { return };
    let engine = Engine::connect(Some(&host)).await.unwrap();
    // No registry answers on this port: the pull fails, after saying it started.
    let image = "127.0.0.1:9/assay/missing:1";
    let mut lines = Vec::new();
    let err = engine
        .ensure_image(image, PullPolicy::IfNotPresent, &mut |l| lines.push(l))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::PullFailed { image: i, .. } if i == image),
        "{err:?}"
    );
    assert!(err.is_input_error());
    assert_eq!(
        lines.first().map(String::as_str),
        Some(&*format!("pulling image {image}"))
    );
}
