//! Answers to questions in plain words: a structured [`Query`] (from `assay-assist`'s grammar,
//! or an LLM's answer checked the same way) run against the history. Executions are filtered
//! in the store (workflow, statuses, tags, time); tools and labels are properties of the
//! workflow, read once per workflow from its stored definition, else from the definition its
//! newest execution ran.

use std::collections::{BTreeMap, HashMap};

use assay_assist::Tool;
use assay_assist::ask::{Query, Status, Subject};
use assay_reports::CaseStatus;
use assay_reports::flaky::FlakyPolicy;
use assay_store::{
    DefinitionKind, ExecutionFilter, ExecutionRef, ExecutionStatus, ExecutionSummary,
    LabelSelector, now_ms,
};
use serde::Serialize;

use crate::Service;
use crate::error::{ServiceError, ServiceResult};

/// At most this many executions are looked at for one question (newest first).
pub const SCAN_LIMIT: u32 = 2000;
/// At most this many test cases are read for one question.
const CASE_SCAN_LIMIT: usize = 200_000;
/// Rows in an answer when the question gives no limit.
pub const DEFAULT_ROWS: u32 = 100;

/// One execution in an answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRow {
    pub id: String,
    pub name: String,
    pub workflow: String,
    pub status: ExecutionStatus,
    pub scheduled_at: i64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// One test case of one execution in an answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestRow {
    pub workflow: String,
    pub execution: String,
    pub execution_id: String,
    pub key: String,
    pub name: String,
    pub status: CaseStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub scheduled_at: i64,
}

/// One flaky test in an answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlakyRow {
    pub workflow: String,
    pub key: String,
    pub name: String,
    pub runs: u32,
    pub failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_flake_at: Option<i64>,
}

/// What a question found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub query: Query,
    /// How many rows matched (before the limit).
    pub total: usize,
    /// Rows were left out: by the limit, or the scan stopped at [`SCAN_LIMIT`] executions.
    pub truncated: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub executions: Vec<ExecutionRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<TestRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flaky: Vec<FlakyRow>,
}

/// What a workflow is, for tool and label filters.
#[derive(Debug, Clone, Default)]
pub(crate) struct Profile {
    pub(crate) labels: BTreeMap<String, String>,
    /// The definition's text, lowercased (which tools its steps run).
    text: String,
}

impl Profile {
    fn uses(&self, workflow: &str, tool: Tool) -> bool {
        if let Some(t) = self.labels.get("tool") {
            return Tool::parse(t) == Some(tool);
        }
        let name = workflow.to_ascii_lowercase();
        name.split(['-', '_', '.'])
            .any(|part| Tool::parse(part) == Some(tool))
            || keywords(tool).iter().any(|k| self.text.contains(k))
    }
}

/// Words in a workflow's definition that say it runs the tool.
fn keywords(tool: Tool) -> &'static [&'static str] {
    match tool {
        Tool::Pytest => &["pytest"],
        Tool::NodeTest => &["node --test"],
        Tool::Jest => &["jest"],
        Tool::Vitest => &["vitest"],
        Tool::Go => &["go test", "gotestsum"],
        Tool::Nextest => &["nextest"],
        Tool::Playwright => &["playwright"],
        Tool::Cypress => &["cypress"],
        Tool::K6 => &["k6 run", "official/k6"],
        Tool::Postman => &["newman", "official/postman"],
        Tool::Jmeter => &["jmeter"],
    }
}

fn exec_status(s: Status) -> ExecutionStatus {
    match s {
        Status::Passed => ExecutionStatus::Passed,
        Status::Failed => ExecutionStatus::Failed,
        Status::Skipped => ExecutionStatus::Canceled,
        Status::Aborted => ExecutionStatus::Aborted,
        Status::Canceled => ExecutionStatus::Canceled,
        Status::Running => ExecutionStatus::Running,
        Status::Queued => ExecutionStatus::Queued,
    }
}

