//! The pages, each a handler that reads results and fills a template.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use sweep_proto::clock::now_ms;
use sweep_proto::{SweepId, SweepRef, SweepState, Task, TaskId, TaskOrder, TaskPage, TaskState};
use sweep_report::columns::{IDENTITY, identity};
use sweep_report::compare;
use sweep_report::figures::{self, Axis, Figure, Series};
use sweep_report::stats::Interval;
use sweep_report::table::{Layout, listing};
use sweep_report::{Listing, text};

use super::view::{AttemptRow, SweepRow, WorkerRow, duration};
use super::{Dashboard, PageError};

/// The most sweeps the list shows.
const SWEEPS: u32 = 500;
/// Tasks on one page of a sweep's task table.
const TASKS: u32 = 100;

type Page = Result<Html<String>, PageError>;

fn html(page: impl Template) -> Page {
    Ok(Html(page.render()?))
}

/// `?state=...&sort=...&from=...`: a state filter, an order and where a
/// page starts.
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    state: Option<String>,
    sort: Option<String>,
    from: Option<u64>,
}

impl Filter {
    /// The order named, grid order if none; an unknown one is a bad request.
    fn order(&self) -> Result<TaskOrder, PageError> {
        match self.sort.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(TaskOrder::Grid),
            Some(name) => TaskOrder::parse(name)
                .ok_or_else(|| PageError::BadRequest(format!("sort: no such order {name:?}"))),
        }
    }

    /// The state named, if any; an unknown one is a bad request naming it.
    fn state<T>(&self, parse: fn(&str) -> Option<T>) -> Result<Option<T>, PageError> {
        match self.state.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(name) => parse(name)
                .map(Some)
                .ok_or_else(|| PageError::BadRequest(format!("state: no such state {name:?}"))),
        }
    }
}

/// One option of a state filter.
pub struct Choice {
    name: &'static str,
    selected: bool,
}

