//! History queries: the executions list with its filters and paging, for every adapter.

use assay_store::{ExecutionFilter, ExecutionStatus, ExecutionSummary, StatusCounts, SummaryPage};

use crate::Service;
use crate::error::{ServiceError, ServiceResult};

/// The largest page.
pub const MAX_PAGE: u32 = 1000;
/// The page size when none is asked for.
pub const DEFAULT_PAGE: u32 = 100;

/// A list of executions, newest first: all filters must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    pub workflow: Option<String>,
    /// Any may match; empty: any status.
    pub statuses: Vec<ExecutionStatus>,
    /// `key=value` pairs; all must match.
    pub tags: Vec<(String, String)>,
    pub page_size: u32,
    /// `next` of the previous page.
    pub before: Option<String>,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery {
            workflow: None,
            statuses: Vec::new(),
            tags: Vec::new(),
            page_size: DEFAULT_PAGE,
            before: None,
        }
    }
}

impl HistoryQuery {
    /// From the text forms (`status=passed,failed`, `tag=k=v,k2=v2`, `pageSize=50`).
    pub fn parse(
        workflow: Option<String>,
        status: Option<&str>,
        tag: Option<&str>,
        page_size: Option<&str>,
        before: Option<String>,
    ) -> ServiceResult<HistoryQuery> {
        let page_size = match page_size {
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ServiceError::BadRequest("pageSize must be a number from 1 to 1000".into())
                })?,
            None => DEFAULT_PAGE,
        };
        let statuses = match status {
            Some(s) => s
                .split(',')
                .filter(|s| !s.is_empty())
                .map(parse_status)
                .collect::<ServiceResult<Vec<_>>>()?,
            None => Vec::new(),
        };
        let tags = match tag {
            Some(t) => t
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| {
                            ServiceError::BadRequest(format!("tag `{kv}` is not key=value"))
                        })
                })
                .collect::<ServiceResult<Vec<_>>>()?,
            None => Vec::new(),
        };
        Ok(HistoryQuery {
            workflow,
            statuses,
            tags,
            page_size,
            before,
        })
    }
}

/// A status by its name (`passed`).
pub fn parse_status(text: &str) -> ServiceResult<ExecutionStatus> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| ServiceError::BadRequest(format!("unknown status `{text}`")))
}

/// One page of executions and where the next one starts.
#[derive(Debug, Clone)]
pub struct Page {
    pub results: Vec<ExecutionSummary>,
    pub next: Option<String>,
}

impl Service {
    /// The executions `query` picks, newest first, one page.
    pub async fn list_executions(&self, query: &HistoryQuery) -> ServiceResult<Page> {
        let results = self.store.list_executions(&page_filter(query)).await?;
        Ok(Page::cut(results, query.page_size))
    }

    /// One page of `query` with Testkube's `totals` and `filtered` (see
    /// [`Service::execution_totals`]), the page as the database wrote it (one execution more
    /// than `query`'s page size when there is a next page: see [`cut_page`]), for the REST
    /// list, which writes the entries of its records ([`assay_store::testkube::ListCache`]).
    /// Without a tag filter the page and the counts come from one statement (one trip to the
    /// database).
    pub async fn execution_page_records(
        &self,
        query: &HistoryQuery,
    ) -> ServiceResult<(SummaryPage, StatusCounts, StatusCounts)> {
        if !query.tags.is_empty() {
            let page = self.store.list_page(&page_filter(query)).await?;
            let (totals, filtered) = self.execution_totals(query).await?;
            return Ok((page, totals, filtered));
        }
        let (page, totals) = self
            .store
            .list_and_count(&page_filter(query), &totals_filter(query))
            .await?;
        let filtered = filtered_of_totals(&totals, query);
        Ok((page, totals, filtered))
    }

    /// Testkube's `totals` and `filtered` of a list: how many executions of the queried
    /// workflow (all of them when none is named) and how many `query` matches over all its
    /// pages, each by status. Counted in the database, no rows loaded; without a tag filter
    /// `filtered` is the statuses asked for of `totals`, so the database is asked once.
    pub async fn execution_totals(
        &self,
        query: &HistoryQuery,
    ) -> ServiceResult<(StatusCounts, StatusCounts)> {
        let all = totals_filter(query);
        let totals = self.store.count_executions(&all).await?;
        if query.tags.is_empty() {
            let filtered = filtered_of_totals(&totals, query);
            return Ok((totals, filtered));
        }
        let filtered = ExecutionFilter {
            statuses: query.statuses.clone(),
            tags: query.tags.clone(),
            ..all
        };
        let filtered = self.store.count_executions(&filtered).await?;
        Ok((totals, filtered))
    }
}

impl Page {
    /// A page of at most `size` from `results` fetched with one more: `next` is set when
    /// there was more.
    fn cut(mut results: Vec<ExecutionSummary>, size: u32) -> Page {
        let next = cut_page(&mut results, size, |r| &r.id);
        Page { results, next }
    }
}

/// Cut `results`, fetched with one more than a page of `size`, to the page; the `next` cursor
/// (the id of the page's last execution) when there was more.
pub fn cut_page<T>(results: &mut Vec<T>, size: u32, id: impl Fn(&T) -> &str) -> Option<String> {
    if results.len() > size as usize {
        results.truncate(size as usize);
        results.last().map(|r| id(r).to_string())
    } else {
        None
    }
}

/// The store filter of one page of `query` (one row more than the page, to know of a next).
fn page_filter(query: &HistoryQuery) -> ExecutionFilter {
    ExecutionFilter {
        workflow: query.workflow.clone(),
        statuses: query.statuses.clone(),
        tags: query.tags.clone(),
        since: None,
        limit: Some(query.page_size + 1),
        before_id: query.before.clone(),
    }
}

/// What `totals` counts: every execution of the queried workflow (or of all).
fn totals_filter(query: &HistoryQuery) -> ExecutionFilter {
    ExecutionFilter {
        workflow: query.workflow.clone(),
        ..ExecutionFilter::default()
    }
}

/// `filtered` without a tag filter: the statuses asked for of `totals`.
fn filtered_of_totals(totals: &StatusCounts, query: &HistoryQuery) -> StatusCounts {
    let mut filtered = totals.clone();
    if !query.statuses.is_empty() {
        filtered.0.retain(|s, _| query.statuses.contains(s));
    }
    filtered
}