impl Service {
    /// The names of the stored workflows (the words `assay ask` knows as workflows).
    pub async fn workflow_names(&self) -> ServiceResult<Vec<String>> {
        Ok(self
            .store
            .list_definitions(DefinitionKind::Workflow, &LabelSelector::default())
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect())
    }

    /// The rows `query` asks for, newest first.
    pub async fn answer(&self, query: &Query) -> ServiceResult<Answer> {
        let problems = query.problems();
        if !problems.is_empty() {
            return Err(ServiceError::BadRequest(problems.join("; ")));
        }
        let limit = query.limit.unwrap_or(DEFAULT_ROWS) as usize;
        let mut answer = Answer {
            query: query.clone(),
            total: 0,
            truncated: false,
            executions: Vec::new(),
            tests: Vec::new(),
            flaky: Vec::new(),
        };
        if query.subject == Subject::Flaky {
            return self.answer_flaky(query, answer, limit).await;
        }
        // Test statuses filter cases, not executions (a passed execution may hold a skipped
        // test; a failed one passed tests).
        let statuses = if query.subject == Subject::Executions {
            let mut s: Vec<ExecutionStatus> =
                query.statuses.iter().map(|s| exec_status(*s)).collect();
            s.dedup();
            s
        } else {
            Vec::new()
        };
        let filter = ExecutionFilter {
            workflow: query.workflow.clone(),
            statuses,
            tags: query.tags.clone(),
            since: query.since,
            limit: Some(SCAN_LIMIT + 1),
            before_id: None,
        };
        let mut executions = self.store.list_executions(&filter).await?;
        if executions.len() > SCAN_LIMIT as usize {
            executions.truncate(SCAN_LIMIT as usize);
            answer.truncated = true;
        }
        executions.retain(|e| query.until.is_none_or(|u| e.scheduled_at < u));
        let executions = self.by_workflow(query, executions).await?;
        match query.subject {
            Subject::Executions => {
                answer.total = executions.len();
                answer.truncated |= executions.len() > limit;
                answer.executions = executions
                    .into_iter()
                    .take(limit)
                    .map(|e| ExecutionRow {
                        id: e.id,
                        name: e.name,
                        workflow: e.workflow,
                        status: e.status,
                        scheduled_at: e.scheduled_at,
                        tags: e.tags.into_iter().collect(),
                    })
                    .collect();
            }
            Subject::Tests => {
                let cases: Vec<CaseStatus> = query
                    .statuses
                    .iter()
                    .flat_map(|s| match s {
                        Status::Failed => vec![CaseStatus::Failed, CaseStatus::Error],
                        Status::Passed => vec![CaseStatus::Passed],
                        Status::Skipped => vec![CaseStatus::Skipped],
                        _ => Vec::new(),
                    })
                    .collect();
                if !query.statuses.is_empty() && cases.is_empty() {
                    return Err(ServiceError::BadRequest(
                        "tests are passed, failed or skipped: ask for runs to filter by other statuses".into(),
                    ));
                }
                let needle = query.test.as_ref().map(|t| t.to_lowercase());
                let mut read = 0usize;
                for e in &executions {
                    let found = self
                        .store
                        .test_cases(&ExecutionRef::Id(e.id.clone()), &cases)
                        .await?;
                    read += found.len();
                    for c in found {
                        if let Some(n) = &needle
                            && !c.key.to_lowercase().contains(n)
                            && !c.case.name.to_lowercase().contains(n)
                        {
                            continue;
                        }
                        answer.total += 1;
                        if answer.tests.len() < limit {
                            answer.tests.push(TestRow {
                                workflow: e.workflow.clone(),
                                execution: e.name.clone(),
                                execution_id: e.id.clone(),
                                key: c.key,
                                name: c.case.name,
                                status: c.case.status,
                                message: c
                                    .case
                                    .message
                                    .as_deref()
                                    .and_then(|m| m.lines().find(|l| !l.trim().is_empty()))
                                    .map(|l| l.chars().take(200).collect()),
                                scheduled_at: e.scheduled_at,
                            });
                        }
                    }
                    if read > CASE_SCAN_LIMIT {
                        answer.truncated = true;
                        break;
                    }
                }
                answer.truncated |= answer.total > answer.tests.len();
            }
            Subject::Flaky => unreachable!("answered above"),
        }
        Ok(answer)
    }

