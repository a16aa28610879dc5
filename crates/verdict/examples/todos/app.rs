//! A small todos API on verdict: the app a new adopter writes first.
//!
//! Todos in memory (saved to a JSON file after each change, if asked) behind
//! bearer tokens (`reader`, `writer`), a rate limit, a deadline, ETags and
//! preconditions, a maintenance switch, a retired `/v0`, typed bodies and path
//! parameters, and an OpenAPI document (utoipa) that lists every error
//! response the contract may send. A failed save is a plain `io::Error`
//! returned with `?`: the client gets a 500 with an incident id, the log gets
//! the cause. `main.rs` serves it; the crate's
//! `tests/todos_example.rs` drives it over a socket through every status.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use futures_util::future::BoxFuture;
use http::header::{HeaderMap, ETAG};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use verdict::auth::{Authenticator, Principal, ScopeByMethod};
use verdict::conditional::{EntityTag, Preconditions, Validators};
use verdict::headers::Upgrade;
use verdict::maintenance::MaintenanceSwitch;
use verdict::openapi::ContractResponses;
use verdict::rate_limit::{InMemoryStore, Quota};
use verdict::{ApiError, Contract, ContractService, Json, Path, Preset};

/// A todo as clients see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Todo {
    /// Its id, given by the server.
    pub id: u32,
    /// What to do.
    pub title: String,
    /// Whether it is done.
    pub done: bool,
    /// Bumped on every change; the ETag is made from it.
    pub version: u64,
}

/// The body of `POST /todos`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTodo {
    /// What to do: 1 to 200 characters.
    pub title: String,
    /// Whether it is done already (default no).
    #[serde(default)]
    pub done: bool,
}

/// The body of `PATCH /todos/{id}` (a JSON merge patch).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TodoPatch {
    /// A new title.
    pub title: Option<String>,
    /// Done or not.
    pub done: Option<bool>,
}

/// What the app is configured with: the test shortens the limits.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Requests a token (or an anonymous client address) may make a minute.
    pub requests_per_minute: u32,
    /// How long a request may take before it is answered 504.
    pub deadline: Duration,
    /// The largest request body.
    pub max_body: u64,
    /// How long a request body may stall before the request is answered 408.
    pub body_timeout: Duration,
    /// Where the todos are saved after every change (nowhere if `None`).
    pub save_to: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            requests_per_minute: 600,
            deadline: Duration::from_secs(10),
            max_body: 64 * 1024,
            body_timeout: Duration::from_secs(10),
            save_to: None,
        }
    }
}

#[derive(Default)]
struct Store {
    next_id: u32,
    todos: BTreeMap<u32, Todo>,
}

/// The app's state: the todos and the maintenance switch (both shared).
#[derive(Clone, Default)]
pub struct Todos {
    store: Arc<Mutex<Store>>,
    save_to: Option<PathBuf>,
    /// Flip it to answer 503 with `Retry-After` everywhere.
    pub maintenance: MaintenanceSwitch,
}

impl Todos {
    /// Writes the todos to the file, if there is one. The `io::Error` of a
    /// failed write goes up with `?`: a 500 whose cause only the log sees.
    async fn save(&self) -> Result<(), ApiError> {
        let Some(path) = &self.save_to else {
            return Ok(());
        };
        let snapshot: Vec<Todo> = {
            let store = self.store.lock().expect("not poisoned");
            store.todos.values().cloned().collect()
        };
        let bytes = serde_json::to_vec(&snapshot)?;
        tokio::fs::write(path, bytes).await?;
        Ok(())
    }
}

/// Bearer tokens: a real app would look up hashed tokens; two constants do here.
struct Tokens;

impl Authenticator for Tokens {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Principal>, ApiError>> {
        Box::pin(async move {
            Ok(match token {
                "reader" => Some(Principal::new("reader", ["read"])),
                "writer" => Some(Principal::new("writer", ["read", "write"])),
                _ => None,
            })
        })
    }
}

fn not_found(id: u32) -> ApiError {
    ApiError::not_found(format!("There is no todo {id}.")).with_code("todo_not_found")
}

fn validators(todo: &Todo) -> Validators {
    Validators::new(Some(EntityTag::strong(todo.version.to_string())), None)
}

fn represent(status: StatusCode, todo: Todo) -> (StatusCode, HeaderMap, Json<Todo>) {
    let mut headers = HeaderMap::new();
    validators(&todo).apply(&mut headers);
    debug_assert!(headers.contains_key(ETAG));
    (status, headers, Json(todo))
}

fn check_title(title: &str) -> Result<(), ApiError> {
    if title.trim().is_empty() || title.chars().count() > 200 {
        return Err(ApiError::validation_failed(vec![verdict::FieldError::new(
            "/title",
            "must be 1 to 200 characters",
        )]));
    }
    Ok(())
}

/// The todos, oldest first.
#[utoipa::path(get, path = "/todos", security(("bearer" = [])),
    responses((status = 200, description = "The todos", body = [Todo])))]
