//! Records: `/v1/collections/{c}/records[/{id}]` and `/v1/collections/{c}/lookup`.
//!
//! A record's representation is its data plus `id`, `created_at` and
//! `updated_at` (reserved names: ignored in request bodies but for a create's
//! `id`). Its strong `ETag` is a hash of that representation, so every instance
//! computes the same one. Handlers keep the contract's order: 400 (syntax) ->
//! 404 -> 412/304 -> 422 -> 409.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Extension;
use serde_json::{json, Map, Value};
use verdict::auth::{Authenticated, Principal};
use verdict::conditional::Preconditions;
use verdict::extract::RawBody;
use verdict::negotiate::Negotiated;
use verdict::{ApiError, FieldError};

use crate::http::fail::{Fail, Reply};
use crate::http::idempotency::{answer, fingerprint, idempotency_key, replayed};
use crate::http::representation::{tagged, validators_of};
use crate::http::resolve::{gone, reload, resolve};
use crate::model::listing;
use crate::model::records::{
    merge_patch, record_json, valid_field_name, valid_id, RecordJson, ID_RULE, MAX_PAGE_BYTES,
    WRITE_ATTEMPTS,
};
use crate::model::time::now_ms;
use crate::state::AppState;
use crate::storage::{
    CollectionRow, Conflict, Filter, IdempotentAnswer, ListRequest, RecordRow, SortKey,
    StorageError, StoredResponse,
};
use crate::surface::urls;

/// Page sizes.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

fn record_not_found(id: &str) -> ApiError {
    crate::problems::record_not_found(id)
}

fn location(c: &str, id: &str) -> HeaderValue {
    HeaderValue::from_str(&urls::record(c, id)).expect("ids are header-safe")
}

/// A parsed body as a JSON object (422 if it is not one), checked after the
/// collection and record are found, as the contract orders 404 before 422.
fn into_object(value: Value) -> Result<Map<String, Value>, ApiError> {
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::validation_failed(vec![FieldError::new(
            "",
            "must be a JSON object",
        )])),
    }
}

/// Checks data against the collection's rules: 422 naming the failing fields.
pub async fn validate(
    st: &AppState,
    c: &CollectionRow,
    data: Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    st.schemas.validate(c, data).await
}

fn strip_reserved(m: &mut Map<String, Value>) -> Option<Value> {
    let id = m.remove("id");
    m.remove("created_at");
    m.remove("updated_at");
    id
}

/// Whether a write answers with the record: a token without `read` (a
/// write-only token) gets the validators and `Location`, not the data.
fn may_read(p: &Principal) -> bool {
    p.has_scope("read") || p.has_scope("admin")
}

/// The answer to a successful write, as a stored response (so an
/// idempotent create keeps exactly what it answers).
fn write_answer(
    status: StatusCode,
    c: &CollectionRow,
    r: &RecordRow,
    with_body: bool,
) -> StoredResponse {
    let body = serde_json::to_vec(&record_json(r)).expect("records serialize");
    let validators = validators_of(&record_json(r), r.updated_at);
    let mut headers = http::HeaderMap::new();
    validators.apply(&mut headers);
    let mut kept: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let status = if status == StatusCode::CREATED {
        kept.push((header::LOCATION.to_string(), urls::record(&c.name, &r.id)));
        status
    } else if with_body {
        status
    } else {
        StatusCode::NO_CONTENT
    };
    if with_body {
        kept.push((header::CONTENT_TYPE.to_string(), "application/json".into()));
    }
    StoredResponse {
        fingerprint: String::new(),
        status: status.as_u16(),
        headers: kept,
        body: if with_body { body } else { Vec::new() },
    }
}

