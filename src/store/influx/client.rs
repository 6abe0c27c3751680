//! The blocking side of the InfluxDB client: one keep-alive HTTP client with the credentials,
//! the two query transports (InfluxQL through `/query`, Flux through `/api/v2/query`) and the
//! JSON calls administration makes. Writes go through the async pipeline in [`super::write`].

use std::time::Duration;

use serde_json::Value;

use super::{InfluxConfig, InfluxError, Result, error_message, transport_error};

pub struct Client {
    config: InfluxConfig,
    http: reqwest::blocking::Client,
}

/// An InfluxQL identifier in double quotes.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An InfluxQL string literal in single quotes.
pub fn quote_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl Client {
    pub fn new(config: InfluxConfig) -> Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(transport_error)?;
        Ok(Self { config, http })
    }

    pub fn config(&self) -> &InfluxConfig {
        &self.config
    }

    /// The response if it succeeded; otherwise the error its status means.
    fn check(&self, response: reqwest::blocking::Response) -> Result<reqwest::blocking::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().unwrap_or_default();
        Err(match status.as_u16() {
            401 | 403 => InfluxError::Credentials(status.as_u16()),
            404 => InfluxError::NotFound(self.config.missing_target()),
            s => InfluxError::Server {
                status: s,
                message: error_message(&body),
            },
        })
    }

    fn send(
        &self,
        request: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response> {
        let response = request
            .headers(self.config.auth_headers())
            .send()
            .map_err(transport_error)?;
        self.check(response)
    }

    pub fn get_json(&self, url: reqwest::Url) -> Result<Value> {
        let text = self
            .send(self.http.get(url))?
            .text()
            .map_err(transport_error)?;
        serde_json::from_str(&text).map_err(|e| InfluxError::Protocol(e.to_string()))
    }

    pub fn post_json(&self, url: reqwest::Url, body: &Value) -> Result<()> {
        self.send(self.http.post(url).json(body)).map(drop)
    }

    /// POSTs `body` and returns the JSON the server answers with (what it created).
    pub fn create_json(&self, url: reqwest::Url, body: &Value) -> Result<Value> {
        let text = self
            .send(self.http.post(url).json(body))?
            .text()
            .map_err(transport_error)?;
        serde_json::from_str(&text).map_err(|e| InfluxError::Protocol(e.to_string()))
    }

    pub fn delete(&self, url: reqwest::Url) -> Result<()> {
        self.send(self.http.delete(url)).map(drop)
    }

    /// The server's version, as it names itself in the `X-Influxdb-Version` header of
    /// `/ping` (1.x, 2.x and 3.x all send it).
    pub fn version(&self) -> Result<Option<String>> {
        let response = self.send(self.http.get(self.config.endpoint("ping")))?;
        Ok(response
            .headers()
            .get("x-influxdb-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string))
    }

    /// The body of a GET of `url` as text (`/metrics`, `/debug/vars`).
    pub fn get_text(&self, url: reqwest::Url) -> Result<String> {
        self.send(self.http.get(url))?
            .text()
            .map_err(transport_error)
    }

    /// Runs InfluxQL statements through `/query` and returns the rows of every series of every
    /// result, in order.
    pub fn influxql(&self, q: &str, db: Option<&str>) -> Result<Vec<Vec<Value>>> {
        let mut out = Vec::new();
        self.influxql_each(q, db, |_, rows| out.extend(rows))?;
        Ok(out)
    }

    /// Like [`Client::influxql`], calling `each(statement_id, rows)` per chunk of rows
    /// (`epoch=ns`, chunked so large results stream).
    pub fn influxql_each(
        &self,
        q: &str,
        db: Option<&str>,
        mut each: impl FnMut(usize, Vec<Vec<Value>>),
    ) -> Result<()> {
        let mut url = self.config.endpoint("query");
        {
            let mut pairs = url.query_pairs_mut();
            pairs
                .append_pair("epoch", "ns")
                .append_pair("chunked", "true")
                .append_pair("chunk_size", "20000");
            if let Some(db) = db {
                pairs.append_pair("db", db);
            }
        }
        let response = self.send(self.http.post(url).form(&[("q", q)]))?;
        let reader = std::io::BufReader::new(response);
        // InfluxQL reports errors inside a 200; a missing database is one of them.
        let server_error = |message: &str| {
            if message.starts_with("database not found") {
                InfluxError::NotFound(self.config.missing_target())
            } else {
                InfluxError::Server {
                    status: 200,
                    message: message.chars().take(600).collect(),
                }
            }
        };
        for value in serde_json::Deserializer::from_reader(reader).into_iter::<Value>() {
            let value = value.map_err(|e| InfluxError::Protocol(e.to_string()))?;
            if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
                return Err(server_error(error));
            }
            for result in value
                .get("results")
                .and_then(|r| r.as_array())
                .into_iter()
                .flatten()
            {
                if let Some(error) = result["error"].as_str() {
                    return Err(server_error(error));
                }
                let id = result["statement_id"].as_u64().unwrap_or(0) as usize;
                for series in result["series"].as_array().into_iter().flatten() {
                    let rows = series["values"]
                        .as_array()
                        .map(|v| v.iter().filter_map(|r| r.as_array().cloned()).collect())
                        .unwrap_or_default();
                    each(id, rows);
                }
            }
        }
        Ok(())
    }

    /// Runs a Flux query through `/api/v2/query`; the answer is annotated CSV, streamed.
    pub fn flux(&self, query: &str) -> Result<impl std::io::Read + use<>> {
        let mut url = self.config.endpoint("api/v2/query");
        url.query_pairs_mut().append_pair("org", &self.config.org);
        let body = serde_json::json!({
            "query": query,
            "type": "flux",
            "dialect": {
                "header": true,
                "delimiter": ",",
                "annotations": ["datatype"],
                "dateTimeFormat": "RFC3339Nano",
            },
        });
        let response = self.send(
            self.http
                .post(url)
                .header(reqwest::header::ACCEPT, "application/csv")
                .json(&body),
        )?;
        Ok(std::io::BufReader::new(response))
    }
}