async fn list(state: axum::extract::State<Todos>) -> Json<Vec<Todo>> {
    let store = state.store.lock().expect("not poisoned");
    Json(store.todos.values().cloned().collect())
}

/// Add a todo.
#[utoipa::path(post, path = "/todos", security(("bearer" = [])), request_body = NewTodo,
    responses((status = 201, description = "The new todo", body = Todo)))]
async fn create(
    state: axum::extract::State<Todos>,
    Json(new): Json<NewTodo>,
) -> Result<(StatusCode, HeaderMap, Json<Todo>), ApiError> {
    check_title(&new.title)?;
    let todo = {
        let mut store = state.store.lock().expect("not poisoned");
        store.next_id += 1;
        let todo = Todo {
            id: store.next_id,
            title: new.title,
            done: new.done,
            version: 1,
        };
        store.todos.insert(todo.id, todo.clone());
        todo
    };
    state.save().await?;
    Ok(represent(StatusCode::CREATED, todo))
}

/// One todo, with its ETag (`If-None-Match` gets a 304).
#[utoipa::path(get, path = "/todos/{id}", security(("bearer" = [])),
    params(("id" = u32, Path, description = "The todo's id")),
    responses((status = 200, description = "The todo", body = Todo)))]
async fn show(
    state: axum::extract::State<Todos>,
    Path(id): Path<u32>,
) -> Result<(StatusCode, HeaderMap, Json<Todo>), ApiError> {
    let store = state.store.lock().expect("not poisoned");
    let todo = store.todos.get(&id).cloned().ok_or_else(|| not_found(id))?;
    Ok(represent(StatusCode::OK, todo))
}

/// Change a todo (a merge patch; `If-Match` makes it conditional: 412 if stale).
#[utoipa::path(patch, path = "/todos/{id}", security(("bearer" = [])),
    params(("id" = u32, Path, description = "The todo's id")),
    request_body(content = TodoPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "The changed todo", body = Todo)))]
async fn change(
    state: axum::extract::State<Todos>,
    Path(id): Path<u32>,
    preconditions: Preconditions,
    Json(patch): Json<TodoPatch>,
) -> Result<(StatusCode, HeaderMap, Json<Todo>), ApiError> {
    let todo = {
        let mut store = state.store.lock().expect("not poisoned");
        let todo = store.todos.get_mut(&id).ok_or_else(|| not_found(id))?;
        preconditions.check_write(Some(&validators(todo)))?;
        if let Some(title) = patch.title {
            check_title(&title)?;
            todo.title = title;
        }
        if let Some(done) = patch.done {
            todo.done = done;
        }
        todo.version += 1;
        todo.clone()
    };
    state.save().await?;
    Ok(represent(StatusCode::OK, todo))
}

/// Remove a todo.
#[utoipa::path(delete, path = "/todos/{id}", security(("bearer" = [])),
    params(("id" = u32, Path, description = "The todo's id")),
    responses((status = 204, description = "Removed")))]
async fn remove(
    state: axum::extract::State<Todos>,
    Path(id): Path<u32>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .lock()
        .expect("not poisoned")
        .todos
        .remove(&id)
        .ok_or_else(|| not_found(id))?;
    state.save().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the app is up (public, never rate limited by token).
#[utoipa::path(get, path = "/health", security(()),
    responses((status = 200, description = "Up")))]
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Declares the bearer scheme the operations name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "todos", description = "A todos API on verdict."),
    paths(list, create, show, change, remove, health),
    components(schemas(Todo, NewTodo, TodoPatch)),
    modifiers(&BearerScheme)
)]
struct ApiDoc;

/// The OpenAPI document, with every error response `preset` sends.
pub fn openapi(preset: &Preset) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    ContractResponses::new(preset.clone()).modify(&mut doc);
    doc
}

/// The app: routes, then the contract around them (added last: `apply`
/// takes no routes after it).
pub fn app(preset: Preset, settings: &Settings, mut todos: Todos) -> ContractService {
    todos.save_to = settings.save_to.clone();
    let doc = serde_json::to_value(openapi(&preset)).expect("a document serializes");
    let routes = Router::new()
        .route("/todos", get(list).post(create))
        .route("/todos/{id}", get(show).patch(change).delete(remove))
        .route("/health", get(health))
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc) }
            }),
        )
        .with_state(todos.clone());
    let per_minute = Quota::new(settings.requests_per_minute, Duration::from_secs(60));
    Contract::new(preset)
        .realm("todos")
        .authenticate(Arc::new(Tokens))
        .authorize(Arc::new(ScopeByMethod))
        .public("/health")
        .public("/openapi.json")
        .rate_limit(Arc::new(InMemoryStore::new()), Some(per_minute))
        .timeout(settings.deadline)
        .max_body(settings.max_body)
        .body_timeout(Some(settings.body_timeout))
        .retire(
            "/v0",
            Upgrade::new("todos/1").expect("a valid Upgrade value"),
        )
        .maintenance(todos.maintenance.clone())
        .apply(routes)
}