    async fn answer_flaky(
        &self,
        query: &Query,
        mut answer: Answer,
        limit: usize,
    ) -> ServiceResult<Answer> {
        let now = now_ms();
        let mut policy = FlakyPolicy::default();
        if let Some(since) = query.since {
            policy.window_ms = (now - since).max(1);
        }
        let found = self
            .store
            .flaky_tests(query.workflow.as_deref(), &policy, now)
            .await?;
        let needle = query.test.as_ref().map(|t| t.to_lowercase());
        let mut profiles: HashMap<String, Profile> = HashMap::new();
        for f in found.into_iter().filter(|f| f.verdict.flaky) {
            if let Some(n) = &needle
                && !f.key.to_lowercase().contains(n)
            {
                continue;
            }
            if query.tool.is_some() || !query.labels.is_empty() {
                if !profiles.contains_key(&f.workflow) {
                    let p = self.profile(&f.workflow, None).await?;
                    profiles.insert(f.workflow.clone(), p);
                }
                if !matches(query, &f.workflow, &profiles[&f.workflow]) {
                    continue;
                }
            }
            answer.total += 1;
            if answer.flaky.len() < limit {
                answer.flaky.push(FlakyRow {
                    workflow: f.workflow,
                    key: f.key,
                    name: f.name,
                    runs: f.verdict.runs,
                    failures: f.verdict.failures,
                    last_flake_at: f.verdict.last_flake_at,
                });
            }
        }
        answer.truncated = answer.total > answer.flaky.len();
        Ok(answer)
    }

    /// `executions` whose workflow has the query's tool and labels.
    async fn by_workflow(
        &self,
        query: &Query,
        executions: Vec<ExecutionSummary>,
    ) -> ServiceResult<Vec<ExecutionSummary>> {
        if query.tool.is_none() && query.labels.is_empty() {
            return Ok(executions);
        }
        let mut verdicts: HashMap<String, bool> = HashMap::new();
        let mut out = Vec::new();
        for e in executions {
            let keep = match verdicts.get(&e.workflow) {
                Some(k) => *k,
                None => {
                    let p = self.profile(&e.workflow, Some(&e.id)).await?;
                    let k = matches(query, &e.workflow, &p);
                    verdicts.insert(e.workflow.clone(), k);
                    k
                }
            };
            if keep {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// A workflow's labels and text: its stored definition, else what `execution` ran.
    pub(crate) async fn profile(
        &self,
        workflow: &str,
        execution: Option<&str>,
    ) -> ServiceResult<Profile> {
        if let Ok(d) = self
            .store
            .get_definition(DefinitionKind::Workflow, workflow, None)
            .await
        {
            return Ok(Profile {
                labels: d.labels,
                text: d.yaml.to_lowercase(),
            });
        }
        let Some(id) = execution else {
            return Ok(Profile::default());
        };
        let exec = self
            .store
            .get_execution(&ExecutionRef::Id(id.to_string()))
            .await?;
        let labels = serde_saphyr::from_str::<serde_json::Value>(&exec.definition)
            .ok()
            .and_then(|v| v.pointer("/metadata/labels").cloned())
            .and_then(|l| serde_json::from_value::<BTreeMap<String, String>>(l).ok())
            .unwrap_or_default();
        Ok(Profile {
            labels,
            text: exec.definition.to_lowercase(),
        })
    }
}

fn matches(query: &Query, workflow: &str, p: &Profile) -> bool {
    query.tool.is_none_or(|t| p.uses(workflow, t))
        && query
            .labels
            .iter()
            .all(|(k, v)| p.labels.get(k).is_some_and(|x| x == v))
}
