//! A Flux evaluator for the strict v2 test server: the subset of Flux the store's reads and
//! the benchmark's server-side candles use (`import "timezone"` and the `location` option,
//! `from`, `range`, `filter` with `==` joined by `and`, `pivot`, `group`, `sort`, `limit`,
//! `keep`, `count`, `last`, `aggregateWindow`, `set`, `to`, `yield`), on Flux's data model
//! (tables grouped by series and field, `_start`/`_stop`/`_time`/`_value`/`_field`/
//! `_measurement` columns, group keys), answered in annotated CSV as `/api/v2/query` answers.
//! Anything outside the subset is an error, as a real server refuses what it cannot compile,
//! so the store's queries must stay within it.
//!
//! Sources: <https://docs.influxdata.com/flux/v0/stdlib/universe/> for each function,
//! <https://docs.influxdata.com/influxdb/v2/reference/syntax/annotated-csv/> for the answer.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum Value {
    Float(f64),
    Int(i64),
    UInt(u64),
    Str(String),
    Bool(bool),
    Time(i64),
}

impl Value {
    fn datatype(&self) -> &'static str {
        match self {
            Value::Float(_) => "double",
            Value::Int(_) => "long",
            Value::UInt(_) => "unsignedLong",
            Value::Str(_) => "string",
            Value::Bool(_) => "boolean",
            Value::Time(_) => "dateTime:RFC3339Nano",
        }
    }

    fn text(&self) -> String {
        match self {
            Value::Float(f) => f.to_string(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            // Go's RFC3339Nano: trailing zeros of the fraction trimmed.
            Value::Time(t) => {
                let s = DateTime::<Utc>::from_timestamp_nanos(*t)
                    .to_rfc3339_opts(SecondsFormat::Nanos, true);
                let (head, frac) = s.trim_end_matches('Z').split_once('.').unwrap();
                let frac = frac.trim_end_matches('0');
                if frac.is_empty() {
                    format!("{head}Z")
                } else {
                    format!("{head}.{frac}Z")
                }
            }
        }
    }
}

/// One stored point.
#[derive(Debug, Clone)]
pub struct Point {
    pub measurement: String,
    pub tags: Vec<(String, String)>,
    pub time: i64,
    pub fields: Vec<(String, Value)>,
}

type Row = BTreeMap<String, Value>;

#[derive(Debug, Clone)]
struct Table {
    /// Group key columns.
    key: Vec<String>,
    rows: Vec<Row>,
}

/// Splits `s` into `name(args)` calls joined by `|>`.
fn calls(statement: &str) -> Result<Vec<(String, String)>, String> {
    statement
        .split("|>")
        .map(|call| {
            let call = call.trim();
            let open = call
                .find('(')
                .ok_or(format!("expected a call, got {call:?}"))?;
            let args = call[open + 1..]
                .strip_suffix(')')
                .ok_or(format!("unclosed call {call:?}"))?;
            Ok((call[..open].trim().to_string(), args.trim().to_string()))
        })
        .collect()
}

/// Parses a Flux string literal at the start of `s`; returns it and the rest.
fn string_literal(s: &str) -> Result<(String, &str), String> {
    let mut chars = s.char_indices();
    if chars.next().map(|(_, c)| c) != Some('"') {
        return Err(format!("expected a string literal at {s:?}"));
    }
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in chars {
        match (escaped, c) {
            (true, c) => {
                out.push(c);
                escaped = false;
            }
            (false, '\\') => escaped = true,
            (false, '"') => return Ok((out, &s[i + 1..])),
            (false, '$') if s[i + 1..].starts_with('{') => {
                return Err("string interpolation is not supported here".into());
            }
            (false, c) => out.push(c),
        }
    }
    Err(format!("unterminated string {s:?}"))
}

/// `name: value` pairs of a call; values are kept as source text.
fn named_args(args: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut rest = args.trim();
    while !rest.is_empty() {
        let colon = rest
            .find(':')
            .ok_or(format!("expected name: value in {args:?}"))?;
        let name = rest[..colon].trim().to_string();
        rest = rest[colon + 1..].trim_start();
        // A value ends at the next comma outside brackets, strings and parentheses.
        let (mut depth, mut in_string, mut escaped, mut end) = (0i32, false, false, rest.len());
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_string => escaped = true,
                '"' => in_string = !in_string,
                '[' | '(' if !in_string => depth += 1,
                ']' | ')' if !in_string => depth -= 1,
                ',' if !in_string && depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        out.insert(name, rest[..end].trim().to_string());
        rest = rest[end..].trim_start_matches(',').trim_start();
    }
    Ok(out)
}