fn choices<T: Copy + PartialEq>(
    all: &[T],
    name: fn(T) -> &'static str,
    now: Option<T>,
) -> Vec<Choice> {
    all.iter()
        .map(|&state| Choice {
            name: name(state),
            selected: now == Some(state),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "sweeps.html")]
struct SweepsPage {
    rows: Vec<SweepRow>,
    states: Vec<Choice>,
    filtered: bool,
}

pub async fn sweeps(State(d): State<Dashboard>, Query(filter): Query<Filter>) -> Page {
    let wanted = filter.state(SweepState::parse)?;
    let now = now_ms();
    let rows = (d.results.sweeps(SWEEPS).await?.iter())
        .filter(|sweep| wanted.is_none_or(|state| sweep.state == state))
        .map(|sweep| SweepRow::of(sweep, now))
        .collect();
    html(SweepsPage {
        rows,
        states: choices(SweepState::ALL, SweepState::as_str, wanted),
        filtered: wanted.is_some(),
    })
}

/// A sweep's task table, one page of it.
pub struct TaskTable {
    headers: Vec<Header>,
    rows: Vec<TaskRow>,
    /// What the pager says this page holds.
    showing: String,
    /// Where the first page starts, when this is not it.
    previous: Option<u64>,
    next: Option<u64>,
    /// The filter and order, for the pager's links.
    query: String,
}

/// A column's heading; one that sorts links to that order.
pub struct Header {
    name: &'static str,
    /// The link's query, for a column that sorts.
    sort: Option<String>,
    /// Whether the table is sorted by it now.
    current: bool,
}

pub struct TaskRow {
    id: i64,
    state: &'static str,
    cells: Vec<String>,
    attempts: String,
    time: String,
    error: String,
}

impl TaskTable {
    fn new(page: TaskPage, state: Option<TaskState>, order: TaskOrder, from: u64) -> Self {
        let now = now_ms();
        let rows: Vec<TaskRow> = page.tasks.iter().map(|t| task_row(t, now)).collect();
        let filter = state.map_or(String::new(), |s| format!("&state={s}"));
        let header = |name, sorts: Option<TaskOrder>| Header {
            name,
            sort: sorts.map(|o| format!("?sort={}{filter}", o.as_str())),
            current: sorts == Some(order),
        };
        let mut headers = vec![
            header("id", Some(TaskOrder::Grid)),
            header("state", Some(TaskOrder::State)),
        ];
        headers.extend(IDENTITY.into_iter().map(|name| header(name, None)));
        headers.extend([
            header("attempts", Some(TaskOrder::Attempts)),
            header("time", Some(TaskOrder::Duration)),
            header("error", None),
        ]);
        let showing = match (order, rows.first(), rows.last()) {
            (_, None, _) | (_, _, None) => "no tasks".to_string(),
            (TaskOrder::Grid, Some(first), Some(last)) => {
                format!("tasks {}–{}", first.id, last.id)
            }
            (order, _, _) => format!(
                "{}–{} by {}",
                from + 1,
                from + rows.len() as u64,
                order.as_str()
            ),
        };
        Self {
            headers,
            rows,
            showing,
            previous: (from > 0).then_some(0),
            next: page.next,
            query: format!("&sort={}{filter}", order.as_str()),
        }
    }
}

#[derive(Template)]
#[template(path = "sweep.html")]
struct SweepPage {
    sweep: SweepRow,
    report: TextTable,
    /// Where its adaptive seeds stand, a line per question.
    seeds: Vec<String>,
    /// `sweep compare` along each axis the sweep varies, with its defaults.
    comparisons: Vec<(String, TextTable)>,
    tasks: TaskTable,
    states: Vec<Choice>,
    actions: bool,
    needs_token: bool,
}

pub async fn sweep(
    State(d): State<Dashboard>,
    Path(which): Path<String>,
    Query(filter): Query<Filter>,
) -> Page {
    let which: SweepRef = which
        .parse()
        .map_err(|err: sweep_proto::WireError| PageError::BadRequest(err.message))?;
    let sweep = d.results.sweep(&which).await?;
    let wanted = filter.state(TaskState::parse)?;
    let order = filter.order()?;
    let states: Vec<TaskState> = wanted.into_iter().collect();
    let from = filter.from.unwrap_or(0);
    let page = (d.results)
        .task_page(sweep.id, &states, order, from, TASKS)
        .await?;
    let report = listing(
        &d.results.aggregate(sweep.id).await?,
        Layout::Table(Interval::Ci95),
    );
    let succeeded = d.results.tasks(sweep.id, &[TaskState::Succeeded]).await?;
    html(SweepPage {
        sweep: SweepRow::of(&sweep, now_ms()),
        report: report.into(),
        seeds: sweep.seed_lines(),
        comparisons: comparisons(&succeeded),
        tasks: TaskTable::new(page, wanted, order, from),
        states: choices(TaskState::ALL, TaskState::as_str, wanted),
        actions: d.actions.is_some(),
        needs_token: d.actions.as_ref().is_some_and(|a| a.token.is_some()),
    })
}

/// What `sweep compare --by AXIS` prints, for each axis it can answer.
fn comparisons(succeeded: &[Task]) -> Vec<(String, TextTable)> {
    (compare::axes(succeeded).into_iter())
        .filter_map(|axis| {
            let comparison = compare::compare(succeeded, &compare::Question::along(&axis));
            Some((axis, comparison.ok()?.listing(true).into()))
        })
        .collect()
}

/// A listing's cells as the text `sweep report` prints.
pub struct TextTable {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    note: String,
}

impl From<Listing> for TextTable {
    fn from(listing: Listing) -> Self {
        Self {
            note: listing.note.unwrap_or_default(),
            columns: listing.columns,
            rows: (listing.rows.iter())
                .map(|row| row.iter().map(text).collect())
                .collect(),
        }
    }
}

fn task_row(task: &Task, now_ms: i64) -> TaskRow {
    TaskRow {
        id: task.id.0,
        state: task.state.as_str(),
        cells: identity(&task.params).iter().map(text).collect(),
        attempts: format!("{}/{}", task.attempt, task.max_attempts),
        time: task.started_at.map_or(String::new(), |start| {
            duration(task.finished_at.unwrap_or(now_ms) - start)
        }),
        error: task.error.clone().unwrap_or_default(),
    }
}

/// The figures `sweep plot` draws for a sweep, drawn once per number of
/// succeeded tasks and kept for the few sweeps looked at last.
#[derive(Clone, Default)]
pub struct FigureCache(Arc<Mutex<HashMap<SweepId, Arc<Drawn>>>>);

pub struct Drawn {
    /// The succeeded tasks they were drawn from.
    version: u64,
    svgs: Vec<(String, String)>,
}

/// Sweeps whose figures are kept.
const KEPT: usize = 16;

impl FigureCache {
    async fn get(&self, d: &Dashboard, sweep: SweepId) -> Result<Arc<Drawn>, PageError> {
        let version = d
            .results
            .sweep(&SweepRef::Id(sweep))
            .await?
            .counts
            .succeeded;
        let cached = self.lock().get(&sweep).cloned();
        if let Some(drawn) = cached.filter(|drawn| drawn.version == version) {
            return Ok(drawn);
        }
        let svgs = figures::figures(d.results.as_ref(), sweep)
            .await?
            .iter()
            .map(|figure| Ok((figure.file.clone(), figures::svg(figure)?)))
            .collect::<Result<_, sweep_report::Error>>()?;
        let drawn = Arc::new(Drawn { version, svgs });
        let mut cache = self.lock();
        if cache.len() >= KEPT {
            cache.clear();
        }
        cache.insert(sweep, drawn.clone());
        Ok(drawn)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SweepId, Arc<Drawn>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Template)]
#[template(path = "figures.html")]
struct FiguresFragment {
    sweep: i64,
    version: u64,
    files: Vec<String>,
}

/// The sweep's figures as images, for the sweep page to load after itself.
pub async fn figures(State(d): State<Dashboard>, Path(id): Path<i64>) -> Page {
    let sweep = SweepId(id);
    let drawn = d.figures.get(&d, sweep).await?;
    html(FiguresFragment {
        sweep: id,
        version: drawn.version,
        files: drawn.svgs.iter().map(|(file, _)| file.clone()).collect(),
    })
}

/// One figure as SVG.
pub async fn figure(
    State(d): State<Dashboard>,
    Path((id, file)): Path<(i64, String)>,
) -> Result<Response, PageError> {
    let drawn = d.figures.get(&d, SweepId(id)).await?;
    let name = file.strip_suffix(".svg").unwrap_or(&file);
    let (_, svg) = (drawn.svgs.iter())
        .find(|(file, _)| file == name)
        .ok_or_else(|| PageError::NotFound(format!("sweep {id} has no figure {name:?}")))?;
    Ok(svg_response(svg.clone()))
}

fn svg_response(svg: String) -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
}

