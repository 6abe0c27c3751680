//! Query latency of the library calls behind `ohlcv candles`, on a real load.
//!
//! Uses the load in `OHLCV_DATA_DIR` (default `./data`, e.g. after `ohlcv load`), which must
//! hold AAPL in 2024; the figures in docs/BENCHMARKS.md come from the default 300M-trade load.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use ohlcv::candles::Fill;
use ohlcv::model::Symbol;
use ohlcv::query::{self, CandleQuery};
use ohlcv::store::Store;
use ohlcv::store::parquet::ParquetStore;

fn queries(c: &mut Criterion) {
    let dir = PathBuf::from(std::env::var("OHLCV_DATA_DIR").unwrap_or_else(|_| "./data".into()));
    let store = ParquetStore::new(&dir);
    if let Err(e) = store.manifest() {
        panic!("benchmarks need a load: {e}");
    }
    let tz = chrono_tz::America::New_York;
    let t = |s: &str| query::parse_time(s, tz).unwrap();
    let aapl = Symbol::new("AAPL").unwrap();
    let cases = [
        (
            "1m candles, one symbol, one day",
            "1m",
            "2024-03-11",
            "2024-03-12",
        ),
        (
            "1d candles, one symbol, the year",
            "1d",
            "2024-01-01",
            "2025-01-01",
        ),
        (
            "1s candles, one symbol, one day",
            "1s",
            "2024-03-11",
            "2024-03-12",
        ),
    ];
    let mut group = c.benchmark_group("candles");
    for (name, interval, start, end) in cases {
        let q = CandleQuery {
            symbol: aapl.clone(),
            interval: interval.parse().unwrap(),
            start: t(start),
            end: t(end),
            tz,
            fill: Fill::None,
        };
        assert!(
            !query::candles(&store, &q).unwrap().is_empty(),
            "{name}: no candles in {}",
            dir.display()
        );
        group.bench_function(name, |b| b.iter(|| query::candles(&store, &q).unwrap()));
    }
    group.finish();
    c.bench_function("trades, one symbol, one day", |b| {
        b.iter(|| {
            store
                .trades(&aapl, t("2024-03-11"), t("2024-03-12"), None)
                .unwrap()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = queries
}
criterion_main!(benches);
