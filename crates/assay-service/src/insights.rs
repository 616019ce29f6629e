//! Insights: how changes fare per AI tool, team or workflow, over a time window.
//!
//! A *change* is one workflow on one commit (the `commit` tag, else the CI commit): its
//! executions in the window, oldest first. Its tool is the `ai.tool` tag of its first
//! execution (`none` without one), its team the `team` tag (else the workflow's `team` label,
//! else `unowned`), its week the Monday (UTC) of its first execution. Figures:
//! - **first-try pass rate**: changes whose first execution passed, over changes;
//! - **runs until green**: executions up to and including the first pass, averaged over the
//!   changes that went green;
//! - **rework rate**: changes never green on their commit whose workflow then ran on a later
//!   commit of the same branch (the change needed another commit), over changes;
//! - **failure classes**: `assay-analysis`'s class of the newest failed executions;
//! - **system-level coverage**: per team, the AI-made commits (any execution with `ai.tool`)
//!   and how many ran a workflow labelled `level: system`.
//!
//! One read of the window's finished executions (`Store::insight_rows`, an id range), labels
//! once per workflow, and at most [`CLASSIFY_LIMIT`] analyses: the cost follows the window.

use std::collections::{BTreeMap, HashMap};

use assay_api::insights::{InsightGroup, InsightWeek, Insights, TeamCoverage};
use assay_store::{ExecutionStatus, InsightRow};

use crate::Service;
use crate::error::{ServiceError, ServiceResult};

/// Executions read at most for one answer (the oldest of the window first).
pub const READ_LIMIT: u32 = 50_000;
/// Failed executions classified at most (the newest).
pub const CLASSIFY_LIMIT: usize = 100;
/// The workflow label (key, value) of system-level workflows.
pub const SYSTEM_LABEL: (&str, &str) = ("level", "system");
/// The default window, in days.
pub const DEFAULT_DAYS: i64 = 30;

const DAY_MS: i64 = 86_400_000;

/// What the figures are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum By {
    #[default]
    Tool,
    Team,
    Workflow,
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            By::Tool => "tool",
            By::Team => "team",
            By::Workflow => "workflow",
        }
    }

    pub fn parse(text: &str) -> ServiceResult<By> {
        match text {
            "tool" => Ok(By::Tool),
            "team" => Ok(By::Team),
            "workflow" => Ok(By::Workflow),
            other => Err(ServiceError::BadRequest(format!(
                "`by` is `tool`, `team` or `workflow`, not `{other}`"
            ))),
        }
    }
}

/// An insights question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsightsQuery {
    /// Start of the window (unix milliseconds).
    pub since: i64,
    pub by: By,
}

/// A window start from `30d`, `12h`, `2w` (before `now`) or a date `YYYY-MM-DD` (UTC).
pub fn parse_since(text: &str, now: i64) -> ServiceResult<i64> {
    let bad = || {
        ServiceError::BadRequest(format!(
            "`since` is a duration like `30d`, `12h`, `2w` or a date `YYYY-MM-DD`, not `{text}`"
        ))
    };
    let t = text.trim();
    if let Some((_, ms)) = [('h', 3_600_000i64), ('d', DAY_MS), ('w', 7 * DAY_MS)]
        .into_iter()
        .find(|(u, _)| t.ends_with(*u))
    {
        let n: i64 = t[..t.len() - 1].parse().map_err(|_| bad())?;
        if !(0..=36_500 * 24).contains(&n) {
            return Err(bad());
        }
        return Ok(now - n * ms);
    }
    let parts: Vec<&str> = t.split('-').collect();
    if let [y, m, d] = parts.as_slice()
        && y.len() == 4
        && m.len() == 2
        && d.len() == 2
    {
        let (y, m, d): (i64, i64, i64) = (
            y.parse().map_err(|_| bad())?,
            m.parse().map_err(|_| bad())?,
            d.parse().map_err(|_| bad())?,
        );
        if (1970..=9999).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d) {
            return Ok(days_from_civil(y, m, d) * DAY_MS);
        }
    }
    Err(bad())
}

