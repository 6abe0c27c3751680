//! The ideal client, for comparison with `ohlcv load --store influxdb`: builds every request
//! body of a load first (same lines, same batch size), then only replays them over HTTP with
//! the same number of concurrent writers. Whatever the loader does beyond that (generation,
//! encoding, retries, acknowledgements) shows as the gap between the two rates.
//!
//! `cargo run --release --example replay -- URL DATABASE TRADES BATCH_LINES WRITERS` (v1 `/write`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ohlcv::candles;
use ohlcv::generator::{GeneratorConfig, MarketPlan};
use ohlcv::model::TradeColumns;
use ohlcv::store::influx::line_protocol::{SeriesKeys, push_candle, push_trade};
use ohlcv::store::influx::{Precision, Schema};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, db, trades, batch_lines, writers] = &args[..] else {
        eprintln!("usage: replay URL DATABASE TRADES BATCH_LINES WRITERS");
        std::process::exit(2);
    };
    let (trades, batch_lines, writers): (u64, usize, usize) = (
        trades.parse().unwrap(),
        batch_lines.parse().unwrap(),
        writers.parse().unwrap(),
    );
    let plan = MarketPlan::new(GeneratorConfig {
        trades,
        ..GeneratorConfig::default()
    })
    .unwrap();

    let mut bodies: Vec<bytes::Bytes> = Vec::new();
    let (mut body, mut lines) = (Vec::new(), 0);
    for (s, sp) in plan.symbols().iter().enumerate() {
        let keys = SeriesKeys::new(&sp.symbol, Schema::Tags);
        for d in 0..plan.sessions().len() {
            let mut t = TradeColumns::default();
            plan.generate(s, d, &mut t);
            for i in 0..t.len() {
                push_trade(&mut body, &keys, &t, i, Precision::Ns);
                lines += 1;
                if lines == batch_lines {
                    bodies.push(std::mem::take(&mut body).into());
                    lines = 0;
                }
            }
            for c in candles::minute_candles(&t) {
                push_candle(&mut body, &keys, &c, Precision::Ns);
                lines += 1;
                if lines == batch_lines {
                    bodies.push(std::mem::take(&mut body).into());
                    lines = 0;
                }
            }
        }
    }
    if lines > 0 {
        bodies.push(body.into());
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let target = format!("{url}/write?db={db}&precision=ns");
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|_| {
                let (client, target, bodies, next) =
                    (client.clone(), target.clone(), bodies.clone(), next.clone());
                tokio::spawn(async move {
                    while let Some(b) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let r = client.post(&target).body(b.clone()).send().await.unwrap();
                        assert!(r.status().is_success(), "{}", r.status());
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "replayed {} bodies of {trades} trades in {secs:.2} s: {:.0} trades/s",
        bodies.len(),
        trades as f64 / secs
    );
}
