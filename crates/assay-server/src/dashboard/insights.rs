//! `/insights`: the insights of `GET /v1/insights` as a page, with two inline SVG charts
//! (first-try pass rate per group, and per week) and the system-level coverage per team.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use assay_api::insights::Insights;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{Nav, charts, page_response};
use crate::AppState;
use crate::auth::Caller;

pub(crate) struct GroupRow {
    pub key: String,
    pub changes: u32,
    pub executions: u32,
    pub first_try: String,
    pub runs_until_green: String,
    pub rework: String,
    pub classes: String,
}

#[derive(Template)]
#[template(path = "dashboard/insights.html")]
struct InsightsPage {
    nav: Nav,
    since: String,
    by: String,
    error: Option<String>,
    insights: Option<Insights>,
    rows: Vec<GroupRow>,
    rate_chart: String,
    weekly_chart: String,
    legend: Vec<(usize, String)>,
}

fn percent(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{:.0}%", r * 100.0))
}

pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(mut q): Query<HashMap<String, String>>,
) -> Response {
    // A cleared field of the form means its default.
    q.retain(|_, v| !v.trim().is_empty());
    let nav = Nav::new(&caller, state.auth, "insights");
    let since = q.get("since").cloned().unwrap_or_else(|| "30d".into());
    let by = q.get("by").cloned().unwrap_or_else(|| "tool".into());
    let mut page = InsightsPage {
        nav,
        since,
        by,
        error: None,
        insights: None,
        rows: Vec::new(),
        rate_chart: String::new(),
        weekly_chart: String::new(),
        legend: Vec::new(),
    };
    let status = match crate::insights::read(&state, &q).await {
        Ok(i) => {
            fill(&mut page, i);
            StatusCode::OK
        }
        Err(e) => {
            page.error = Some(e.detail);
            e.status
        }
    };
    page_response(status, page)
}

fn fill(page: &mut InsightsPage, i: Insights) {
    let keys: Vec<String> = i.groups.iter().map(|g| g.key.clone()).collect();
    page.rate_chart = charts::rate_bars(
        &i.groups
            .iter()
            .map(|g| (g.key.clone(), g.first_try_pass_rate, g.changes))
            .collect::<Vec<_>>(),
    );
    let mut weeks: BTreeMap<String, Vec<charts::WeekBar>> = BTreeMap::new();
    for w in &i.weeks {
        let Some(series) = keys.iter().position(|k| *k == w.key) else {
            continue;
        };
        if series >= charts::SERIES {
            continue; // the chart shows the groups with most changes
        }
        let rate = f64::from(w.first_try_passed) / f64::from(w.changes.max(1));
        weeks
            .entry(w.week.clone())
            .or_default()
            .push((series, rate, w.changes));
    }
    page.weekly_chart = charts::weekly_bars(&weeks.into_iter().collect::<Vec<_>>(), &keys);
    page.legend = keys
        .iter()
        .take(charts::SERIES)
        .cloned()
        .enumerate()
        .collect();
    page.rows = i
        .groups
        .iter()
        .chain(std::iter::once(&i.total))
        .map(|g| GroupRow {
            key: g.key.clone(),
            changes: g.changes,
            executions: g.executions,
            first_try: percent(g.first_try_pass_rate),
            runs_until_green: g.runs_until_green.map_or("–".into(), |r| format!("{r:.1}")),
            rework: percent(g.rework_rate),
            classes: g
                .failure_classes
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    page.insights = Some(i);
}
