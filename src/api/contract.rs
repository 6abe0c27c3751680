//! The OpenAPI document as the contract the server keeps: what `utoipa` derives from the
//! handlers, plus what it cannot see. Each parameter's pattern, enum and bounds come from the
//! same constants the validators use (property tests hold each validator to its pattern), the
//! ingestion body's schema states the bounds `ingestions::spec` checks (the trade cap being
//! this server's `--max-ingestion-trades`), and every operation lists the statuses the layers
//! around the handlers answer: 401 where this server's token applies, 503 when a request times
//! out, 500. A request that breaks the document gets a 400 (415 for a body that is not JSON);
//! one the document admits that names something the server cannot serve gets a 422.

use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use super::{ApiDoc, MAX_LIMIT, Settings, ingestions};
use crate::candles::INTERVAL_PATTERN;
use crate::model::SYMBOL_PATTERN;
use crate::query::{DATE_PATTERN, TIME_PATTERN};

/// `symbols=AAPL,MSFT`: symbols of [`SYMBOL_PATTERN`] joined by commas.
pub const SYMBOL_LIST_PATTERN: &str = "^[A-Z][A-Z0-9.-]{0,9}(,[A-Z][A-Z0-9.-]{0,9})*$";

/// The document this server serves, as JSON.
pub(super) fn json(settings: &Settings) -> serde_json::Value {
    let mut json = serde_json::to_value(document(settings)).unwrap_or_else(|e| {
        // Unreachable in practice: the document is maps and strings, which always serialise.
        tracing::error!(error = %e, "cannot serialise the OpenAPI document");
        serde_json::Value::Null
    });
    // utoipa 5 writes a link's fields in snake case; OpenAPI spells them in camel case.
    for item in json
        .get_mut("paths")
        .and_then(|p| p.as_object_mut())
        .into_iter()
        .flat_map(|p| p.values_mut())
    {
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut())
        {
            let responses = op
                .get_mut("responses")
                .and_then(|r| r.as_object_mut())
                .into_iter();
            for link in responses
                .flat_map(|r| r.values_mut())
                .filter_map(|r| r.get_mut("links").and_then(|l| l.as_object_mut()))
            {
                for link in link.values_mut().filter_map(|l| l.as_object_mut()) {
                    for (from, to) in [
                        ("operation_id", "operationId"),
                        ("operation_ref", "operationRef"),
                        ("request_body", "requestBody"),
                    ] {
                        if let Some(v) = link.remove(from) {
                            link.insert(to.to_string(), v);
                        }
                    }
                }
            }
        }
    }
    json
}

fn document(settings: &Settings) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in operations(item) {
            constrain_parameters(path, op);
            answer_layers(path, op, settings);
        }
    }
    if let Some(components) = doc.components.as_mut() {
        components.schemas.insert(
            "IngestionRequest".to_string(),
            ingestion_request(settings.max_ingestion_trades).into(),
        );
    }
    doc
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.post]
        .into_iter()
        .filter_map(Option::as_mut)
}

fn string(pattern: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
}

fn integer(format: KnownFormat, minimum: i64, maximum: u64) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(format)))
        .minimum(Some(minimum as isize))
        .maximum(Some(maximum as usize))
        .into()
}

fn one_of(values: impl IntoIterator<Item = &'static str>) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .into()
}

/// The schema of a parameter, by name: names mean the same on every route.
fn parameter_schema(path: &str, name: &str) -> Option<Schema> {
    Some(match name {
        "symbol" => string(SYMBOL_PATTERN).into(),
        "symbols" => string(SYMBOL_LIST_PATTERN).into(),
        "interval" => string(INTERVAL_PATTERN).into(),
        "start" | "end" => string(TIME_PATTERN).into(),
        "tz" => one_of(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())),
        "fill" => one_of(["none", "null", "previous"]),
        "limit" => integer(KnownFormat::Int32, 1, MAX_LIMIT as u64),
        "cursor" => integer(KnownFormat::Int64, i64::MIN, i64::MAX as u64),
        // Ids count from 1; the server reads any u64, the document promises what clients need.
        "id" if path.starts_with("/api/v1/ingestions/") => {
            integer(KnownFormat::Int64, 1, i64::MAX as u64)
        }
        _ => return None,
    })
}

fn constrain_parameters(path: &str, op: &mut Operation) {
    for p in op.parameters.iter_mut().flatten() {
        if let Some(schema) = parameter_schema(path, &p.name) {
            p.schema = Some(schema.into());
        }
    }
}

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// What the layers around every handler may answer, and who must show the token here.
fn answer_layers(path: &str, op: &mut Operation, settings: &Settings) {
    let auth = &settings.auth;
    // Handlers that change state declare the token; with `--auth all` every route but
    // /health needs it, and without a token none does.
    let guarded =
        !auth.is_open() && (op.security.is_some() || (auth.protects_reads() && path != "/health"));
    op.security = guarded.then(|| vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    let responses = &mut op.responses.responses;
    if guarded {
        responses.insert(
            "401".into(),
            problem("No `Authorization: Bearer <token>`, or not this server's token"),
        );
    }
    responses
        .entry("503".into())
        .or_insert_with(|| problem("The request took longer than the server's request timeout"));
    responses.insert(
        "500".into(),
        problem("An internal error; the detail carries the request id the log names"),
    );
}

/// The body of `POST /api/v1/ingestions`, as `ingestions::spec` checks it: no field
/// required, none `null`, no other field.
fn ingestion_request(max_trades: u64) -> Schema {
    let described = |schema: ObjectBuilder, description: &str| -> RefOr<Schema> {
        schema.description(Some(description)).into()
    };
    let date = |description| {
        described(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
                .pattern(Some(DATE_PATTERN)),
            description,
        )
    };
    let flag =
        |description| described(ObjectBuilder::new().schema_type(Type::Boolean), description);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "A load's settings; each left out is the server's own (`ohlcv serve`'s load flags).",
        ))
        .property(
            "trades",
            described(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(1))
                    .maximum(Some(max_trades as usize))
                    .examples([1_000_000]),
                "Number of trades, exactly; at most this server's --max-ingestion-trades",
            ),
        )
        .property(
            "symbols",
            ArrayBuilder::new()
                .items(string(SYMBOL_PATTERN))
                .min_items(Some(1))
                .max_items(Some(ingestions::MAX_SYMBOLS))
                .unique_items(true)
                .description(Some("Tickers, each once"))
                .examples([serde_json::json!(["AAPL", "MSFT"])]),
        )
        .property("start", date("First day, inclusive"))
        .property("end", date("Last day, inclusive"))
        .property(
            "seed",
            described(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(u64::MAX as usize)),
                "Seed of the generator: the same seed and settings give the same trades",
            ),
        )
        .property(
            "store",
            described(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["parquet", "influxdb"])),
                "Must be the store the server serves",
            ),
        )
        .property(
            "replace",
            flag("Delete a different load found in the store"),
        )
        .property(
            "resume",
            flag("InfluxDB: skip chunks this load's checkpoint lists as written"),
        )
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
        .into()
}