fn time_literal(s: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or(format!("expected a time literal, got {s:?}"))
}

fn string_array(s: &str) -> Result<Vec<String>, String> {
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or(format!("expected an array, got {s:?}"))?;
    let mut out = Vec::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (v, after) = string_literal(rest)?;
        out.push(v);
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    Ok(out)
}

/// `(r) => r.a == "x" and r.b == "y"` as (column, value) pairs.
fn predicate(f: &str) -> Result<Vec<(String, String)>, String> {
    let body = f
        .strip_prefix("(r) =>")
        .ok_or(format!("expected (r) => ..., got {f:?}"))?;
    body.split(" and ")
        .map(|term| {
            let (column, value) = term
                .split_once("==")
                .ok_or(format!("expected r.column == \"value\", got {term:?}"))?;
            let column = column
                .trim()
                .strip_prefix("r.")
                .ok_or(format!("expected r.column, got {column:?}"))?;
            let (value, rest) = string_literal(value.trim())?;
            if !rest.trim().is_empty() {
                return Err(format!("unexpected {rest:?}"));
            }
            Ok((column.to_string(), value))
        })
        .collect()
}

fn expect_args(name: &str, args: &HashMap<String, String>, allowed: &[&str]) -> Result<(), String> {
    match args.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{name}() has no parameter {k:?}")),
        None => Ok(()),
    }
}

/// Regroups rows by `key`, keeping the first-seen order of groups and of rows.
fn regroup(tables: Vec<Table>, key: Vec<String>) -> Vec<Table> {
    let mut out: Vec<Table> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for row in tables.into_iter().flat_map(|t| t.rows) {
        let id = format!("{:?}", key.iter().map(|c| row.get(c)).collect::<Vec<_>>());
        let i = *index.entry(id).or_insert_with(|| {
            out.push(Table {
                key: key.clone(),
                rows: Vec::new(),
            });
            out.len() - 1
        });
        out[i].rows.push(row);
    }
    out
}

/// A duration literal of seconds to days (`30s`, `1m`, `1h`, `1d`) in nanoseconds.
fn duration(s: &str) -> Result<i64, String> {
    let unit = s.trim_start_matches(|c: char| c.is_ascii_digit());
    let n: i64 = s[..s.len() - unit.len()]
        .parse()
        .map_err(|_| format!("expected a duration, got {s:?}"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "this server takes durations in s, m, h or d, not {s:?}"
            ));
        }
    };
    Ok(n * seconds * 1_000_000_000)
}

/// The window of `every` that holds `t`, cut in `location`: windows align with the Unix
/// epoch on the location's wall clock, so daily windows start at its midnights
/// (<https://docs.influxdata.com/flux/v0/stdlib/universe/window/>: "by default the start
/// boundary of a window will align with the Unix epoch modified by the offset of the
/// location option").
fn window(t: i64, every: i64, location: Tz) -> Result<(i64, i64), String> {
    let wall = location
        .timestamp_nanos(t)
        .naive_local()
        .and_utc()
        .timestamp_nanos_opt()
        .ok_or("a time out of range")?;
    let start = wall - wall.rem_euclid(every);
    let instant = |wall: i64| {
        location
            .from_local_datetime(&DateTime::<Utc>::from_timestamp_nanos(wall).naive_utc())
            .earliest()
            .and_then(|t| t.timestamp_nanos_opt())
            .ok_or(format!(
                "a window bound in a gap of {location}: this server cuts none"
            ))
    };
    Ok((instant(start)?, instant(start + every)?))
}

/// The sum of `values` of one type, as Flux's `sum()` keeps the column's type.
fn sum(values: &[&Value]) -> Result<Option<Value>, String> {
    values.iter().try_fold(None, |total, v| {
        Ok(Some(match (total, v) {
            (None, v) => (*v).clone(),
            (Some(Value::Int(a)), Value::Int(b)) => Value::Int(a + b),
            (Some(Value::UInt(a)), Value::UInt(b)) => Value::UInt(a + b),
            (Some(Value::Float(a)), Value::Float(b)) => Value::Float(a + b),
            (Some(a), b) => return Err(format!("cannot sum {a:?} and {b:?}")),
        }))
    })
}