/// A task as its page shows it.
pub struct TaskView {
    id: i64,
    sweep: i64,
    state: &'static str,
    attempt: u32,
    max_attempts: u32,
    depends_on: Vec<i64>,
    /// The task whose results this one's are, when they came from the
    /// result cache.
    cached_from: Option<i64>,
    attempts: Vec<AttemptRow>,
    error: String,
    summary: Vec<(String, String)>,
    /// Its metrics' names, one curve each.
    metrics: Vec<String>,
    /// How many points they have, so a curve's image changes with them.
    points: usize,
    artifacts: Vec<(String, u64)>,
    params: String,
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskDetailPage {
    task: TaskView,
}

pub async fn task(State(d): State<Dashboard>, Path(id): Path<i64>) -> Page {
    let task = d.results.task(TaskId(id)).await?;
    let metrics = d.results.metrics(task.id).await?;
    let names: BTreeSet<&str> = metrics.iter().map(|m| m.point.name.as_str()).collect();
    let artifacts = d.results.artifacts(task.id).await?;
    let now = now_ms();
    let attempts = (d.results.attempts(task.id).await?.iter())
        .map(|attempt| AttemptRow::of(attempt, now))
        .collect();
    let view = TaskView {
        id,
        sweep: task.sweep_id.0,
        state: task.state.as_str(),
        attempt: task.attempt,
        max_attempts: task.max_attempts,
        attempts,
        depends_on: task.depends_on.iter().map(|t| t.0).collect(),
        cached_from: task.cached_from.map(|t| t.0),
        error: task.error.clone().unwrap_or_default(),
        summary: (task.summary.iter())
            .flat_map(|summary| summary.iter())
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        metrics: names.into_iter().map(str::to_string).collect(),
        points: metrics.len(),
        artifacts: artifacts.into_iter().map(|a| (a.name, a.size)).collect(),
        params: serde_json::to_string_pretty(&task.params)
            .map_err(|err| PageError::Failed(err.to_string()))?,
    };
    html(TaskDetailPage { task: view })
}

/// One metric of a task against its step, as SVG.
pub async fn curve(
    State(d): State<Dashboard>,
    Path((id, file)): Path<(i64, String)>,
) -> Result<Response, PageError> {
    let name = file.strip_suffix(".svg").unwrap_or(&file);
    let points: Vec<(f64, f64)> = (d.results.metrics(TaskId(id)).await?.iter())
        .filter(|m| m.point.name == name)
        .map(|m| (m.point.step as f64, m.point.value))
        .collect();
    if points.is_empty() {
        return Err(PageError::NotFound(format!(
            "task {id} has no metric {name:?}"
        )));
    }
    let figure = Figure {
        file: name.to_string(),
        title: format!("Task {id}: {name}"),
        x: Axis::linear("step"),
        y: Axis::linear(name),
        series: vec![Series::new(name.to_string(), points)],
        scatter: false,
    };
    Ok(svg_response(figures::svg(&figure)?))
}

/// An artifact's bytes, as a download.
pub async fn artifact(
    State(d): State<Dashboard>,
    Path((id, name)): Path<(i64, String)>,
) -> Result<Response, PageError> {
    let artifact = d.results.artifact(TaskId(id), &name).await?;
    let file: String = (name.rsplit('/').next().unwrap_or(&name).chars())
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{file}\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        artifact.data,
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "workers.html")]
struct WorkersPage {
    rows: Vec<WorkerRow>,
}

pub async fn workers(State(d): State<Dashboard>) -> Page {
    let now = now_ms();
    let rows = (d.results.workers().await?.iter())
        .map(|worker| WorkerRow::of(worker, now))
        .collect();
    html(WorkersPage { rows })
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: &'static str,
    pub message: String,
}