/// Days since 1970-01-01 of a date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The Monday (UTC) of the week holding `ms`, as `YYYY-MM-DD`.
pub fn week_of(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday: Monday is 3 days before it.
    let monday = days - (days + 3).rem_euclid(7);
    let (y, m, d) = civil_from_days(monday);
    format!("{y:04}-{m:02}-{d:02}")
}

/// One workflow on one commit.
struct Change {
    workflow: String,
    commit: String,
    branch: Option<String>,
    tool: String,
    team: String,
    first_at: i64,
    statuses: Vec<ExecutionStatus>,
}

impl Change {
    fn key(&self, by: By) -> &str {
        match by {
            By::Tool => &self.tool,
            By::Team => &self.team,
            By::Workflow => &self.workflow,
        }
    }

    /// Executions up to and including the first pass.
    fn runs_until_green(&self) -> Option<usize> {
        self.statuses
            .iter()
            .position(|s| *s == ExecutionStatus::Passed)
            .map(|i| i + 1)
    }
}

fn rate(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| f64::from(part) / f64::from(whole))
}

fn commit_of(row: &InsightRow) -> Option<String> {
    row.tags
        .get("commit")
        .cloned()
        .or_else(|| row.ci_commit.clone())
        .filter(|c| !c.is_empty())
}