/// The series key a point is stored under, as line protocol names it: the measurement and
/// the tags in key order.
pub fn series_key(measurement: &str, tags: &[(String, String)]) -> String {
    let mut key = measurement.to_string();
    for (k, v) in tags {
        key.push_str(&format!(",{k}={v}"));
    }
    key
}

/// Evaluates one `from(...) |> ...` statement in `location`; returns its result name and
/// tables, and adds the points its `to()` wrote to `written`.
fn statement(
    source: &str,
    bucket_exists: &dyn Fn(&str) -> bool,
    points: &[Point],
    location: Tz,
    written: &mut Vec<Point>,
) -> Result<(String, Vec<Table>), String> {
    let calls = calls(source)?;
    // The first filter's `_measurement` and `_field` terms, if it is the call after range():
    // rows it would drop are not built (only for speed: the filter still runs).
    let first_filter = match calls.get(2) {
        Some((name, args)) if name == "filter" => named_args(args)?
            .get("fn")
            .map(|f| predicate(f))
            .transpose()?
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let wanted =
        |column: &str, value: &str| first_filter.iter().all(|(c, v)| c != column || v == value);
    let mut calls = calls.into_iter();
    let (name, args) = calls.next().ok_or("empty statement")?;
    if name != "from" {
        return Err(format!("a query starts with from(), not {name}()"));
    }
    let args = named_args(&args)?;
    expect_args("from", &args, &["bucket"])?;
    let (bucket, _) = string_literal(args.get("bucket").ok_or("from() needs bucket")?)?;
    if !bucket_exists(&bucket) {
        return Err(format!("could not find bucket {bucket:?}"));
    }
    let (name, args) = calls.next().ok_or("from() must be followed by range()")?;
    if name != "range" {
        return Err("from() must be followed by range()".into());
    }
    let args = named_args(&args)?;
    expect_args("range", &args, &["start", "stop"])?;
    let start = time_literal(args.get("start").ok_or("range() needs start")?)?;
    let stop = match args.get("stop") {
        Some(s) => time_literal(s)?,
        None => Utc::now().timestamp_nanos_opt().unwrap(),
    };

    // One table per series and field, rows in time order.
    let mut series: BTreeMap<String, Table> = BTreeMap::new();
    let mut sorted: Vec<&Point> = points
        .iter()
        .filter(|p| p.time >= start && p.time < stop && wanted("_measurement", &p.measurement))
        .collect();
    sorted.sort_by_key(|p| p.time);
    for p in sorted {
        for (field, value) in p.fields.iter().filter(|(f, _)| wanted("_field", f)) {
            let mut row = Row::new();
            row.insert("_start".into(), Value::Time(start));
            row.insert("_stop".into(), Value::Time(stop));
            row.insert("_time".into(), Value::Time(p.time));
            row.insert("_measurement".into(), Value::Str(p.measurement.clone()));
            row.insert("_field".into(), Value::Str(field.clone()));
            row.insert("_value".into(), value.clone());
            let mut key = vec![
                "_start".to_string(),
                "_stop".into(),
                "_measurement".into(),
                "_field".into(),
            ];
            for (k, v) in &p.tags {
                row.insert(k.clone(), Value::Str(v.clone()));
                key.push(k.clone());
            }
            let id = format!("{}{:?}{field}", p.measurement, p.tags);
            series
                .entry(id)
                .or_insert_with(|| Table {
                    key,
                    rows: Vec::new(),
                })
                .rows
                .push(row);
        }
    }
    let mut tables: Vec<Table> = series.into_values().collect();
    let mut result = "_result".to_string();

    for (name, args) in calls {
        let args = named_args(&args)?;
        tables = match name.as_str() {
            "filter" => {
                expect_args("filter", &args, &["fn"])?;
                let terms = predicate(args.get("fn").ok_or("filter() needs fn")?)?;
                tables
                    .into_iter()
                    .map(|mut t| {
                        t.rows.retain(|row| {
                            terms
                                .iter()
                                .all(|(c, v)| row.get(c) == Some(&Value::Str(v.clone())))
                        });
                        t
                    })
                    .filter(|t| !t.rows.is_empty())
                    .collect()
            }
            "pivot" => {
                expect_args("pivot", &args, &["rowKey", "columnKey", "valueColumn"])?;
                let row_key = string_array(args.get("rowKey").ok_or("pivot() needs rowKey")?)?;
                let column_key =
                    string_array(args.get("columnKey").ok_or("pivot() needs columnKey")?)?;
                let (value_column, _) =
                    string_literal(args.get("valueColumn").ok_or("pivot() needs valueColumn")?)?;
                if row_key != ["_time"] || column_key != ["_field"] {
                    return Err(
                        "this server pivots rowKey [\"_time\"] by columnKey [\"_field\"] only"
                            .into(),
                    );
                }
                let key: Vec<String> = tables
                    .first()
                    .map(|t| {
                        t.key
                            .iter()
                            .filter(|c| **c != "_field" && **c != value_column)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                regroup(tables, key)
                    .into_iter()
                    .map(|t| {
                        let mut rows: BTreeMap<i64, Row> = BTreeMap::new();
                        for mut row in t.rows {
                            let Some(Value::Time(time)) = row.get("_time").cloned() else {
                                continue;
                            };
                            let Some(Value::Str(field)) = row.remove("_field") else {
                                continue;
                            };
                            let value = row.remove(&value_column).unwrap();
                            rows.entry(time).or_insert(row).insert(field, value);
                        }
                        Table {
                            key: t.key,
                            rows: rows.into_values().collect(),
                        }
                    })
                    .collect()
            }
            "group" => {
                expect_args("group", &args, &["columns"])?;
                let columns = match args.get("columns") {
                    Some(columns) => string_array(columns)?,
                    None => Vec::new(),
                };
                regroup(tables, columns)
            }
            "sort" => {
                expect_args("sort", &args, &["columns", "desc"])?;
                let columns = string_array(args.get("columns").ok_or("sort() needs columns")?)?;
                let desc = match args.get("desc").map(String::as_str) {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(other) => return Err(format!("desc: expected a bool, got {other:?}")),
                };
                for t in &mut tables {
                    t.rows.sort_by(|a, b| {
                        let order = columns
                            .iter()
                            .map(|c| a.get(c).partial_cmp(&b.get(c)).unwrap())
                            .find(|o| o.is_ne())
                            .unwrap_or(std::cmp::Ordering::Equal);
                        if desc { order.reverse() } else { order }
                    });
                }
                tables
            }
            // <https://docs.influxdata.com/flux/v0/stdlib/universe/aggregatewindow/>: rows
            // are windowed by `_time`, each window's `_value`s reduced by `fn`, and the
            // window's bound `timeSrc` (its stop by default) becomes `_time`. An aggregate
            // (`sum`, `count`) keeps the group key's columns only; a selector (`first`, `last`,
            // `min`, `max`) returns the row it selected, every column of it
            // (<https://docs.influxdata.com/flux/v0/function-types/#selectors>). Empty windows give no row only with
            // `createEmpty: false` (the default, true, gives them a null value).
            "aggregateWindow" => {
                expect_args(&name, &args, &["every", "fn", "timeSrc", "createEmpty"])?;
                let every = duration(args.get("every").ok_or("aggregateWindow() needs every")?)?;
                let function = args.get("fn").ok_or("aggregateWindow() needs fn")?.clone();
                let use_start = match args.get("timeSrc") {
                    None => false,
                    Some(src) => match string_literal(src)?.0.as_str() {
                        "_start" => true,
                        "_stop" => false,
                        other => return Err(format!("timeSrc {other:?} is not a window bound")),
                    },
                };
                if args.get("createEmpty").map(String::as_str) != Some("false") {
                    return Err(
                        "this server computes aggregateWindow(createEmpty: false) only".into(),
                    );
                }
                let mut out = Vec::new();
                for t in tables {
                    let mut windows: BTreeMap<i64, (i64, Vec<Row>)> = BTreeMap::new();
                    for row in t.rows {
                        let Some(Value::Time(time)) = row.get("_time") else {
                            return Err("aggregateWindow() needs _time".into());
                        };
                        let (start, stop) = window(*time, every, location)?;
                        windows
                            .entry(start)
                            .or_insert((stop, Vec::new()))
                            .1
                            .push(row);
                    }
                    let mut rows = Vec::new();
                    for (start, (stop, window_rows)) in windows {
                        let with_value = || window_rows.iter().filter(|r| r.contains_key("_value"));
                        let by_value =
                            |a: &&Row, b: &&Row| a["_value"].partial_cmp(&b["_value"]).unwrap();
                        let selected = match function.as_str() {
                            "first" => Some(with_value().next()),
                            "last" => Some(with_value().next_back()),
                            "min" => Some(with_value().min_by(by_value)),
                            "max" => Some(with_value().max_by(by_value)),
                            _ => None,
                        };
                        let first = &window_rows[0];
                        let mut row: Row = match selected {
                            Some(Some(selected)) => selected.clone(),
                            Some(None) => continue,
                            None => {
                                let values: Vec<&Value> =
                                    with_value().map(|r| &r["_value"]).collect();
                                let value = match function.as_str() {
                                    "sum" => sum(&values)?,
                                    "count" => Some(Value::Int(values.len() as i64)),
                                    other => {
                                        return Err(format!(
                                            "aggregateWindow(fn: {other}) is not supported by this test server"
                                        ));
                                    }
                                };
                                let Some(value) = value else { continue };
                                let mut row: Row = t
                                    .key
                                    .iter()
                                    .filter_map(|c| first.get(c).map(|v| (c.clone(), v.clone())))
                                    .collect();
                                row.insert("_value".into(), value);
                                row
                            }
                        };
                        for bound in ["_start", "_stop"] {
                            if let Some(v) = first.get(bound) {
                                row.insert(bound.into(), v.clone());
                            }
                        }
                        row.insert(
                            "_time".into(),
                            Value::Time(if use_start { start } else { stop }),
                        );
                        rows.push(row);
                    }
                    if !rows.is_empty() {
                        out.push(Table { key: t.key, rows });
                    }
                }
                out
            }
            // <https://docs.influxdata.com/flux/v0/stdlib/universe/set/>
            "set" => {
                expect_args(&name, &args, &["key", "value"])?;
                let (key, _) = string_literal(args.get("key").ok_or("set() needs key")?)?;
                let (value, _) = string_literal(args.get("value").ok_or("set() needs value")?)?;
                for t in &mut tables {
                    for row in &mut t.rows {
                        row.insert(key.clone(), Value::Str(value.clone()));
                    }
                }
                tables
            }
            // <https://docs.influxdata.com/flux/v0/stdlib/influxdata/influxdb/to/>: each row
            // is a point of `_measurement` with the field `_field` = `_value` at `_time`, its
            // other string columns its tags; the tables pass on unchanged.
            "to" => {
                expect_args(&name, &args, &["bucket", "org"])?;
                let (bucket, _) = string_literal(args.get("bucket").ok_or("to() needs bucket")?)?;
                string_literal(args.get("org").ok_or("to() needs org")?)?;
                if !bucket_exists(&bucket) {
                    return Err(format!("could not find bucket {bucket:?}"));
                }
                for row in tables.iter().flat_map(|t| &t.rows) {
                    let (
                        Some(Value::Str(measurement)),
                        Some(Value::Str(field)),
                        Some(Value::Time(time)),
                        Some(value),
                    ) = (
                        row.get("_measurement"),
                        row.get("_field"),
                        row.get("_time"),
                        row.get("_value"),
                    )
                    else {
                        return Err("to() needs _measurement, _field, _time and _value".into());
                    };
                    let tags = row
                        .iter()
                        .filter(|(c, _)| {
                            !["_measurement", "_field", "_value"].contains(&c.as_str())
                        })
                        .filter_map(|(c, v)| match v {
                            Value::Str(v) => Some((c.clone(), v.clone())),
                            _ => None,
                        })
                        .collect();
                    written.push(Point {
                        measurement: measurement.clone(),
                        tags,
                        time: *time,
                        fields: vec![(field.clone(), value.clone())],
                    });
                }
                tables
            }
            "limit" => {
                expect_args("limit", &args, &["n"])?;
                let n: usize = args
                    .get("n")
                    .and_then(|n| n.parse().ok())
                    .ok_or("limit() needs n: int")?;
                for t in &mut tables {
                    t.rows.truncate(n);
                }
                tables
            }
            "keep" => {
                expect_args("keep", &args, &["columns"])?;
                let columns = string_array(args.get("columns").ok_or("keep() needs columns")?)?;
                for t in &mut tables {
                    t.key.retain(|c| columns.contains(c));
                    for row in &mut t.rows {
                        row.retain(|c, _| columns.contains(c));
                    }
                }
                tables
            }
            "count" | "last" => {
                expect_args(&name, &args, &[])?;
                tables
                    .into_iter()
                    .map(|t| {
                        let with_value: Vec<&Row> =
                            t.rows.iter().filter(|r| r.contains_key("_value")).collect();
                        let row = if name == "count" {
                            let mut row: Row = t
                                .key
                                .iter()
                                .filter_map(|c| {
                                    t.rows
                                        .first()
                                        .and_then(|r| r.get(c))
                                        .map(|v| (c.clone(), v.clone()))
                                })
                                .collect();
                            row.insert("_value".into(), Value::Int(with_value.len() as i64));
                            Some(row)
                        } else {
                            with_value.last().map(|r| (*r).clone())
                        };
                        Table {
                            key: t.key.clone(),
                            rows: row.into_iter().collect(),
                        }
                    })
                    .filter(|t| !t.rows.is_empty())
                    .collect()
            }
            "yield" => {
                expect_args("yield", &args, &["name"])?;
                result = string_literal(args.get("name").ok_or("yield() needs name")?)?.0;
                tables
            }
            other => return Err(format!("{other}() is not supported by this test server")),
        };
    }
    Ok((result, tables))
}

/// The `location` option a query's preamble (what comes before its first `from()`) sets:
/// UTC unless it imports `timezone` and sets
/// `option location = timezone.location(name: "...")`
/// (<https://docs.influxdata.com/flux/v0/stdlib/timezone/location/>).
fn location(preamble: &str) -> Result<Tz, String> {
    let mut imported = false;
    let mut location = Tz::UTC;
    for line in preamble.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line == "import \"timezone\"" {
            imported = true;
        } else if let Some(call) = line.strip_prefix("option location = timezone.location(") {
            if !imported {
                return Err("undefined identifier timezone".into());
            }
            let args = named_args(call.strip_suffix(')').ok_or("unclosed call")?)?;
            expect_args("timezone.location", &args, &["name"])?;
            let (name, _) = string_literal(args.get("name").ok_or("location() needs name")?)?;
            location = name
                .parse()
                .map_err(|_| format!("unknown time zone {name:?}"))?;
        } else {
            return Err(format!("this server does not compile {line:?}"));
        }
    }
    Ok(location)
}

/// Evaluates `query` and answers in annotated CSV with the `#datatype` annotation, or the
/// compile error a real server would give; also returns the points its `to()` calls wrote.
pub fn evaluate(
    query: &str,
    bucket_exists: &dyn Fn(&str) -> bool,
    points: &[Point],
) -> Result<(String, Vec<Point>), String> {
    let mut body = Vec::new();
    let mut written = Vec::new();
    let mut table_id = 0usize;
    let starts: Vec<usize> = query.match_indices("from(").map(|(i, _)| i).collect();
    let Some(&first) = starts.first() else {
        return Err("a query needs from()".into());
    };
    let location = location(&query[..first])?;
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(query.len());
        let (result, tables) = statement(
            &query[start..end],
            bucket_exists,
            points,
            location,
            &mut written,
        )?;
        for table in tables {
            // Tables are separated by an empty line.
            if !body.is_empty() {
                body.push(b'\n');
            }
            let mut out = csv::WriterBuilder::new()
                .flexible(true)
                .from_writer(&mut body);
            let columns: Vec<String> = table
                .rows
                .iter()
                .flat_map(|r| r.keys().cloned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let first = &table.rows[0];
            let mut datatype = vec!["#datatype".to_string(), "string".into(), "long".into()];
            datatype.extend(
                columns
                    .iter()
                    .map(|c| first.get(c).map_or("string", Value::datatype).to_string()),
            );
            out.write_record(&datatype).unwrap();
            let mut header = vec![String::new(), "result".into(), "table".into()];
            header.extend(columns.iter().cloned());
            out.write_record(&header).unwrap();
            for row in &table.rows {
                let mut record = vec![String::new(), result.clone(), table_id.to_string()];
                record.extend(
                    columns
                        .iter()
                        .map(|c| row.get(c).map(Value::text).unwrap_or_default()),
                );
                out.write_record(&record).unwrap();
            }
            out.flush().unwrap();
            table_id += 1;
        }
    }
    Ok((String::from_utf8(body).unwrap(), written))
}
