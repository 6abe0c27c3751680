//! Administration: create the bucket or database a load writes to (`ohlcv influx setup`),
//! delete a load (`--replace`) and withdraw a load's claim.

use chrono::{DateTime, SecondsFormat, Utc};

use super::client::{Client, quote_ident, quote_string};
use super::line_protocol;
use super::{Api, Claim, InfluxConfig, InfluxError, Result};
use crate::model::Symbol;

/// Creates a task of the target's org that runs `flux` (a script starting with its
/// `option task = {name: ..., every: ...}`) and returns its id. It is created inactive: the
/// benchmark creates it to exercise the API and runs its script itself, and a scheduled run
/// would only add noise to the timings (<https://docs.influxdata.com/influxdb/v2/api/#operation/PostTasks>).
pub fn create_task(config: &InfluxConfig, flux: &str, description: &str) -> Result<String> {
    let client = Client::new(config.clone())?;
    let body = serde_json::json!({
        "org": config.org,
        "flux": flux,
        "description": description,
        "status": "inactive",
    });
    let task = client.create_json(config.endpoint("api/v2/tasks"), &body)?;
    task.get("id")
        .and_then(|id| id.as_str())
        .map(str::to_string)
        .ok_or_else(|| InfluxError::Protocol(format!("a created task without an id: {task}")))
}

/// Deletes the task `id`.
pub fn delete_task(config: &InfluxConfig, id: &str) -> Result<()> {
    let client = Client::new(config.clone())?;
    let mut url = config.endpoint("api/v2/tasks");
    url.path_segments_mut()
        .map_err(|()| InfluxError::Url(config.public_url()))?
        .push(id);
    client.delete(url)
}

/// Deletes every trade, candle, manifest, shard and claim point of the target. With a
/// measurement per symbol ([`Schema::PerSymbol`](super::Schema)), 1.x lists the
/// measurements there are; 2.x, which cannot list them in its delete API, deletes those of
/// `symbols` when the target's schema has them.
pub fn clear(config: &InfluxConfig, symbols: &[Symbol]) -> Result<()> {
    let client = Client::new(config.clone())?;
    let mut measurements: Vec<String> = [
        line_protocol::TRADE,
        line_protocol::CANDLE,
        line_protocol::MANIFEST,
        line_protocol::SHARD,
        line_protocol::CLAIM,
    ]
    .map(str::to_string)
    .to_vec();
    match config.api {
        Api::V1 => {
            let per_symbol = client.influxql(
                "SHOW MEASUREMENTS WITH MEASUREMENT =~ /^(trade|candle_1m)_/",
                Some(&config.database),
            )?;
            measurements.extend(
                per_symbol
                    .iter()
                    .filter_map(|row| row.first()?.as_str().map(str::to_string)),
            );
            let q: Vec<String> = measurements
                .iter()
                .map(|m| format!("DROP MEASUREMENT {}", quote_ident(m)))
                .collect();
            client.influxql(&q.join("; "), Some(&config.database))?;
        }
        Api::V2 => {
            let schema = config.schema;
            for symbol in symbols.iter().filter(|_| !schema.symbol_tag()) {
                measurements.push(schema.trade_measurement(symbol));
                measurements.push(schema.candle_measurement(symbol));
            }
            for m in measurements {
                delete_v2(
                    &client,
                    "1677-09-21T00:12:43.145224194Z",
                    "2262-04-11T23:47:16.854775806Z",
                    &format!("_measurement=\"{m}\""),
                )?;
            }
        }
    }
    Ok(())
}

/// Deletes the one point of `claim`, leaving any other claim of the same load (its shards'):
/// a load that claimed the target and then backed off takes its claim back.
pub fn withdraw_claim(config: &InfluxConfig, claim: &Claim) -> Result<()> {
    let client = Client::new(config.clone())?;
    match config.api {
        Api::V1 => {
            let q = format!(
                "DELETE FROM {} WHERE \"fingerprint\" = {} AND time >= {t} AND time <= {t}",
                quote_ident(line_protocol::CLAIM),
                quote_string(&claim.fingerprint),
                t = claim.time,
            );
            client.influxql(&q, Some(&config.database))?;
        }
        Api::V2 => {
            // The delete API's start and stop are both inclusive.
            let time = DateTime::<Utc>::from_timestamp_nanos(claim.time)
                .to_rfc3339_opts(SecondsFormat::Nanos, true);
            delete_v2(
                &client,
                &time,
                &time,
                &format!(
                    "_measurement=\"{}\" AND fingerprint=\"{}\"",
                    line_protocol::CLAIM,
                    claim.fingerprint
                ),
            )?;
        }
    }
    Ok(())
}

/// Drops the whole database (v1) or bucket (v2) with everything in it: what `setup` created.
/// One that is already gone is no error.
pub fn drop_target(config: &InfluxConfig) -> Result<()> {
    let client = Client::new(config.clone())?;
    match config.api {
        Api::V1 => {
            let q = format!("DROP DATABASE {}", quote_ident(&config.database));
            client.influxql(&q, None).map(drop)
        }
        Api::V2 => match bucket_id(&client)? {
            Some(id) => client.delete(config.endpoint(&format!("api/v2/buckets/{id}"))),
            None => Ok(()),
        },
    }
}