impl Service {
    /// The insights of the window `query` asks for.
    pub async fn insights(&self, query: &InsightsQuery) -> ServiceResult<Insights> {
        let mut rows = self.store.insight_rows(query.since, READ_LIMIT + 1).await?;
        let truncated = rows.len() > READ_LIMIT as usize;
        rows.truncate(READ_LIMIT as usize);

        // Labels once per workflow: its stored definition, else what its newest run ran.
        let mut labels: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        for row in rows.iter().rev() {
            if !labels.contains_key(&row.workflow) {
                let p = self.profile(&row.workflow, Some(&row.id)).await?;
                labels.insert(row.workflow.clone(), p.labels);
            }
        }
        let label = |workflow: &str, key: &str| labels.get(workflow).and_then(|l| l.get(key));
        let team_of = |row: &InsightRow| {
            row.tags
                .get("team")
                .or_else(|| label(&row.workflow, "team"))
                .cloned()
                .unwrap_or_else(|| "unowned".into())
        };

        let mut changes: Vec<Change> = Vec::new();
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        let mut change_of_row: HashMap<String, usize> = HashMap::new();
        let mut without_commit = 0u32;
        // Per commit: AI-made?, its team, and whether a system-level workflow ran on it.
        let mut commits: BTreeMap<String, (bool, Option<String>, bool)> = BTreeMap::new();
        for row in &rows {
            let Some(commit) = commit_of(row) else {
                without_commit += 1;
                continue;
            };
            let i = *index
                .entry((row.workflow.clone(), commit.clone()))
                .or_insert_with(|| {
                    changes.push(Change {
                        workflow: row.workflow.clone(),
                        commit: commit.clone(),
                        branch: row
                            .tags
                            .get("branch")
                            .cloned()
                            .or_else(|| row.ci_branch.clone()),
                        tool: row
                            .tags
                            .get("ai.tool")
                            .cloned()
                            .unwrap_or_else(|| "none".into()),
                        team: team_of(row),
                        first_at: row.scheduled_at,
                        statuses: Vec::new(),
                    });
                    changes.len() - 1
                });
            changes[i].statuses.push(row.status);
            change_of_row.insert(row.id.clone(), i);
            let c = commits.entry(commit).or_insert((false, None, false));
            c.0 |= row.tags.contains_key("ai.tool");
            if c.1.is_none() {
                c.1 = row.tags.get("team").cloned();
            }
            if c.1.is_none() {
                c.1 = label(&row.workflow, "team").cloned();
            }
            c.2 |= label(&row.workflow, SYSTEM_LABEL.0).is_some_and(|v| v == SYSTEM_LABEL.1);
        }

        // Rework: never green, and the same workflow ran later on another commit of the branch.
        let mut on_branch: HashMap<(&str, &str), Vec<(i64, &str)>> = HashMap::new();
        for c in &changes {
            if let Some(b) = &c.branch {
                on_branch
                    .entry((c.workflow.as_str(), b.as_str()))
                    .or_default()
                    .push((c.first_at, c.commit.as_str()));
            }
        }
        let reworked: Vec<bool> = changes
            .iter()
            .map(|c| {
                c.runs_until_green().is_none()
                    && c.branch.as_deref().is_some_and(|b| {
                        on_branch[&(c.workflow.as_str(), b)]
                            .iter()
                            .any(|(at, commit)| *at > c.first_at && *commit != c.commit)
                    })
            })
            .collect();

        // Failure classes of the newest failed executions.
        let mut classes: HashMap<usize, BTreeMap<String, u32>> = HashMap::new();
        let mut classified = 0u32;
        let failed = rows
            .iter()
            .rev()
            .filter(|r| r.status == ExecutionStatus::Failed)
            .filter_map(|r| change_of_row.get(&r.id).map(|i| (r, *i)))
            .take(CLASSIFY_LIMIT);
        for (row, i) in failed {
            // An execution that cannot be analysed is left out of the classes, not the answer.
            if let Ok(a) = self.analyze(&row.id).await
                && let Some(v) = a.verdict
            {
                classified += 1;
                *classes
                    .entry(i)
                    .or_default()
                    .entry(v.class.as_str().to_string())
                    .or_default() += 1;
            }
        }

        let mut total = InsightGroup {
            key: "all".into(),
            ..InsightGroup::default()
        };
        let mut groups: BTreeMap<String, InsightGroup> = BTreeMap::new();
        let mut weeks: BTreeMap<(String, String), (u32, u32)> = BTreeMap::new();
        let mut green_runs: HashMap<String, usize> = HashMap::new();
        let mut total_green_runs = 0usize;
        for (i, c) in changes.iter().enumerate() {
            let key = c.key(query.by).to_string();
            let first = c.statuses.first() == Some(&ExecutionStatus::Passed);
            let until = c.runs_until_green();
            for g in [
                &mut total,
                groups.entry(key.clone()).or_insert_with(|| InsightGroup {
                    key: key.clone(),
                    ..InsightGroup::default()
                }),
            ] {
                g.executions += c.statuses.len() as u32;
                g.changes += 1;
                g.first_try_passed += u32::from(first);
                g.green += u32::from(until.is_some());
                g.reworked += u32::from(reworked[i]);
                for (class, n) in classes.get(&i).into_iter().flatten() {
                    *g.failure_classes.entry(class.clone()).or_default() += n;
                }
            }
            if let Some(n) = until {
                *green_runs.entry(key.clone()).or_default() += n;
                total_green_runs += n;
            }
            let w = weeks.entry((week_of(c.first_at), key)).or_default();
            w.0 += 1;
            w.1 += u32::from(first);
        }
        let finish = |g: &mut InsightGroup, runs: usize| {
            g.first_try_pass_rate = rate(g.first_try_passed, g.changes);
            g.rework_rate = rate(g.reworked, g.changes);
            g.runs_until_green = (g.green > 0).then(|| runs as f64 / f64::from(g.green));
        };
        finish(&mut total, total_green_runs);
        let mut groups: Vec<InsightGroup> = groups
            .into_values()
            .map(|mut g| {
                let runs = green_runs.get(&g.key).copied().unwrap_or(0);
                finish(&mut g, runs);
                g
            })
            .collect();
        groups.sort_by(|a, b| b.changes.cmp(&a.changes).then(a.key.cmp(&b.key)));

        let mut coverage: BTreeMap<String, TeamCoverage> = BTreeMap::new();
        for (ai, team, system) in commits.values() {
            if !*ai {
                continue;
            }
            let team = team.clone().unwrap_or_else(|| "unowned".into());
            let t = coverage.entry(team.clone()).or_insert(TeamCoverage {
                team,
                ai_commits: 0,
                with_system_run: 0,
            });
            t.ai_commits += 1;
            t.with_system_run += u32::from(*system);
        }
        let coverage: Vec<TeamCoverage> = coverage.into_values().collect();
        let teams_without_system_runs = coverage
            .iter()
            .filter(|t| t.with_system_run == 0)
            .map(|t| t.team.clone())
            .collect();
        Ok(Insights {
            since: query.since,
            by: query.by.as_str().into(),
            executions: rows.len() as u32,
            without_commit,
            truncated,
            total,
            groups,
            weeks: weeks
                .into_iter()
                .map(|((week, key), (changes, first))| InsightWeek {
                    week,
                    key,
                    changes,
                    first_try_passed: first,
                })
                .collect(),
            system_label: format!("{}={}", SYSTEM_LABEL.0, SYSTEM_LABEL.1),
            system_coverage: coverage,
            teams_without_system_runs,
            classified,
        })
    }
}

