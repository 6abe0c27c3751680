//! The embedded store on disk: round trips, crash safety, resume, no retention, determinism.

mod common;

use std::fs;
use std::path::Path;

use chrono::NaiveDate;

use ohlcv::generator::{GeneratorConfig, MarketPlan};
use ohlcv::ingest::{self, IngestError, Progress};
use ohlcv::model::{Symbol, TradeColumns};
use ohlcv::store::layout::PartitionFiles;
use ohlcv::store::parquet::ParquetStore;
use ohlcv::store::publish::{DirLock, LOCK_FILE};
use ohlcv::store::{Manifest, Partition, Store, StoreError};
use ohlcv::verify;

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dataset in ["trades", "candles_1m"] {
        for month in fs::read_dir(dir.join(dataset)).unwrap() {
            for f in fs::read_dir(month.unwrap().path()).unwrap() {
                let path = f.unwrap().path();
                out.push((
                    path.strip_prefix(dir).unwrap().display().to_string(),
                    fs::read(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn round_trip_equals_the_generator() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::small_config(50_000);
    let summary = common::load(dir.path(), &common::options(config.clone()));
    assert_eq!(summary.trades, 50_000);
    let store = ParquetStore::new(dir.path());
    common::assert_crosses_stored(&store, &config);
    common::assert_half_cents_stored(&store, &config);
    let plan = MarketPlan::new(config).unwrap();
    for (s, sp) in plan.symbols().iter().enumerate() {
        let mut want = TradeColumns::default();
        for d in 0..plan.sessions().len() {
            plan.generate(s, d, &mut want);
        }
        let got = store.trades(&sp.symbol, i64::MIN, i64::MAX, None).unwrap();
        assert_eq!(got, want, "{}", sp.symbol);
        // A limit takes the first trades.
        let some = store
            .trades(&sp.symbol, i64::MIN, i64::MAX, Some(7))
            .unwrap();
        assert_eq!(some.times, want.times[..7]);
        // Half-open ranges: [t, t + 1) is exactly the trade at t.
        let t = want.times[100];
        let one = store.trades(&sp.symbol, t, t + 1, None).unwrap();
        assert_eq!(one.trade_ids, [want.trade_ids[100]]);
        assert!(
            store
                .trades(&sp.symbol, t + 1, want.times[101], None)
                .unwrap()
                .is_empty()
        );
    }
    let unknown = Symbol::new("NOPE").unwrap();
    assert!(
        store
            .trades(&unknown, i64::MIN, i64::MAX, None)
            .unwrap()
            .is_empty()
    );
    assert!(verify::verify(&store, 200, 1).unwrap().ok());
}

#[test]
fn thread_count_does_not_change_a_single_byte() {
    let config = common::small_config(40_000);
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    common::load(
        one.path(),
        &ingest::LoadSpec {
            threads: 1,
            ..common::options(config.clone())
        },
    );
    common::load(
        two.path(),
        &ingest::LoadSpec {
            threads: 2,
            ..common::options(config)
        },
    );
    assert_eq!(files(one.path()), files(two.path()));
}

#[test]
fn a_half_written_partition_is_invisible_and_a_rerun_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::small_config(30_000);
    let options = common::options(config.clone());
    common::load(dir.path(), &options);
    let store = ParquetStore::new(dir.path());
    let manifest = store.manifest().unwrap();
    let victim: Partition = manifest.partitions[1].clone();

    // Simulate a crash while writing one partition: the manifest lists only what was
    // published before, and a writer got halfway through the victim and died.
    let files = PartitionFiles::of(&victim);
    for file in [files.trades, files.candles] {
        std::fs::remove_file(dir.path().join(file)).unwrap();
    }
    let mut crashed = manifest.clone();
    crashed.complete = false;
    crashed.partitions.retain(|p| p != &victim);
    crashed.write(dir.path()).unwrap();
    let plan = MarketPlan::new(config).unwrap();
    let mut writer = store
        .partition_writer(victim.clone(), plan.resolution())
        .unwrap();
    let mut trades = TradeColumns::default();
    plan.generate(0, 0, &mut trades);
    let candles = ohlcv::candles::minute_candles(&trades);
    writer
        .write_batch(&plan.symbols()[0].symbol, trades, &candles)
        .unwrap();
    drop(writer);
    let tmp = dir.path().join(
        PartitionFiles::of(&victim)
            .trades
            .replace("group=", ".tmp-group="),
    );
    assert!(
        tmp.exists(),
        "the half-written file exists under its temporary name"
    );
    assert!(!store.has_partition(&victim).unwrap());

    // Readers see nothing of it; verify says the load is incomplete.
    let symbol = &victim.symbols[0];
    assert!(
        store
            .trades(symbol, victim.start, victim.end, None)
            .unwrap()
            .is_empty()
    );
    let report = verify::verify(&store, 50, 1).unwrap();
    assert!(!report.ok());
    assert!(
        report.listed[0].contains("incomplete"),
        "{:?}",
        report.listed
    );

    // Running the same load again writes only that partition and removes the leftover.
    let summary = common::load(dir.path(), &options);
    assert_eq!(summary.skipped, manifest.partitions.len() - 1);
    assert_eq!(summary.written, victim.trades);
    assert!(!tmp.exists());
    common::assert_verifies(&store, (300, 2), 30_000);
}

#[test]
fn verify_reports_a_deleted_file_as_a_difference() {
    let dir = tempfile::tempdir().unwrap();
    common::load(dir.path(), &common::options(common::small_config(20_000)));
    let store = ParquetStore::new(dir.path());
    let victim = store.manifest().unwrap().partitions[0].clone();
    fs::remove_file(dir.path().join(PartitionFiles::of(&victim).trades)).unwrap();
    let report = verify::verify(&store, 100, 1).unwrap();
    assert!(!report.ok());
    assert!(
        report.listed.iter().any(|l| l.contains(&victim.month)),
        "{:?}",
        report.listed
    );
}

#[test]
fn a_cancelled_load_resumes_to_exactly_the_same_data() {
    let config = common::small_config(60_000);
    let reference = tempfile::tempdir().unwrap();
    common::load(reference.path(), &common::options(config.clone()));

    let dir = tempfile::tempdir().unwrap();
    let progress = Progress::default();
    progress
        .cancel
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let err =
        common::try_load(dir.path(), &common::options(config.clone()), &progress).unwrap_err();
    assert!(matches!(err, IngestError::Cancelled));
    let manifest = Manifest::read(dir.path()).unwrap().unwrap();
    assert!(!manifest.complete);
    let summary = common::load(dir.path(), &common::options(config));
    assert_eq!(summary.written, 60_000);
    assert_eq!(files(dir.path()), files(reference.path()));
}

#[test]
fn a_different_load_is_refused_unless_replaced() {
    let dir = tempfile::tempdir().unwrap();
    common::load(dir.path(), &common::options(common::small_config(10_000)));
    let other = GeneratorConfig {
        seed: 8,
        ..common::small_config(10_000)
    };
    let err = common::try_load(
        dir.path(),
        &common::options(other.clone()),
        &Progress::default(),
    )
    .unwrap_err();
    match err {
        IngestError::Store(StoreError::DifferentLoad { existing, .. }) => {
            assert!(existing.contains("seed 7"))
        }
        e => panic!("unexpected {e}"),
    }
    let replaced = common::load(
        dir.path(),
        &ingest::LoadSpec {
            replace: true,
            ..common::options(other)
        },
    );
    assert_eq!(replaced.written, 10_000);
    assert_eq!(Manifest::read(dir.path()).unwrap().unwrap().load.seed, 8);
}

/// While another writer holds the directory, a load (here a --replace) is refused before it
/// reads or deletes anything; once the lock is free it replaces the dataset, keeping the lock
/// file it holds.
#[test]
fn a_locked_directory_is_left_untouched_and_replace_keeps_the_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    common::load(dir.path(), &common::options(common::small_config(10_000)));
    let before = files(dir.path());
    let replace = ingest::LoadSpec {
        replace: true,
        ..common::options(GeneratorConfig {
            seed: 8,
            ..common::small_config(10_000)
        })
    };

    let lock = DirLock::acquire(dir.path(), "ohlcv load").unwrap();
    let err = common::try_load(dir.path(), &replace, &Progress::default()).unwrap_err();
    match &err {
        IngestError::Store(StoreError::Locked { holder, .. }) => assert!(
            holder.starts_with(&format!("pid {} (ohlcv load) started ", std::process::id())),
            "{holder}"
        ),
        e => panic!("unexpected {e}"),
    }
    assert_eq!(files(dir.path()), before);
    assert_eq!(Manifest::read(dir.path()).unwrap().unwrap().load.seed, 7);

    drop(lock);
    assert_eq!(common::load(dir.path(), &replace).written, 10_000);
    assert_eq!(Manifest::read(dir.path()).unwrap().unwrap().load.seed, 8);
    assert!(dir.path().join(LOCK_FILE).is_file());
    let report = verify::verify(&ParquetStore::new(dir.path()), 50, 1).unwrap();
    assert!(report.ok(), "{:?}", report.listed);
}

#[test]
fn a_load_of_old_dates_is_kept_whole_whatever_the_clock_says() {
    // The embedded store has no retention: the same command writes the same dataset in any
    // year. 1998 is the first supported year, more than ten years before any clock this runs on.
    let dir = tempfile::tempdir().unwrap();
    let config = GeneratorConfig {
        start: NaiveDate::from_ymd_opt(1998, 1, 2).unwrap(),
        end: NaiveDate::from_ymd_opt(1998, 2, 27).unwrap(),
        ..common::small_config(20_000)
    };
    let summary = common::load(dir.path(), &common::options(config));
    assert_eq!(summary.written, 20_000);
    let store = ParquetStore::new(dir.path());
    let months: Vec<String> = store
        .manifest()
        .unwrap()
        .partitions
        .iter()
        .map(|p| p.month.clone())
        .collect();
    assert!(months.contains(&"1998-01".to_string()), "{months:?}");
    assert!(verify::verify(&store, 100, 1).unwrap().ok());
}

#[test]
fn many_quiet_symbols_share_files() {
    let dir = tempfile::tempdir().unwrap();
    let symbols: Vec<Symbol> = (0..500)
        .map(|i| Symbol::new(&format!("S{i:03}")).unwrap())
        .collect();
    let config = GeneratorConfig {
        trades: 200_000,
        symbols,
        start: common::date(2024, 3, 1),
        end: common::date(2024, 3, 31),
        seed: 1,
    };
    common::load(dir.path(), &common::options(config));
    let store = ParquetStore::new(dir.path());
    assert_eq!(
        store.manifest().unwrap().partitions.len(),
        1,
        "one month, one file"
    );
    let s = Symbol::new("S250").unwrap();
    let trades = store.trades(&s, i64::MIN, i64::MAX, None).unwrap();
    assert!(!trades.is_empty());
    assert!(verify::verify(&store, 100, 1).unwrap().ok());
}

/// Datasets written before file names were derived from (month, group) list them in their
/// manifest: such a dataset still reads, verifies, and resumes without rewriting a file.
#[test]
fn a_manifest_that_lists_file_names_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::small_config(20_000);
    common::load(dir.path(), &common::options(config.clone()));
    let path = dir.path().join("manifest.json");
    let mut old: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    for p in old["partitions"].as_array_mut().unwrap() {
        let name = format!(
            "month={}/group={:04}.parquet",
            p["month"].as_str().unwrap(),
            p["group"].as_u64().unwrap()
        );
        p["trades_file"] = format!("trades/{name}").into();
        p["candles_file"] = format!("candles_1m/{name}").into();
    }
    fs::write(&path, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
    let store = ParquetStore::new(dir.path());
    common::assert_verifies(&store, (100, 3), 20_000);
    let again = common::load(dir.path(), &common::options(config));
    assert_eq!(again.written, 0);
}

#[test]
fn verify_of_an_older_generators_load_names_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    common::load(dir.path(), &common::options(common::small_config(5_000)));
    let path = dir.path().join(ohlcv::store::manifest::MANIFEST_FILE);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let current = ohlcv::generator::GENERATOR_VERSION;
    manifest["generator_version"] = (current - 1).into();
    fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let report = verify::verify(&ParquetStore::new(dir.path()), 100, 1).unwrap();
    // One line naming both versions, instead of a difference per regenerated trade.
    assert!(!report.ok());
    assert_eq!(report.trades_sampled, 0);
    assert_eq!(
        report.listed,
        [format!(
            "load was generated by generator v{}, this build is v{current}",
            current - 1
        )]
    );
}

/// The spec of shard `index` of `count` of `config`'s load.
fn shard(config: &GeneratorConfig, index: u32, count: u32) -> ingest::LoadSpec {
    ingest::LoadSpec {
        shard: ingest::Shard { index, count },
        ..common::options(config.clone())
    }
}

#[test]
fn shards_running_at_once_build_the_same_dataset_as_one_load() {
    let config = common::small_config(30_000);
    let (whole, _) = common::embedded(&config);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let summaries: Vec<_> = std::thread::scope(|s| {
        let shards: Vec<_> = (0..3)
            .map(|k| {
                let spec = shard(&config, k, 3);
                s.spawn(move || common::load(path, &spec))
            })
            .collect();
        shards.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Each of the 3 partitions (one a month) is one shard's.
    assert!(summaries.iter().all(|s| s.units == 1), "{summaries:?}");
    assert_eq!(summaries.iter().map(|s| s.trades).sum::<u64>(), 30_000);
    // Each shard counts the bytes of its own partitions.
    assert_eq!(
        summaries
            .iter()
            .map(|s| s.bytes_on_disk.unwrap())
            .sum::<u64>(),
        ParquetStore::new(whole.path()).bytes_on_disk().unwrap()
    );
    assert_eq!(files(dir.path()), files(whole.path()));
    let manifest = Manifest::read(dir.path()).unwrap().unwrap();
    assert_eq!(manifest, Manifest::read(whole.path()).unwrap().unwrap());
    assert!(manifest.complete);
    common::assert_verifies(&ParquetStore::new(dir.path()), (100, 1), 30_000);
}

#[test]
fn a_dataset_is_complete_once_every_shard_has_published_and_each_resumes_alone() {
    let config = common::small_config(30_000);
    let dir = tempfile::tempdir().unwrap();
    let first = common::load(dir.path(), &shard(&config, 1, 2));
    assert_eq!((first.units, first.skipped), (1, 0));
    let manifest = Manifest::read(dir.path()).unwrap().unwrap();
    assert!(!manifest.complete);
    assert_eq!(manifest.partitions.len(), 1);
    assert_eq!(manifest.partitions[0].month, "2024-03");
    let store = ParquetStore::new(dir.path());
    assert!(!store.complete().unwrap());

    // The same shard again finds its partition published and writes nothing.
    let again = common::load(dir.path(), &shard(&config, 1, 2));
    assert_eq!((again.written, again.skipped), (0, 1));

    let second = common::load(dir.path(), &shard(&config, 0, 2));
    assert_eq!((second.units, second.skipped), (2, 0));
    assert_eq!(first.trades + second.trades, 30_000);
    assert!(store.complete().unwrap());
    common::assert_verifies(&store, (100, 1), 30_000);
    // The whole load run afterwards has nothing left to do.
    let whole = common::load(dir.path(), &common::options(config));
    assert_eq!((whole.written, whole.skipped), (0, 3));
}

#[test]
fn shards_of_one_load_share_the_lock_that_refuses_any_other_load() {
    let config = common::small_config(30_000);
    let dir = tempfile::tempdir().unwrap();
    let fingerprint = Manifest::new(config.clone()).fingerprint();
    // As a shard of the load holds it while writing.
    let commit = ohlcv::store::publish::CommitLock::acquire(dir.path()).unwrap();
    let (held, alone) = DirLock::join(dir.path(), "ohlcv load", &fingerprint, &commit).unwrap();
    drop(commit);
    assert!(alone);

    let other = GeneratorConfig {
        seed: 8,
        ..config.clone()
    };
    for refused in [
        shard(&other, 0, 2),
        common::options(other.clone()),
        common::options(config.clone()),
    ] {
        let err = common::try_load(dir.path(), &refused, &Progress::default()).unwrap_err();
        assert!(
            matches!(&err, IngestError::Store(StoreError::Locked { holder, .. })
                if holder.starts_with(&format!("pid {} (ohlcv load) started ", std::process::id()))),
            "{err}"
        );
    }
    assert_eq!(common::load(dir.path(), &shard(&config, 0, 2)).units, 2);
    assert!(!Manifest::read(dir.path()).unwrap().unwrap().complete);
    drop(held);
    // A whole load takes the lock once no shard holds it, and shards are refused meanwhile.
    let whole = DirLock::acquire(dir.path(), "ohlcv load").unwrap();
    let err = common::try_load(dir.path(), &shard(&config, 1, 2), &Progress::default());
    assert!(
        matches!(err, Err(IngestError::Store(StoreError::Locked { .. }))),
        "{err:?}"
    );
    drop(whole);
    assert_eq!(common::load(dir.path(), &shard(&config, 1, 2)).units, 1);
    assert!(Manifest::read(dir.path()).unwrap().unwrap().complete);
}

#[test]
fn sharded_replace_swaps_in_the_new_load_once_its_last_shard_publishes() {
    let dir = tempfile::tempdir().unwrap();
    common::load(dir.path(), &common::options(common::small_config(10_000)));
    let new = GeneratorConfig {
        seed: 8,
        ..common::small_config(20_000)
    };
    let replace = |k| ingest::LoadSpec {
        replace: true,
        ..shard(&new, k, 2)
    };
    common::load(dir.path(), &replace(0));
    // Readers still see the old load, whole.
    let store = ParquetStore::new(dir.path());
    assert_eq!(store.manifest().unwrap().load.seed, 7);
    common::assert_verifies(&store, (50, 1), 10_000);

    common::load(dir.path(), &replace(1));
    let manifest = Manifest::read(dir.path()).unwrap().unwrap();
    assert_eq!((manifest.load.seed, manifest.complete), (8, true));
    assert!(
        !dir.path().join("trades").exists(),
        "the old load is removed"
    );
    common::assert_verifies(&store, (50, 1), 20_000);
}