/// `POST /v1/collections/{c}/records`, with `Idempotency-Key` replaying the first answer.
///
/// The record and the answer kept for its key commit in one transaction: a
/// crash leaves both or neither, so a retry after it finds either the answer
/// or nothing done.
pub async fn create(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Authenticated(p): Authenticated,
    uri: Uri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Reply {
    let key = idempotency_key(&headers)?;
    let Some(key) = key else {
        return create_once(&st, &p, &name, &uri, &body, None).await;
    };
    let fingerprint = fingerprint(uri.path(), &body);
    // Concurrent retries (on any instance) wait for the first.
    let _held = st.shared.lock(&format!("{}:{}", p.subject(), key)).await?;
    if let Some(stored) = st
        .storage
        .idempotency
        .get_idempotent(p.subject(), &key)
        .await?
    {
        return Ok(replayed(stored, &fingerprint)?);
    }
    let idem = (key, fingerprint);
    create_once(&st, &p, &name, &uri, &body, Some(&idem)).await
}

async fn create_once(
    st: &AppState,
    p: &Principal,
    name: &str,
    uri: &Uri,
    body: &[u8],
    idem: Option<&(String, String)>,
) -> Reply {
    let body = verdict::extract::parse_value(body)?;
    let mut c = resolve(st, name, uri).await?;
    let mut data = into_object(body)?;
    let id = match strip_reserved(&mut data) {
        None | Some(Value::Null) => uuid::Uuid::now_v7().simple().to_string(),
        Some(Value::String(id)) if valid_id(&id) => id,
        Some(_) => {
            return Err(ApiError::validation_failed(vec![FieldError::new("/id", ID_RULE)]).into())
        }
    };
    for _ in 0..WRITE_ATTEMPTS {
        data = validate(st, &c, data).await?;
        let now = now_ms();
        let row = RecordRow {
            id: id.clone(),
            data,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let mut stored = write_answer(StatusCode::CREATED, &c, &row, may_read(p));
        let kept = idem.map(|(key, fingerprint)| {
            stored.fingerprint = fingerprint.clone();
            IdempotentAnswer {
                token_id: p.subject().to_string(),
                key: key.clone(),
                response: stored.clone(),
                at: now,
            }
        });
        match st
            .storage
            .records
            .create_record(&c, &row, kept.as_ref())
            .await
        {
            Ok(()) => return Ok(answer(stored)),
            // Checked against a collection that has changed since: again, against what it is now.
            Err(StorageError::CollectionChanged) => c = reload(st, &c).await?,
            Err(StorageError::CollectionGone) => return Err(gone(st, &c)),
            Err(StorageError::Conflict(Conflict::IdempotencyKeyTaken)) => {
                let (key, fingerprint) = idem.expect("only with a key");
                return match st
                    .storage
                    .idempotency
                    .get_idempotent(p.subject(), key)
                    .await?
                {
                    Some(stored) => Ok(replayed(stored, fingerprint)?),
                    None => Err(ApiError::internal("an idempotent answer vanished").into()),
                };
            }
            Err(e) => return Err(e.into()),
        }
        data = row.data;
    }
    Err(changing_collection())
}

fn changing_collection() -> Fail {
    crate::problems::collection_changed().into()
}

/// The record, or 404.
async fn load(st: &AppState, c: &CollectionRow, id: &str) -> Result<RecordRow, Fail> {
    st.storage
        .records
        .get_record(c.id, id)
        .await?
        .ok_or_else(|| record_not_found(id).into())
}

/// `GET /v1/collections/{c}/records/{id}` (the ETag layer answers 304).
pub async fn show(
    State(st): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    uri: Uri,
) -> Reply {
    let c = resolve(&st, &name, &uri).await?;
    let r = load(&st, &c, &id).await?;
    Ok(tagged(StatusCode::OK, &record_json(&r), r.updated_at))
}

/// `PUT /v1/collections/{c}/records/{id}`: replace the data.
pub async fn replace(
    State(st): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Authenticated(p): Authenticated,
    uri: Uri,
    pre: Preconditions,
    RawBody(body): RawBody,
) -> Reply {
    let body = verdict::extract::parse_value(&body)?;
    let c = resolve(&st, &name, &uri).await?;
    update(&st, &p, c, &id, &pre, |_| {
        let mut data = into_object(body.clone())?;
        strip_reserved(&mut data);
        Ok(data)
    })
    .await
}

/// `PATCH /v1/collections/{c}/records/{id}`: RFC 7396 merge patch.
pub async fn patch(
    State(st): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Authenticated(p): Authenticated,
    uri: Uri,
    pre: Preconditions,
    RawBody(body): RawBody,
) -> Reply {
    let patch = verdict::extract::parse_value(&body)?;
    let c = resolve(&st, &name, &uri).await?;
    update(&st, &p, c, &id, &pre, |current| {
        let mut merged = Value::Object(current.data.clone());
        merge_patch(&mut merged, &patch);
        let Value::Object(mut data) = merged else {
            return Err(ApiError::validation_failed(vec![FieldError::new(
                "",
                "a merge patch of a record must be a JSON object",
            )]));
        };
        strip_reserved(&mut data);
        Ok(data)
    })
    .await
}

/// A short random pause before re-applying a write, so contenders spread out.
async fn backoff() {
    let micros = rand::random::<u64>() % 2000;
    tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
}

/// Read, check preconditions (412), compute the new data (422), and
/// compare-and-swap on the record and its collection; a write that lost a
/// race starts over on what won it, so an unconditional write never fails
/// for it and a conditional one is judged against what is really current.
async fn update(
    st: &AppState,
    p: &Principal,
    mut c: CollectionRow,
    id: &str,
    pre: &Preconditions,
    new_data: impl Fn(&RecordRow) -> Result<Map<String, Value>, ApiError>,
) -> Reply {
    for _ in 0..WRITE_ATTEMPTS {
        let current = load(st, &c, id).await?;
        pre.check_write(Some(&validators_of(
            &record_json(&current),
            current.updated_at,
        )))?;
        let data = validate(st, &c, new_data(&current)?).await?;
        let row = RecordRow {
            id: current.id.clone(),
            data,
            version: current.version + 1,
            created_at: current.created_at,
            // Strictly later, so Last-Modified moves even within one millisecond.
            updated_at: now_ms().max(current.updated_at + 1),
        };
        match st
            .storage
            .records
            .update_record(&c, &row, current.version)
            .await
        {
            Ok(()) => return Ok(answer(write_answer(StatusCode::OK, &c, &row, may_read(p)))),
            Err(StorageError::VersionMismatch) => backoff().await,
            Err(StorageError::CollectionChanged) => c = reload(st, &c).await?,
            Err(StorageError::CollectionGone) => return Err(gone(st, &c)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(lost_race(st, &c, id).await)
}

/// A write that lost a race: 412 with the winner's ETag (or 404 if it was deleted).
async fn lost_race(st: &AppState, c: &CollectionRow, id: &str) -> Fail {
    match st.storage.records.get_record(c.id, id).await {
        Ok(Some(now)) => {
            let v = validators_of(&record_json(&now), now.updated_at);
            ApiError::precondition_failed(v.etag.as_ref())
                .with_detail("The record changed while this request was processed.")
                .into()
        }
        Ok(None) => record_not_found(id).into(),
        Err(e) => e.into(),
    }
}

/// `DELETE /v1/collections/{c}/records/{id}`.
pub async fn delete(
    State(st): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    uri: Uri,
    pre: Preconditions,
) -> Reply {
    let c = resolve(&st, &name, &uri).await?;
    for _ in 0..WRITE_ATTEMPTS {
        let current = load(&st, &c, &id).await?;
        pre.check_write(Some(&validators_of(
            &record_json(&current),
            current.updated_at,
        )))?;
        match st
            .storage
            .records
            .delete_record(c.id, &id, current.version)
            .await
        {
            Ok(()) => return Ok(StatusCode::NO_CONTENT.into_response()),
            Err(StorageError::VersionMismatch) => backoff().await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(lost_race(&st, &c, &id).await)
}

/// The field a filter parameter names: `filter[field]`.
fn filter_field(key: &str) -> Option<&str> {
    key.strip_prefix("filter[")?.strip_suffix(']')
}

/// The query of a list: `limit`, `cursor`, `sort`, `count` and
/// `filter[field]=value` filters.
struct ListQuery {
    limit: u32,
    /// The position after which the page starts, one value per sort key.
    after: Option<Vec<Value>>,
    filters: Vec<Filter>,
    /// Never empty; ends with the id.
    sort: Vec<SortKey>,
    /// Whether `sort` was given (the next page's link repeats it).
    sorted: bool,
    /// Whether the page says how many records match the filters.
    count: bool,
}

fn parse_list_query(uri: &Uri) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery {
        limit: DEFAULT_LIMIT,
        after: None,
        filters: Vec::new(),
        sort: vec![SortKey::BY_ID],
        sorted: false,
        count: false,
    };
    let mut cursor = None;
    let pairs = uri.query().unwrap_or("");
    for (k, v) in form_pairs(pairs) {
        match k.as_str() {
            "limit" => {
                q.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid_query(
                            "limit",
                            format!("must be an integer from 1 to {MAX_LIMIT}"),
                        )
                    })?;
            }
            "cursor" => cursor = Some(v),
            "sort" => {
                q.sort = listing::parse_sort(&v).map_err(|e| ApiError::invalid_query("sort", e))?;
                q.sorted = true;
            }
            "count" => {
                q.count = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::invalid_query(
                            "count",
                            "must be `true` or `false`",
                        ))
                    }
                }
            }
            key => {
                match filter_field(key) {
                    Some(field) if valid_field_name(field) => q.filters.push(Filter {
                        field: field.to_string(),
                        value: v,
                    }),
                    Some(_) => {
                        return Err(ApiError::invalid_query(
                            key,
                            "must name a field: letters, digits, `_` or `-`",
                        ))
                    }
                    // An unknown parameter (`page`, `offset`, `per_page`...) is an
                    // error, not an empty page: it is almost always a client's
                    // guess at another API's pagination.
                    None => return Err(ApiError::invalid_query(
                        key,
                        "is not a parameter of this list: use limit, cursor, sort, count or filter[field]=value",
                    )),
                }
            }
        }
    }
    if let Some(cursor) = cursor {
        q.after = Some(if q.sort == [SortKey::BY_ID] {
            // In id order the cursor is the last id of the previous page: any id is a position.
            if !valid_id(&cursor) {
                return Err(ApiError::invalid_query(
                    "cursor",
                    "must be a `next_cursor` from an earlier page",
                ));
            }
            vec![Value::String(cursor)]
        } else {
            listing::read_sorted_cursor(&q.sort, &cursor)
                .map_err(|e| ApiError::invalid_query("cursor", e))?
        });
    }
    Ok(q)
}

/// `k=v&...` decoded as HTML forms and curl encode them.
fn form_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// `GET /v1/collections/{c}/records`: a page, as JSON or (by `Accept`) CSV.
/// A page holds up to `limit` records, and stops early at [`MAX_PAGE_BYTES`].
pub async fn list(
    State(st): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
    negotiated: Option<Extension<Negotiated>>,
) -> Reply {
    let q = parse_list_query(&uri)?;
    let c = resolve(&st, &name, &uri).await?;
    // One more than asked tells whether there is a next page.
    let list = ListRequest {
        filters: &q.filters,
        sort: &q.sort,
        after: q.after.as_deref(),
        limit: q.limit + 1,
        max_bytes: MAX_PAGE_BYTES,
    };
    let page = st.storage.records.list_records(c.id, &list).await?;
    let total = match q.count {
        true => Some(st.storage.records.count_records(c.id, &q.filters).await?),
        false => None,
    };
    let mut rows = page.rows;
    let last = if rows.len() > q.limit as usize {
        rows.truncate(q.limit as usize);
        rows.last()
    } else if page.cut_short {
        rows.last()
    } else {
        None
    };
    let next = last.map(|row| match q.sort == [SortKey::BY_ID] {
        true => row.id.clone(),
        false => listing::sorted_cursor(&q.sort, row),
    });
    let link = next.as_ref().map(|cur| {
        let mut params: Vec<String> = vec![format!("limit={}", q.limit), format!("cursor={cur}")];
        if q.sorted {
            params.push(format!("sort={}", encode(&listing::sort_text(&q.sort))));
        }
        if q.count {
            params.push("count=true".into());
        }
        for f in &q.filters {
            params.push(format!("filter%5B{}%5D={}", f.field, encode(&f.value)));
        }
        format!(
            "<{}?{}>; rel=\"next\"",
            urls::records(&c.name),
            params.join("&")
        )
    });
    let mut res = match negotiated.as_ref().map(|n| n.0.media_type()) {
        Some("text/csv") => crate::http::csv::page(&rows)?,
        _ => {
            let items: Vec<RecordJson> = rows.iter().map(record_json).collect();
            let mut body = json!({"items": items, "next_cursor": next, "limit": q.limit});
            if let Some(total) = total {
                body["total"] = json!(total);
            }
            axum::Json(body).into_response()
        }
    };
    res.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        res.headers_mut().insert(header::LINK, l);
    }
    if let Some(total) = total {
        // For CSV, which has no envelope to carry it (the name json-server
        // and many others use).
        res.headers_mut().insert(
            HeaderName::from_static("x-total-count"),
            HeaderValue::from(total),
        );
    }
    Ok(res)
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `GET /v1/collections/{c}/lookup?field=value`: one match 303, several 300, none 404.
pub async fn lookup(State(st): State<AppState>, Path(name): Path<String>, uri: Uri) -> Reply {
    let pairs = form_pairs(uri.query().unwrap_or(""));
    let [(field, value)] = pairs.as_slice() else {
        return Err(ApiError::invalid_query(
            "field",
            "a lookup takes exactly one `field=value` query parameter",
        )
        .into());
    };
    if !valid_field_name(field) {
        return Err(ApiError::invalid_query(
            field,
            "is not a field name (letters, digits, `_`, `-`)",
        )
        .into());
    }
    let c = resolve(&st, &name, &uri).await?;
    let filter = [Filter {
        field: field.clone(),
        value: value.clone(),
    }];
    let page = st
        .storage
        .records
        .list_records(
            c.id,
            &ListRequest {
                filters: &filter,
                sort: &[SortKey::BY_ID],
                after: None,
                limit: 51,
                max_bytes: MAX_PAGE_BYTES,
            },
        )
        .await?;
    let rows = page.rows;
    match rows.as_slice() {
        [] => Err(crate::problems::no_match(&c.name, field, value).into()),
        [one] if !page.cut_short => {
            if st.preset.allows(StatusCode::SEE_OTHER) {
                Ok((
                    StatusCode::SEE_OTHER,
                    [(header::LOCATION, location(&c.name, &one.id))],
                )
                    .into_response())
            } else {
                // No 303 in this preset: answer with the record itself.
                let mut res = tagged(StatusCode::OK, &record_json(one), one.updated_at);
                res.headers_mut()
                    .insert(header::CONTENT_LOCATION, location(&c.name, &one.id));
                Ok(res)
            }
        }
        many => {
            let choices: Vec<Value> = many
                .iter()
                .take(50)
                .map(|r| json!({"id": r.id, "location": urls::record(&c.name, &r.id)}))
                .collect();
            Ok((
                StatusCode::MULTIPLE_CHOICES,
                axum::Json(
                    json!({"choices": choices, "truncated": many.len() > 50 || page.cut_short}),
                ),
            )
                .into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc7396_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (json!({"a": [1]}), json!({"a": [2]}), json!({"a": [2]})),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want);
        }
    }

    #[test]
    fn list_queries_parse_and_reject_bad_values() {
        let q =
            parse_list_query(&"/x?limit=5&filter%5Bauthor%5D=Ann%20Lee".parse().unwrap()).unwrap();
        assert_eq!(q.limit, 5);
        assert_eq!(
            q.filters,
            vec![Filter {
                field: "author".into(),
                value: "Ann Lee".into()
            }]
        );
        assert!(parse_list_query(&"/x?limit=abc".parse().unwrap()).is_err());
        assert!(parse_list_query(&"/x?limit=0".parse().unwrap()).is_err());
        assert!(parse_list_query(&"/x?cursor=***".parse().unwrap()).is_err());
        assert!(parse_list_query(&"/x?filter%5Ba%24b%5D=1".parse().unwrap()).is_err());
        assert!(parse_list_query(&"/x?author=Ann".parse().unwrap()).is_err());
        assert!(parse_list_query(&"/x?filter%5Bauthor=Ann".parse().unwrap()).is_err());
    }

    #[test]
    fn ids_follow_the_rule() {
        assert!(valid_id("abc-1.2_3"));
        assert!(!valid_id(""));
        assert!(!valid_id("a/b"));
    }

    #[test]
    fn a_representation_merges_the_server_fields_into_the_sorted_data() {
        let row = RecordRow {
            id: "r1".into(),
            data: json!({"zeta": 1, "b": [true], "id": "forged", "a": null})
                .as_object()
                .unwrap()
                .clone(),
            version: 3,
            created_at: 0,
            updated_at: 1_000,
        };
        let text = serde_json::to_string(&record_json(&row)).unwrap();
        assert_eq!(
            text,
            r#"{"a":null,"b":[true],"created_at":"1970-01-01T00:00:00.000Z","id":"r1","updated_at":"1970-01-01T00:00:01.000Z","zeta":1}"#
        );
    }
}