fn percent(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{:.0}%", r * 100.0))
}

/// The insights as plain text (the CLI's table output and the MCP tool's answer): one line per
/// group, at most `max_groups` of them, then the system-level coverage.
pub fn render_text(i: &Insights, max_groups: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "by {}: {} executions, {} changes (workflow × commit){}{}",
        i.by,
        i.executions,
        i.total.changes,
        if i.without_commit > 0 {
            format!(
                ", {} executions without a commit left out",
                i.without_commit
            )
        } else {
            String::new()
        },
        if i.truncated {
            format!(" (only the first {READ_LIMIT} executions read)")
        } else {
            String::new()
        }
    );
    let head = [
        i.by.to_uppercase(),
        "CHANGES".into(),
        "FIRST-TRY".into(),
        "RUNS-TO-GREEN".into(),
        "REWORK".into(),
        "FAILURE CLASSES".into(),
    ];
    let mut rows = vec![head];
    let shown = i
        .groups
        .iter()
        .take(max_groups)
        .chain(std::iter::once(&i.total));
    for g in shown {
        let classes: Vec<String> = g
            .failure_classes
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        rows.push([
            g.key.clone(),
            g.changes.to_string(),
            percent(g.first_try_pass_rate),
            g.runs_until_green.map_or("-".into(), |r| format!("{r:.1}")),
            percent(g.rework_rate),
            if classes.is_empty() {
                "-".into()
            } else {
                classes.join(", ")
            },
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    if i.groups.len() > max_groups {
        let _ = writeln!(out, "({} more)", i.groups.len() - max_groups);
    }
    if i.system_coverage.is_empty() {
        let _ = writeln!(out, "no AI-made commits in the window");
    } else {
        let _ = writeln!(
            out,
            "AI-made commits with a system-level run (workflow label {}):",
            i.system_label
        );
        for t in &i.system_coverage {
            let _ = writeln!(
                out,
                "  {}: {} of {}",
                t.team, t.with_system_run, t.ai_commits
            );
        }
        if !i.teams_without_system_runs.is_empty() {
            let _ = writeln!(
                out,
                "teams that ran no system-level workflow on AI-made changes: {}",
                i.teams_without_system_runs.join(", ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_weeks() {
        let now = days_from_civil(2026, 12, 6) * DAY_MS + 5_000;
        assert_eq!(parse_since("30d", now).unwrap(), now - 30 * DAY_MS);
        assert_eq!(parse_since("2w", now).unwrap(), now - 14 * DAY_MS);
        assert_eq!(parse_since("12h", now).unwrap(), now - 12 * 3_600_000);
        assert_eq!(
            parse_since("2026-11-01", now).unwrap(),
            days_from_civil(2026, 11, 1) * DAY_MS
        );
        for bad in ["", "d", "-3d", "30x", "2026-13-01", "yesterday"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
        // 2026-12-06 is a Sunday; 2026-11-30 the Monday before.
        assert_eq!(week_of(now), "2026-11-30");
        assert_eq!(
            week_of(days_from_civil(2026, 11, 30) * DAY_MS),
            "2026-11-30"
        );
        assert_eq!(week_of(0), "1969-12-29");
    }
}
