//! Who started an execution: the CLI or a CI system, from this process's environment.

/// Who started an execution from this process: the CLI, or a CI system detected from the
use assay_store::{CiContext, ContextType, RunningContext};
/// environment (GitHub Actions, GitLab CI, Buildkite, CircleCI, Jenkins) with its commit,
/// branch, pull request and pipeline URL.
pub fn running_context_from_env(kind: ContextType) -> RunningContext {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let ci = if env("GITHUB_ACTIONS").is_some() {
        Some(CiContext {
            provider: Some("github".into()),
            commit: env("GITHUB_SHA"),
            branch: env("GITHUB_HEAD_REF").or_else(|| env("GITHUB_REF_NAME")),
            pull_request: env("GITHUB_REF")
                .filter(|r| r.starts_with("refs/pull/"))
                .and_then(|r| r.split('/').nth(2).map(str::to_string)),
            pipeline_url: match (
                env("GITHUB_SERVER_URL"),
                env("GITHUB_REPOSITORY"),
                env("GITHUB_RUN_ID"),
            ) {
                (Some(s), Some(r), Some(i)) => Some(format!("{s}/{r}/actions/runs/{i}")),
                _ => None,
            },
        })
    } else if env("GITLAB_CI").is_some() {
        Some(CiContext {
            provider: Some("gitlab".into()),
            commit: env("CI_COMMIT_SHA"),
            branch: env("CI_COMMIT_REF_NAME"),
            pull_request: env("CI_MERGE_REQUEST_IID"),
            pipeline_url: env("CI_PIPELINE_URL"),
        })
    } else if env("BUILDKITE").is_some() {
        Some(CiContext {
            provider: Some("buildkite".into()),
            commit: env("BUILDKITE_COMMIT"),
            branch: env("BUILDKITE_BRANCH"),
            pull_request: env("BUILDKITE_PULL_REQUEST").filter(|p| p != "false"),
            pipeline_url: env("BUILDKITE_BUILD_URL"),
        })
    } else if env("CIRCLECI").is_some() {
        Some(CiContext {
            provider: Some("circleci".into()),
            commit: env("CIRCLE_SHA1"),
            branch: env("CIRCLE_BRANCH"),
            pull_request: env("CIRCLE_PULL_REQUEST"),
            pipeline_url: env("CIRCLE_BUILD_URL"),
        })
    } else if env("JENKINS_URL").is_some() {
        Some(CiContext {
            provider: Some("jenkins".into()),
            commit: env("GIT_COMMIT"),
            branch: env("GIT_BRANCH"),
            pull_request: env("CHANGE_ID"),
            pipeline_url: env("BUILD_URL"),
        })
    } else {
        None
    };
    let actor = env("GITHUB_ACTOR")
        .or_else(|| env("GITLAB_USER_LOGIN"))
        .or_else(|| env("BUILDKITE_BUILD_CREATOR"))
        .or_else(|| env("CIRCLE_USERNAME"))
        .or_else(|| env("USER"));
    match ci {
        Some(ci) if kind == ContextType::Cli => RunningContext {
            kind: ContextType::Ci,
            actor,
            ci: Some(ci),
            execution_id: None,
        },
        ci => RunningContext {
            kind,
            actor,
            ci,
            execution_id: None,
        },
    }
}