/// The ID of `client`'s bucket, if it exists.
pub fn bucket_id(client: &Client) -> Result<Option<String>> {
    let config = client.config();
    let mut url = config.endpoint("api/v2/buckets");
    url.query_pairs_mut()
        .append_pair("org", &config.org)
        .append_pair("name", &config.bucket);
    let found = client.get_json(url)?;
    Ok(found
        .get("buckets")
        .and_then(|b| b.as_array())
        .and_then(|b| b.first())
        .and_then(|b| b.get("id"))
        .and_then(|id| id.as_str())
        .map(str::to_string))
}

/// `/api/v2/delete`: the points in `[start, stop]` that match `predicate`.
fn delete_v2(client: &Client, start: &str, stop: &str, predicate: &str) -> Result<()> {
    let config = client.config();
    let mut url = config.endpoint("api/v2/delete");
    url.query_pairs_mut()
        .append_pair("org", &config.org)
        .append_pair("bucket", &config.bucket);
    let body = serde_json::json!({"start": start, "stop": stop, "predicate": predicate});
    client.post_json(url, &body)
}

/// What `ohlcv influx setup` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupOutcome {
    Created,
    Exists,
    /// It exists, but keeps data for this many days rather than the configured retention.
    RetentionDiffers {
        existing_days: Option<u64>,
    },
}

impl SetupOutcome {
    /// One line saying what setup did to `config`'s target.
    pub fn describe(&self, config: &InfluxConfig) -> String {
        let what = config.missing_target();
        let days = config.retention_days;
        match self {
            SetupOutcome::Created => format!("created {what} with a retention of {days} days"),
            SetupOutcome::Exists => format!("{what} exists with a retention of {days} days"),
            SetupOutcome::RetentionDiffers { existing_days } => format!(
                "{what} exists, but its retention ({}) differs from the configured {days} days; left unchanged",
                existing_days.map_or("infinite".to_string(), |d| format!("{d} days")),
            ),
        }
    }
}

/// Creates the bucket (v2) or database with a retention policy (v1) if missing. Idempotent.
pub fn setup(config: &InfluxConfig) -> Result<SetupOutcome> {
    let client = Client::new(config.clone())?;
    let wanted = config.retention_days as u64 * 86_400;
    match config.api {
        Api::V2 => {
            let mut url = config.endpoint("api/v2/buckets");
            url.query_pairs_mut()
                .append_pair("org", &config.org)
                .append_pair("name", &config.bucket);
            let found = client.get_json(url)?;
            if let Some(bucket) = found
                .get("buckets")
                .and_then(|b| b.as_array())
                .and_then(|b| b.first())
            {
                let existing = bucket["retentionRules"]
                    .as_array()
                    .and_then(|r| r.iter().find(|r| r["type"] == "expire"))
                    .and_then(|r| r["everySeconds"].as_u64())
                    .unwrap_or(0);
                return Ok(if existing == wanted {
                    SetupOutcome::Exists
                } else {
                    SetupOutcome::RetentionDiffers {
                        existing_days: (existing > 0).then_some(existing / 86_400),
                    }
                });
            }
            let no_org = || InfluxError::NotFound(format!("org {:?}", config.org));
            let mut url = config.endpoint("api/v2/orgs");
            url.query_pairs_mut().append_pair("org", &config.org);
            let orgs = client.get_json(url).map_err(|e| match e {
                InfluxError::NotFound(_) => no_org(),
                e => e,
            })?;
            let org_id = orgs
                .get("orgs")
                .and_then(|o| o.as_array())
                .and_then(|o| o.first())
                .and_then(|o| o["id"].as_str())
                .ok_or_else(no_org)?;
            let body = serde_json::json!({
                "orgID": org_id,
                "name": config.bucket,
                "retentionRules": [{"type": "expire", "everySeconds": wanted}],
            });
            client.post_json(config.endpoint("api/v2/buckets"), &body)?;
            Ok(SetupOutcome::Created)
        }
        Api::V1 => {
            let db = &config.database;
            let databases = client.influxql("SHOW DATABASES", None)?;
            let exists = databases
                .iter()
                .any(|row| row.first().and_then(|v| v.as_str()) == Some(db.as_str()));
            if !exists {
                let q = format!(
                    "CREATE DATABASE {} WITH DURATION {}d REPLICATION 1 NAME \"ohlcv\"",
                    quote_ident(db),
                    config.retention_days
                );
                client.influxql(&q, None)?;
                return Ok(SetupOutcome::Created);
            }
            let policies = client.influxql(
                &format!("SHOW RETENTION POLICIES ON {}", quote_ident(db)),
                None,
            )?;
            // Columns: name, duration, shardGroupDuration, replicaN, default.
            let default = policies
                .iter()
                .find(|row| row.get(4).and_then(|v| v.as_bool()) == Some(true));
            let days = default
                .and_then(|row| row.get(1))
                .and_then(|v| v.as_str())
                .and_then(parse_influx_duration_hours)
                .map(|h| h / 24);
            Ok(if days == Some(config.retention_days as u64) {
                SetupOutcome::Exists
            } else {
                SetupOutcome::RetentionDiffers {
                    existing_days: days.filter(|d| *d > 0),
                }
            })
        }
    }
}

/// Parses InfluxDB's `87600h0m0s` (or `0s` for infinite) into whole hours.
fn parse_influx_duration_hours(s: &str) -> Option<u64> {
    if s == "0s" {
        return Some(0);
    }
    s.split_once('h')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_influx_duration_hours("87600h0m0s"), Some(87600));
        assert_eq!(parse_influx_duration_hours("0s"), Some(0));
        assert_eq!(quote_ident(r#"a"b"#), r#""a\"b""#);
    }
}
